//! The other ctr flows that unpack and mount an image: `ctr snapshots unpack` of an image
//! imported with `--no-unpack` (after which `ctr images check` reports it unpacked), and
//! `ctr images mount`, which mounts a view itself under a lease named after the target, with
//! `ctr images unmount --rm`, which undoes all of it.

mod snapshots_support;

use berth_tests::e2e;
use berth_tests::harness::{mounts_under, Berthd, Ctr, CTR_BIN};
use berth_tests::image::BUSYBOX_PATH;
use berth_tests::store::{content_labels, row};
use snapshots_support::{assert_no_mounts, ls, snapshot_dirs, BusyboxTar, Mounted};

const NS: &str = "images";
const IMAGE: &str = "docker.io/berth/snap-busybox:1";

/// Runs `ctr args...` against `ctr`'s daemon and namespace from the directory `cwd`.
fn ctr_in(ctr: &Ctr, cwd: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(CTR_BIN)
        .arg("-a")
        .arg(&ctr.address)
        .arg("-n")
        .arg(&ctr.namespace)
        .args(args)
        .current_dir(cwd)
        .env_remove("CONTAINERD_ADDRESS")
        .env_remove("CONTAINERD_NAMESPACE")
        .env_remove("CONTAINERD_SNAPSHOTTER")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ctr");
    assert!(
        out.status.success(),
        "ctr {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ctr images mount IMAGE target` from berthd's temp dir, checks, then `ctr images unmount
/// --rm target`: ctr mounts a view itself, under a lease named `target`, and undoes both.
fn images_mount_and_unmount(berthd: &Berthd, ctr: &Ctr, chain: &str, target_arg: &str) {
    let cwd = berthd.temp_dir();
    let target = cwd.join(target_arg);
    std::fs::create_dir(&target).expect("mount target");
    {
        let mounted = Mounted::adopt(&target);
        let out = ctr_in(ctr, cwd, &["images", "mount", IMAGE, target_arg]);
        assert_eq!(out.lines().collect::<Vec<_>>(), [chain, target_arg]);
        assert_eq!(
            std::fs::read(mounted.path().join("bin/busybox")).expect("busybox"),
            std::fs::read(BUSYBOX_PATH).expect("host busybox")
        );
        assert_eq!(ls(ctr)[target_arg], (chain.to_string(), "View".into()));
        let leases = ctr.ok(&["leases", "ls", "-q"]);
        assert_eq!(leases.trim(), target_arg);
        let out = ctr_in(ctr, cwd, &["images", "unmount", "--rm", target_arg]);
        assert_eq!(out.trim(), target_arg);
        // ctr unmounted it itself; the guard only acts if it did not.
        assert!(
            mounts_under(&target).is_empty(),
            "ctr left {target_arg} mounted"
        );
    }
    assert_no_mounts(berthd);
    assert!(!ls(ctr).contains_key(target_arg));
    assert_eq!(ctr.ok(&["leases", "ls", "-q"]).trim(), "");
    std::fs::remove_dir(&target).expect("remove mount target");
}

/// `ctr snapshots unpack`, `ctr images check`, then mount and unmount through ctr.
#[test]
fn ctr_snapshots_unpack_and_images_mount() {
    let Some(berthd) = e2e::berthd_with_busybox() else {
        return;
    };
    let tar = BusyboxTar::new(IMAGE);
    let image = &tar.image;
    let ctr = berthd.ctr(NS);
    let tar_arg = tar.arg();
    ctr.ok(&["images", "import", "--no-unpack", tar_arg]);
    let chain = image.diff_ids[0].clone();
    assert_eq!(ctr.ok(&["snapshots", "ls"]).lines().count(), 1);
    let unpacked = |ctr: &Ctr| {
        let check = ctr.ok(&["images", "check"]);
        let line = row(&check, IMAGE).unwrap_or_else(|| panic!("{check}"));
        line.split_whitespace()
            .last()
            .expect("UNPACKED column")
            .to_string()
    };
    assert_eq!(unpacked(&ctr), "false");

    let out = ctr.ok(&["snapshots", "unpack", &image.manifest_digest]);
    assert!(out.contains("done"), "{out}");
    assert_eq!(ls(&ctr)[&chain], (String::new(), "Committed".into()));
    assert_eq!(unpacked(&ctr), "true");
    assert!(content_labels(&ctr)[&image.config_digest]
        .contains(&format!("containerd.io/gc.ref.snapshot.overlayfs={chain}")));

    // ctr names the mount's lease after the target as given: here a relative one (the
    // absolute form is `ctr_images_mount_at_an_absolute_path`).
    images_mount_and_unmount(&berthd, &ctr, &chain, "mnt-image");
    // The mount's snapshot goes with its lease; its directory with the next collection.
    e2e::collect_garbage(&ctr);
    assert_eq!(snapshot_dirs(&berthd.root, "overlayfs").len(), 1);
}

/// `ctr images mount IMAGE /abs/target`, the usual form, names its lease `/abs/target`;
/// containerd 1.6 takes any lease id, and so does berthd.
#[test]
fn ctr_images_mount_at_an_absolute_path() {
    let Some(berthd) = e2e::berthd_with_busybox() else {
        return;
    };
    let tar = BusyboxTar::new(IMAGE);
    let image = &tar.image;
    let ctr = berthd.ctr(NS);
    ctr.ok(&["images", "import", tar.arg()]);
    let target = berthd.temp_dir().join("mnt-abs");
    let target_arg = target.to_str().expect("utf-8 path").to_string();
    images_mount_and_unmount(&berthd, &ctr, &image.diff_ids[0], &target_arg);
}
