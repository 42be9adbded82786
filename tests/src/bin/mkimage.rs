//! Writes a test image tarball, for trying berthd by hand and for the benchmark:
//! `mkimage busybox-oci OUT NAME`, `mkimage busybox-docker OUT NAME`,
//! `mkimage generated OUT NAME LAYERS MIB [SEED]`.

use std::path::Path;

use anyhow::{bail, Context};
use berth_tests::image;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let info = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["busybox-oci", out, name] => image::busybox_oci_tar(Path::new(out), name)?,
        ["busybox-docker", out, name] => image::busybox_docker_tar(Path::new(out), name)?,
        ["generated", out, name, layers, mib, rest @ ..] => {
            let seed = rest.first().map(|s| s.parse()).transpose().context("seed")?.unwrap_or(1);
            image::generated_image_tar(
                Path::new(out),
                name,
                layers.parse().context("layers")?,
                mib.parse::<u64>().context("MiB")? << 20,
                seed,
            )?
        }
        _ => bail!("usage: mkimage busybox-oci|busybox-docker OUT NAME | generated OUT NAME LAYERS MIB [SEED]"),
    };
    println!(
        "{} {} ({} blobs, {} bytes)",
        info.name, info.manifest_digest, info.blob_count, info.total_blob_bytes
    );
    Ok(())
}
