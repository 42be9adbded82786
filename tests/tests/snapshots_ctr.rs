//! Snapshots through the real `ctr`: `ctr images import` unpacks busybox into a chain-id named
//! committed snapshot with containerd's labels; `ctr snapshots ls/tree/info/usage/mounts`
//! show it; prepare, view, commit, label and rm behave (and fail) as with containerd; what
//! `ctr snapshots mounts` prints, run by a shell, is the busybox root filesystem; and diffs of
//! a prepared snapshot (ctr and the Diff gRPC) hold exactly the changes made in it.

mod snapshots_support;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use berth_api::containerd::services::diff::v1 as diff;
use berth_api::containerd::services::snapshots::v1 as snapshots;
use berth_api::containerd::types::Mount;
use berth_tests::e2e::{self, collect_garbage};
use berth_tests::grpc::{leased, read_blob, req, runtime, Grpc};
use berth_tests::harness::Ctr;
use berth_tests::image::{media_type, sha256_digest, BUSYBOX_PATH};
use berth_tests::store::{content_digests, content_labels, row};
use snapshots::snapshots_client::SnapshotsClient;
use snapshots_support::{
    assert_no_mounts, hold, image_blobs, ls, sn_args, snapshot_dirs, wait_for_collection,
    BusyboxTar, Mounted,
};

const NS: &str = "snap";
const IMAGE: &str = "docker.io/berth/snap-busybox:1";

/// `ctr snapshots info KEY`, parsed.
fn info(ctr: &Ctr, key: &str) -> serde_json::Value {
    serde_json::from_str(&ctr.ok(&["snapshots", "info", key])).expect("ctr snapshots info is JSON")
}

/// Paths and contents of a layer tar (gzip or not), in archive order.
fn tar_entries(blob: &[u8]) -> Vec<(String, Vec<u8>)> {
    let raw = if blob.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .expect("gunzip layer");
        out
    } else {
        blob.to_vec()
    };
    let mut archive = tar::Archive::new(raw.as_slice());
    archive
        .entries()
        .expect("read layer")
        .map(|e| {
            let mut e = e.expect("layer entry");
            let path = e.path().expect("entry path").display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("entry data");
            (path, data)
        })
        .collect()
}

