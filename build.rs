//! Compiles every `.proto` under `proto/` with the pure-Rust `protox` compiler
//! (no system `protoc`) and generates prost messages plus tonic servers and
//! clients, collected into one include file that mirrors the proto packages.

use std::io;
use std::path::{Path, PathBuf};

const PROTO_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    println!("cargo:rerun-if-changed=build.rs");

    let mut files = Vec::new();
    collect_protos(Path::new(PROTO_ROOT), &mut files)?;
    // Sorted so that generated output does not depend on directory order.
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, [PROTO_ROOT])?;

    let mut config = prost_build::Config::new();
    // prost::Name impls let callers build Any values with bare type URLs.
    config.enable_type_names();

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // No `XxxClient::connect(endpoint)` helpers: Berth dials unix sockets
        // through `XxxClient::new(channel)`, and the shim Task service has an
        // rpc named Connect whose client method would collide with it.
        .build_transport(false)
        .include_file("_includes.rs")
        .compile_fds_with_config(fds, config)?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            // Directories are watched too so that added files trigger a rebuild.
            println!("cargo:rerun-if-changed={}", path.display());
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
