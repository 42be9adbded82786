//! The busybox test image: Debian's statically linked busybox in a minimal root filesystem.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use flate2::write::GzEncoder;

use super::oci::{image_config, Layer, OciWriter};
use super::tarball::TarWriter;
use super::{docker, media_type, sha256_digest, ImageInfo};

/// Where Debian's `busybox-static` package installs the binary.
pub const BUSYBOX_PATH: &str = "/bin/busybox";

/// Applets linked into `/bin` (all present in Debian 12's busybox-static).
pub const BUSYBOX_APPLETS: &[&str] = &[
    "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df", "dirname", "du",
    "echo", "env", "false", "find", "grep", "head", "hostname", "id", "kill", "ln", "ls", "mkdir",
    "mknod", "mount", "mv", "nproc", "ps", "pwd", "readlink", "rm", "rmdir", "sed", "seq", "sh",
    "sleep", "sort", "stat", "sync", "tail", "tee", "test", "timeout", "top", "touch", "tr",
    "true", "umount", "uname", "wc", "whoami", "xargs", "yes",
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

const GROUP: &str = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n";

/// The uncompressed root filesystem layer, entries in sorted order.
fn rootfs_layer() -> anyhow::Result<Vec<u8>> {
    let busybox = std::fs::read(BUSYBOX_PATH).with_context(|| {
        format!("read {BUSYBOX_PATH} (install Debian's busybox-static package)")
    })?;
    let mut applets: Vec<&str> = BUSYBOX_APPLETS.to_vec();
    applets.sort_unstable();

    let mut tar = TarWriter::new(Vec::with_capacity(busybox.len() + (64 << 10)));
    tar.dir("bin", 0o755)?;
    // Applets sorted before and after "busybox" keep the whole bin/ listing in order.
    for applet in applets.iter().filter(|a| **a < "busybox") {
        tar.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    tar.file("bin/busybox", 0o755, &busybox)?;
    for applet in applets.iter().filter(|a| **a > "busybox") {
        tar.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    tar.dir("dev", 0o755)?;
    tar.dir("etc", 0o755)?;
    tar.file("etc/group", 0o644, GROUP.as_bytes())?;
    tar.file("etc/passwd", 0o644, PASSWD.as_bytes())?;
    tar.dir("proc", 0o555)?;
    tar.dir("root", 0o700)?;
    tar.dir("sys", 0o555)?;
    tar.dir("tmp", 0o1777)?;
    tar.dir("usr", 0o755)?;
    tar.dir("usr/bin", 0o755)?;
    tar.symlink("usr/bin/env", "../../bin/busybox")?;
    tar.dir("var", 0o755)?;
    tar.finish()
}

/// gzip with a fixed header (flate2 writes mtime 0 and no file name), so output is deterministic.
fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::new(6),
    );
    enc.write_all(data).context("gzip layer")?;
    enc.finish().context("gzip layer")
}

const CREATED_BY: &str = "berth-tests: busybox-static rootfs";

/// Writes the busybox image to `out` as an OCI image layout tarball named `name`.
///
/// `name` is used verbatim as the image name ctr gives it (pass a full reference such as
/// `docker.io/library/busybox:latest`).
pub fn busybox_oci_tar(out: &Path, name: &str) -> anyhow::Result<ImageInfo> {
    let tar = rootfs_layer()?;
    let diff_id = sha256_digest(&tar);
    let mut writer = OciWriter::create(out)?;
    writer.add_layer(Layer {
        media_type: media_type::OCI_LAYER_GZIP,
        blob: gzip(&tar)?,
        diff_id,
    })?;
    let config = image_config(writer.diff_ids(), Some(&["sh"]), CREATED_BY);
    writer.finish(name, &config)
}

/// Writes the busybox image to `out` as a `docker save` style archive tagged `name`.
///
/// The layer is stored uncompressed as docker does; the config is byte-identical to the OCI
/// form's, so both forms share a config digest and diff_ids. ctr normalizes the tag the way
/// docker does (`busybox` becomes `docker.io/library/busybox:latest`); `ImageInfo::name` is that
/// normalized name.
pub fn busybox_docker_tar(out: &Path, name: &str) -> anyhow::Result<ImageInfo> {
    let tar = rootfs_layer()?;
    let diff_ids = vec![sha256_digest(&tar)];
    let config = image_config(&diff_ids, Some(&["sh"]), CREATED_BY);
    docker::write_docker_archive(out, name, &config, &[tar])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applets_exist_in_installed_busybox() {
        let Ok(out) = std::process::Command::new(BUSYBOX_PATH)
            .arg("--list")
            .output()
        else {
            eprintln!("skipping: {BUSYBOX_PATH} not installed");
            return;
        };
        let list = String::from_utf8_lossy(&out.stdout);
        let have: std::collections::HashSet<&str> = list.lines().collect();
        for applet in BUSYBOX_APPLETS {
            assert!(have.contains(applet), "busybox lacks applet {applet}");
        }
    }

    #[test]
    fn layer_is_deterministic_and_sorted() {
        if !Path::new(BUSYBOX_PATH).exists() {
            eprintln!("skipping: {BUSYBOX_PATH} not installed");
            return;
        }
        let a = rootfs_layer().expect("build layer");
        let b = rootfs_layer().expect("build layer");
        assert_eq!(a, b);
        assert_eq!(gzip(&a).expect("gzip"), gzip(&b).expect("gzip"));

        let mut archive = tar::Archive::new(a.as_slice());
        let mut names = Vec::new();
        for entry in archive.entries().expect("read layer") {
            let entry = entry.expect("read entry");
            let name = entry
                .path()
                .expect("entry path")
                .to_string_lossy()
                .into_owned();
            if name == "tmp" || name == "tmp/" {
                assert_eq!(entry.header().mode().expect("mode"), 0o1777);
            }
            names.push(name.trim_end_matches('/').to_string());
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for needed in [
            "bin/busybox",
            "bin/sh",
            "etc/passwd",
            "etc/group",
            "proc",
            "sys",
            "dev",
        ] {
            assert!(names.iter().any(|n| n == needed), "layer lacks {needed}");
        }
    }
}