#[test]
fn busybox_unpacks_and_ctr_snapshots_behave_like_containerd() {
    let Some(berthd) = e2e::berthd_with_busybox() else {
        return;
    };
    let tar = BusyboxTar::new(IMAGE);
    let image = &tar.image;
    let ctr = berthd.ctr(NS);
    let out = ctr.ok(&["images", "import", tar.arg()]);
    assert!(out.contains("unpacking") && out.contains("done"), "{out}");
    wait_for_collection(&berthd.root, &image_blobs(image));
    let chain = image.diff_ids[0].clone();

    // One layer: one committed snapshot named by its chain id (the diff id), without parent.
    let listed = ls(&ctr);
    assert_eq!(
        listed,
        BTreeMap::from([(chain.clone(), (String::new(), "Committed".into()))])
    );
    assert!(ctr.ok(&["snapshots", "tree"]).contains(&chain));
    let i = info(&ctr, &chain);
    assert_eq!(i["Kind"], "Committed");
    assert_eq!(i["Name"], chain.as_str());
    assert!(i.get("Parent").is_none(), "{i}");
    assert_eq!(snapshot_dirs(&berthd.root, "overlayfs").len(), 1);

    // containerd's labels: the config holds the snapshot, the layer records its diff id.
    let labels = content_labels(&ctr);
    assert!(
        labels[&image.config_digest]
            .contains(&format!("containerd.io/gc.ref.snapshot.overlayfs={chain}")),
        "{labels:?}"
    );
    assert!(
        labels[&image.layer_digests[0]].contains(&format!("containerd.io/uncompressed={chain}")),
        "{labels:?}"
    );

    let usage = ctr.ok(&["snapshots", "usage", &chain]);
    let line = row(&usage, &chain).unwrap_or_else(|| panic!("{usage}"));
    let inodes: u64 = line
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // bin, the applets, busybox and the other directories and files of the layer.
    assert!(inodes > 60, "{line}");
    assert!(row(&ctr.ok(&["snapshots", "usage"]), &chain).is_some());

    // A committed snapshot has no mounts, exactly as in containerd.
    let err = ctr.fails(&["snapshots", "mounts", "/mnt", &chain]);
    assert!(err.contains("failed precondition"), "{err}");

    // Prepare on top; a second prepare of the same key is refused.
    ctr.ok(&["snapshots", "prepare", "work", &chain]);
    let err = ctr.fails(&["snapshots", "prepare", "work", &chain]);
    assert!(err.contains("already exists"), "{err}");
    let err = ctr.fails(&["snapshots", "prepare", "orphan", "sha256:nosuchparent"]);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(ls(&ctr)["work"], (chain.clone(), "Active".into()));

    let busybox = std::fs::read(BUSYBOX_PATH).expect("read busybox");
    let mnt = berthd.temp_dir().join("mnt-work");
    {
        let m = Mounted::by_hand(&ctr, "overlayfs", &mnt, "work");
        assert_eq!(
            std::fs::read(m.path().join("bin/busybox")).expect("busybox in snapshot"),
            busybox
        );
        assert_eq!(
            std::fs::read_link(m.path().join("bin/sh")).expect("sh link"),
            std::path::Path::new("busybox")
        );
        assert!(std::fs::read_to_string(m.path().join("etc/passwd"))
            .expect("passwd")
            .starts_with("root:x:0:0:"));
        std::fs::write(m.path().join("newfile"), "hello\n").expect("write into the snapshot");
    }
    assert_no_mounts(&berthd);

    // A view is read-only and mounts as the busybox tree. (A lease holds it: ctr gives views
    // no gc.root label, so a collection scheduled by an earlier delete could remove it.)
    ctr.ok(&["leases", "create", "--id", "views", "-x", "0"]);
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&berthd.address))
        .expect("connect");
    rt.block_on(hold(&grpc, NS, "views", "overlayfs", "look"));
    ctr.ok(&["snapshots", "view", "look", &chain]);
    assert_eq!(ls(&ctr)["look"], (chain.clone(), "View".into()));
    {
        let m = Mounted::by_hand(&ctr, "overlayfs", &mnt, "look");
        assert_eq!(
            std::fs::read(m.path().join("bin/busybox")).expect("busybox in view"),
            busybox
        );
        assert!(!m.path().join("newfile").exists());
        let err = std::fs::write(m.path().join("nope"), "x").expect_err("views are read-only");
        assert_eq!(err.raw_os_error(), Some(nix::libc::EROFS), "{err}");
    }
    assert_no_mounts(&berthd);
    let err = ctr.fails(&["snapshots", "commit", "from-view", "look"]);
    assert!(err.contains("failed precondition"), "{err}");
    ctr.ok(&["snapshots", "rm", "look"]);

    // `ctr snapshots diff` of the prepared snapshot against its parent: just the new file.
    // (ctr drops the diff's lease after, which schedules a collection: from here on, only
    // snapshots ctr labels gc.root or the image holds may exist.)
    let raw = ctr.run(&["snapshots", "diff", "work"]);
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        tar_entries(&raw.stdout),
        [("newfile".to_string(), b"hello\n".to_vec())]
    );

    // Commit the active one; it becomes a child of the image's snapshot.
    ctr.ok(&["snapshots", "commit", "layer2", "work"]);
    let listed = ls(&ctr);
    assert_eq!(listed["layer2"], (chain.clone(), "Committed".into()));
    assert!(!listed.contains_key("work"));
    let tree = ctr.ok(&["snapshots", "tree"]);
    let (top, child) = (
        tree.lines().position(|l| l.trim() == chain),
        tree.lines().position(|l| l.contains("\\_ layer2")),
    );
    assert!(
        matches!((top, child), (Some(t), Some(c)) if t < c),
        "{tree}"
    );
    let err = ctr.fails(&["snapshots", "rm", &chain]);
    assert!(err.contains("failed precondition"), "{err}");

    // Committing onto a taken name is refused and loses nothing; keys may hold spaces.
    ctr.ok(&["snapshots", "prepare", "key with spaces", &chain]);
    let err = ctr.fails(&["snapshots", "commit", "layer2", "key with spaces"]);
    assert!(err.contains("already exists"), "{err}");
    let i = info(&ctr, "key with spaces");
    assert_eq!(i["Kind"], "Active");
    assert_eq!(i["Parent"], chain.as_str());
    ctr.ok(&["snapshots", "rm", "key with spaces"]);

    // Labels: set, change, and clear with an empty value.
    ctr.ok(&["snapshots", "label", "layer2", "a=1", "b=2"]);
    ctr.ok(&["snapshots", "label", "layer2", "a=", "b=3"]);
    let labels = info(&ctr, "layer2")["Labels"].clone();
    assert_eq!(labels["b"], "3");
    assert!(labels.get("a").is_none(), "{labels}");
    // ctr itself marks what it commits as a gc root, as it does with containerd.
    assert!(labels.get("containerd.io/gc.root").is_some(), "{labels}");

    ctr.ok(&["snapshots", "rm", "layer2"]);
    let err = ctr.fails(&["snapshots", "rm", "layer2"]);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(ls(&ctr).keys().collect::<Vec<_>>(), [&chain]);
    // Remove drops the record; the directory goes with the next collection.
    collect_garbage(&ctr);
    assert_eq!(snapshot_dirs(&berthd.root, "overlayfs").len(), 1);
    assert_no_mounts(&berthd);
}

