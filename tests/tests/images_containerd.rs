//! Validates the offline test images against the reference: the real containerd 1.6 and ctr
//! import them, account for every blob, unpack them and run busybox from them.

use std::path::{Path, PathBuf};

use berth_tests::harness::{
    mounts_under, processes_under, skip_reason, Containerd, Ctr, CONTAINERD_BIN, CTR_BIN,
};
use berth_tests::image::{
    busybox_docker_tar, busybox_oci_tar, generated_image_tar, ImageInfo, BUSYBOX_PATH,
};

fn skip() -> bool {
    match skip_reason(&[CTR_BIN, CONTAINERD_BIN, BUSYBOX_PATH, "/usr/sbin/runc"]) {
        Some(reason) => {
            eprintln!("skipping: {reason}");
            true
        }
        None => false,
    }
}

/// Stops containerd and checks that nothing of it is left: processes, mounts, temp dir.
fn shut_down(mut containerd: Containerd) {
    let dir: PathBuf = containerd.temp_dir().to_path_buf();
    containerd.stop();
    drop(containerd);
    assert!(
        mounts_under(&dir).is_empty(),
        "mounts left under {}",
        dir.display()
    );
    assert!(
        processes_under(&dir).is_empty(),
        "processes left for {}",
        dir.display()
    );
    if std::env::var_os("BERTH_KEEP_TEMP").is_none() {
        assert!(!dir.exists(), "{} not removed", dir.display());
    }
}

/// `ctr images ls`, `images check` and `content ls` agree with what the builder wrote.
fn assert_imported(ctr: &Ctr, info: &ImageInfo, log: impl Fn() -> String) {
    let names = ctr.ok(&["images", "ls", "-q"]);
    assert!(
        names.lines().any(|l| l.trim() == info.name),
        "image {} not listed: {names}\ncontainerd log:\n{}",
        info.name,
        log()
    );

    let listing = ctr.ok(&["images", "ls"]);
    let row = listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(info.name.as_str()))
        .expect("row for the image");
    assert!(
        row.contains(&info.manifest_digest),
        "manifest digest differs: {row}"
    );
    assert!(
        row.contains(&info.manifest_media_type),
        "manifest type differs: {row}"
    );

    let check = ctr.ok(&["images", "check"]);
    let row = check
        .lines()
        .find(|l| l.split_whitespace().next() == Some(info.name.as_str()))
        .expect("check row for the image");
    // ctr counts what the manifest references: config and layers.
    let required = info.layer_digests.len() + 1;
    assert_eq!(required + 1, info.blob_count);
    let complete = format!("complete ({required}/{required})");
    assert!(row.contains(&complete), "image not complete: {row}");

    let content = ctr.ok(&["content", "ls"]);
    let mut expected = vec![&info.manifest_digest, &info.config_digest];
    expected.extend(&info.layer_digests);
    for digest in expected {
        assert!(
            content.contains(digest.as_str()),
            "content ls lacks {digest}:\n{content}"
        );
    }
}

fn build_busybox(dir: &Path) -> (PathBuf, ImageInfo, PathBuf, ImageInfo) {
    let oci_path = dir.join("busybox-oci.tar");
    let oci = busybox_oci_tar(&oci_path, "docker.io/berth/busybox-oci:1.0").expect("oci image");
    let docker_path = dir.join("busybox-docker.tar");
    let docker =
        busybox_docker_tar(&docker_path, "berth/busybox-docker:1.0").expect("docker image");
    assert_eq!(docker.name, "docker.io/berth/busybox-docker:1.0");
    // Same image, two packagings.
    assert_eq!(oci.config_digest, docker.config_digest);
    assert_eq!(oci.diff_ids, docker.diff_ids);
    (oci_path, oci, docker_path, docker)
}

#[test]
fn busybox_images_import_without_unpack() {
    if skip() {
        return;
    }
    let work = tempfile::tempdir().expect("work dir");
    let (oci_path, oci, docker_path, docker) = build_busybox(work.path());
    let containerd = Containerd::start().expect("start containerd");

    // Separate namespaces: content is per namespace, and an unpacked gzip layer in the same
    // namespace would be reused by the docker import in place of the uncompressed one.
    let ctr = containerd.ctr("oci");
    ctr.ok(&[
        "images",
        "import",
        "--no-unpack",
        oci_path.to_str().expect("utf-8 path"),
    ]);
    assert_imported(&ctr, &oci, || containerd.log());

    let ctr = containerd.ctr("docker");
    ctr.ok(&[
        "images",
        "import",
        "--no-unpack",
        docker_path.to_str().expect("utf-8 path"),
    ]);
    assert_imported(&ctr, &docker, || containerd.log());

    shut_down(containerd);
}

