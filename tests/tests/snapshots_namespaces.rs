//! Snapshots are per namespace: two namespaces importing the same image each get their own
//! chain-id named snapshot (and layer directory), the same key in two namespaces names two
//! different snapshots, removing one namespace's image leaves the other's intact, and a
//! namespace that still has snapshots cannot be removed (the error names the snapshotter).

mod snapshots_support;

use std::collections::BTreeSet;

use berth_tests::e2e;
use berth_tests::image::BUSYBOX_PATH;
use snapshots_support::{
    assert_no_mounts, image_blobs, sn_args, snapshot_dirs, snapshot_entries, wait_for_collection,
    BusyboxTar, Mounted,
};

const IMAGE: &str = "docker.io/berth/ns-snap:1";

#[test]
fn namespaces_have_separate_snapshots() {
    let Some(berthd) = e2e::berthd_with_busybox() else {
        return;
    };
    let tar = BusyboxTar::new(IMAGE);
    let image = &tar.image;
    let chain = image.diff_ids[0].clone();
    let a = berthd.ctr("ns-a");
    let b = berthd.ctr("ns-b");
    for ctr in [&a, &b] {
        ctr.ok(&["images", "import", tar.arg()]);
    }
    wait_for_collection(&berthd.root, &image_blobs(image));
    for ctr in [&a, &b] {
        let ls = ctr.ok(&["snapshots", "ls"]);
        let keys: Vec<&str> = ls
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(keys, [chain.as_str()], "{}: {ls}", ctr.namespace);
    }
    // Same key, two snapshots: one layer directory each.
    assert_eq!(snapshot_dirs(&berthd.root, "overlayfs").len(), 2);

    // The same user key in both namespaces: two independent snapshots.
    a.ok(&["snapshots", "prepare", "same", &chain]);
    b.ok(&["snapshots", "prepare", "same", &chain]);
    assert_eq!(snapshot_dirs(&berthd.root, "overlayfs").len(), 4);
    let mnt = berthd.temp_dir().join("mnt-same");
    {
        let m = Mounted::by_hand(&a, "overlayfs", &mnt, "same");
        std::fs::write(m.path().join("only-in-a"), "a").expect("write into a's snapshot");
    }
    {
        let m = Mounted::by_hand(&b, "overlayfs", &mnt, "same");
        assert!(!m.path().join("only-in-a").exists(), "b sees a's write");
        assert!(m.path().join("bin/busybox").exists());
    }
    assert_no_mounts(&berthd);

    // Removing a's image and snapshot leaves b's untouched.
    a.ok(&["snapshots", "rm", "same"]);
    a.ok(&["images", "rm", "--sync", IMAGE]);
    assert_eq!(a.ok(&["snapshots", "ls"]).lines().count(), 1);
    assert_eq!(snapshot_dirs(&berthd.root, "overlayfs").len(), 2);
    let ls = b.ok(&["snapshots", "ls"]);
    let keys: BTreeSet<&str> = ls
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(keys, BTreeSet::from([chain.as_str(), "same"]));
    {
        let m = Mounted::by_hand(&b, "overlayfs", &mnt, "same");
        assert_eq!(
            std::fs::read(m.path().join("bin/busybox")).expect("busybox"),
            std::fs::read(BUSYBOX_PATH).expect("host busybox")
        );
    }
    assert_no_mounts(&berthd);

    // ns-a is empty now and goes; ns-b still holds an image, blobs and snapshots.
    a.ok(&["namespaces", "rm", "ns-a"]);
    let err = b.fails(&["namespaces", "rm", "ns-b"]);
    assert!(
        err.contains("failed precondition") && err.contains("snapshots on \"overlayfs\""),
        "{err}"
    );
}

#[test]
fn namespace_removal_names_the_snapshotter_holding_snapshots() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let over = berthd.ctr("only-overlay");
    over.ok(&["snapshots", "prepare", "lone"]);
    let native = berthd.ctr("only-native");
    native.ok(&sn_args("native", &["prepare", "lone"]));

    let err = over.fails(&["namespaces", "rm", "only-overlay"]);
    assert!(
        err.contains("failed precondition")
            && err.contains("snapshots on \"overlayfs\" snapshotter")
            && !err.contains("native"),
        "{err}"
    );
    let err = native.fails(&["namespaces", "rm", "only-native"]);
    assert!(
        err.contains("failed precondition")
            && err.contains("snapshots on \"native\" snapshotter")
            && !err.contains("overlayfs"),
        "{err}"
    );
    // Both namespaces are still there, with their snapshots.
    let names = over.ok(&["namespaces", "ls", "-q"]);
    assert!(
        names.contains("only-overlay") && names.contains("only-native"),
        "{names}"
    );
    over.ok(&["snapshots", "info", "lone"]);

    over.ok(&["snapshots", "rm", "lone"]);
    native.ok(&sn_args("native", &["rm", "lone"]));
    over.ok(&["namespaces", "rm", "only-overlay", "only-native"]);
    // Removed layers' trees go with the next collection.
    e2e::collect_garbage(&berthd.ctr("default"));
    assert!(snapshot_dirs(&berthd.root, "overlayfs").is_empty());
    assert!(snapshot_dirs(&berthd.root, "native").is_empty());
    assert!(snapshot_entries(&berthd.root, "overlayfs").is_empty());
    assert!(snapshot_entries(&berthd.root, "native").is_empty());
}