/// Mounts of `key` through the Snapshots gRPC.
async fn grpc_mounts(grpc: &Grpc, key: &str) -> Vec<Mount> {
    SnapshotsClient::new(grpc.channel.clone())
        .mounts(req(
            NS,
            snapshots::MountsRequest {
                snapshotter: "overlayfs".into(),
                key: key.into(),
            },
        ))
        .await
        .expect("mounts")
        .into_inner()
        .mounts
}

#[test]
fn diff_of_a_prepared_snapshot_holds_exactly_its_changes() {
    let Some(berthd) = e2e::berthd_with_busybox() else {
        return;
    };
    let tar = BusyboxTar::new(IMAGE);
    let image = &tar.image;
    let ctr = berthd.ctr(NS);
    ctr.ok(&["images", "import", tar.arg()]);
    wait_for_collection(&berthd.root, &image_blobs(image));
    let chain = image.diff_ids[0].clone();
    ctr.ok(&["snapshots", "prepare", "changed", &chain]);
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&berthd.address))
        .expect("connect");
    // The diff's lease holds the view of the parent too (see `hold`).
    ctr.ok(&["leases", "create", "--id", "diff-hold", "-x", "0"]);
    rt.block_on(hold(&grpc, NS, "diff-hold", "overlayfs", "base"));
    ctr.ok(&["snapshots", "view", "base", &chain]);
    {
        let m = Mounted::by_hand(
            &ctr,
            "overlayfs",
            &berthd.temp_dir().join("mnt-changed"),
            "changed",
        );
        std::fs::write(m.path().join("newfile"), "new\n").expect("add");
        std::fs::remove_file(m.path().join("etc/group")).expect("delete");
        std::fs::write(m.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").expect("change");
    }
    assert_no_mounts(&berthd);

    let (desc, blob) = rt.block_on(async {
        let left = grpc_mounts(&grpc, "base").await;
        let right = grpc_mounts(&grpc, "changed").await;
        let desc = diff::diff_client::DiffClient::new(grpc.channel.clone())
            .diff(leased(
                NS,
                "diff-hold",
                diff::DiffRequest {
                    left,
                    right,
                    media_type: media_type::OCI_LAYER.into(),
                    r#ref: "diff-test".into(),
                    labels: HashMap::from([("test".into(), "diff".into())]),
                    ..Default::default()
                },
            ))
            .await
            .expect("diff")
            .into_inner()
            .diff
            .expect("diff descriptor");
        let blob = read_blob(&grpc, NS, &desc.digest)
            .await
            .expect("read layer");
        (desc, blob)
    });
    assert_eq!(desc.media_type, media_type::OCI_LAYER);
    assert_eq!(desc.size, blob.len() as i64);
    assert_eq!(desc.digest, sha256_digest(&blob));
    // Changed directories are in the layer, deletions are whiteouts.
    let entries = tar_entries(&blob);
    let names: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["etc/", "etc/.wh.group", "etc/passwd", "newfile"]);
    assert_eq!(entries[2].1, b"root:x:0:0::/:/bin/sh\n");
    assert_eq!(entries[3].1, b"new\n");
    let labels = content_labels(&ctr);
    let got = &labels[&desc.digest];
    assert!(
        got.contains(&format!("containerd.io/uncompressed={}", desc.digest))
            && got.contains("test=diff"),
        "{got}"
    );

    // The lease held the layer and the view; without it the next collection removes both. The
    // prepared snapshot stays: ctr labels what it prepares gc.root.
    ctr.ok(&["leases", "rm", "diff-hold"]);
    collect_garbage(&ctr);
    assert!(!content_digests(&ctr).contains(&desc.digest));
    let err = ctr.fails(&["snapshots", "info", "base"]);
    assert!(err.contains("not found"), "{err}");
    ctr.ok(&["snapshots", "rm", "changed"]);
    assert_no_mounts(&berthd);
}