#[test]
fn busybox_images_unpack_and_run() {
    if skip() {
        return;
    }
    let work = tempfile::tempdir().expect("work dir");
    let (oci_path, oci, docker_path, docker) = build_busybox(work.path());
    let containerd = Containerd::start().expect("start containerd");

    for (ns, path, info) in [
        ("run-oci", &oci_path, &oci),
        ("run-docker", &docker_path, &docker),
    ] {
        let ctr = containerd.ctr(ns);
        ctr.ok(&["images", "import", path.to_str().expect("utf-8 path")]);
        assert_imported(&ctr, info, || containerd.log());
        let id = format!("berth-{ns}");
        let out = ctr.ok(&["run", "--rm", &info.name, &id, "/bin/busybox", "echo", "hi"]);
        assert_eq!(out.trim(), "hi", "containerd log:\n{}", containerd.log());
        // The image's own config: Cmd sh via PATH, /etc/passwd for id.
        let out = ctr.ok(&["run", "--rm", &info.name, &id, "sh", "-c", "id; ls -d /tmp"]);
        assert!(out.contains("uid=0(root) gid=0(root)"), "{out}");
        assert!(out.contains("/tmp"), "{out}");
        let snapshots = ctr.ok(&["snapshots", "ls"]);
        assert!(
            snapshots.contains(&info.diff_ids[0]),
            "no committed layer snapshot: {snapshots}"
        );
    }

    shut_down(containerd);
}

#[test]
fn generated_image_imports() {
    if skip() {
        return;
    }
    let work = tempfile::tempdir().expect("work dir");
    let path = work.path().join("generated.tar");
    let info = generated_image_tar(&path, "docker.io/berth/generated:small", 3, 5 << 20, 42)
        .expect("generated image");
    assert_eq!(
        info.layer_digests, info.diff_ids,
        "generated layers are uncompressed"
    );
    assert_eq!(info.layer_digests.len(), 3);
    let again = generated_image_tar(&work.path().join("again.tar"), &info.name, 3, 5 << 20, 42)
        .expect("generated image");
    assert_eq!(info, again, "same seed, same image");

    let containerd = Containerd::start().expect("start containerd");
    let ctr = containerd.ctr("generated");
    ctr.ok(&["images", "import", path.to_str().expect("utf-8 path")]);
    assert_imported(&ctr, &info, || containerd.log());
    let usage = ctr.ok(&["images", "ls"]);
    assert!(usage.contains(&info.name), "{usage}");

    shut_down(containerd);
}

#[test]
fn crashed_containerd_leaves_nothing_behind() {
    if skip() {
        return;
    }
    let work = tempfile::tempdir().expect("work dir");
    let path = work.path().join("busybox.tar");
    let info = busybox_oci_tar(&path, "docker.io/berth/busybox:crash").expect("oci image");
    let mut containerd = Containerd::start().expect("start containerd");
    let ctr = containerd.ctr("crash");
    ctr.ok(&["images", "import", path.to_str().expect("utf-8 path")]);
    ctr.ok(&["run", "-d", &info.name, "berth-crash", "sleep", "1000"]);
    let dir = containerd.temp_dir().to_path_buf();
    assert!(
        !mounts_under(&dir).is_empty(),
        "running container has a rootfs mount"
    );

    // A crash leaves the shim and the container running; drop must still clean up.
    containerd.kill9();
    let strays = processes_under(&dir);
    assert!(
        strays.len() >= 2,
        "shim and container survive a crash: {strays:?}"
    );
    ctr.fails(&["--connect-timeout", "1s", "version"]);

    // containerd reconnects to the running task after a restart on the same dirs.
    containerd.restart().expect("restart containerd");
    let names = ctr.ok(&["images", "ls", "-q"]);
    assert!(names.contains(&info.name), "{names}");
    let tasks = ctr.ok(&["tasks", "ls"]);
    assert!(
        tasks.contains("berth-crash") && tasks.contains("RUNNING"),
        "{tasks}"
    );
    containerd.kill9();
    drop(containerd);
    for pid in &strays {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = state
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next();
        assert!(
            matches!(state, None | Some("Z") | Some("X")),
            "pid {pid} still alive"
        );
    }
    assert!(
        mounts_under(&dir).is_empty(),
        "mounts left under {}",
        dir.display()
    );
    assert!(!dir.exists(), "{} not removed", dir.display());
}