/// The same with `--snapshotter native`: the image unpacks there (and only there), a prepared
/// snapshot mounts by hand as a bind mount of a full copy, and its diff is just the change.
#[test]
fn native_snapshots_unpack_mount_and_diff() {
    let Some(berthd) = e2e::berthd_with_busybox() else {
        return;
    };
    let tar = BusyboxTar::new(IMAGE);
    let image = &tar.image;
    let ctr = berthd.ctr(NS);
    let tar_arg = tar.arg();
    ctr.ok(&["images", "import", "--snapshotter", "native", tar_arg]);
    let chain = image.diff_ids[0].clone();
    let native = ctr.ok(&sn_args("native", &["ls"]));
    assert!(
        row(&native, &chain).is_some_and(|r| r.trim_end().ends_with("Committed")),
        "{native}"
    );
    assert_eq!(
        ctr.ok(&["snapshots", "ls"]).lines().count(),
        1,
        "nothing in overlayfs"
    );
    assert!(content_labels(&ctr)[&image.config_digest]
        .contains(&format!("containerd.io/gc.ref.snapshot.native={chain}")));

    ctr.ok(&sn_args("native", &["prepare", "work", &chain]));
    let mounts = ctr.ok(&sn_args("native", &["mounts", "/target", "work"]));
    assert!(mounts.starts_with("mount -t bind "), "{mounts}");
    {
        let m = Mounted::by_hand(
            &ctr,
            "native",
            &berthd.temp_dir().join("mnt-native"),
            "work",
        );
        assert_eq!(
            std::fs::read(m.path().join("bin/busybox")).expect("busybox"),
            std::fs::read(BUSYBOX_PATH).expect("host busybox")
        );
        std::fs::write(m.path().join("newfile"), "native\n").expect("write");
    }
    assert_no_mounts(&berthd);
    let raw = ctr.run(&sn_args("native", &["diff", "work"]));
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        tar_entries(&raw.stdout),
        [("newfile".to_string(), b"native\n".to_vec())]
    );
    ctr.ok(&sn_args("native", &["rm", "work"]));
    collect_garbage(&ctr);
    assert_eq!(snapshot_dirs(&berthd.root, "native").len(), 1);
    assert_no_mounts(&berthd);
}
