//! Garbage collection over snapshots: `ctr images rm --sync` of the last image that uses a
//! layer frees its directory, its snapshot and its blobs, while an image sharing the layers keeps
//! them; a lease holding a snapshot (added through the Leases gRPC as `snapshots/overlayfs`)
//! keeps its whole chain until the lease is deleted or expires; a `containerd.io/gc.root` label
//! does the same until it is removed.

mod snapshots_support;

use std::time::Duration;

use berth_tests::e2e::{self, collect_garbage};
use berth_tests::grpc::{runtime, Grpc};
use berth_tests::harness::{Berthd, Ctr};
use berth_tests::image::layered::{
    chain_ids, expected_tree, layered_image_tar, tree_diff, LayerSpec, Op,
};
use berth_tests::image::ImageInfo;
use berth_tests::store::{blobs_on_disk, content_digests};
use snapshots_support::{
    assert_no_mounts, committed, hold, image_blobs, list, snapshot_dirs, snapshot_entries,
    wait_for_collection, Viewer,
};

const NS: &str = "gc";
const SN: &str = "overlayfs";

/// Three small layers; image `a` has the first two, image `b` all three.
fn layers() -> Vec<LayerSpec> {
    (0..3)
        .map(|i| {
            let mut ops = Vec::new();
            if i == 0 {
                ops.push(Op::dir("data", 0o755));
            }
            ops.push(Op::file(
                &format!("data/layer{i}"),
                e2e::pseudo_random(i, 20_000),
                0o644,
            ));
            LayerSpec::gzip(ops)
        })
        .collect()
}

struct Fixture {
    berthd: Berthd,
    ctr: Ctr,
    _work: tempfile::TempDir,
    a: ImageInfo,
    b: ImageInfo,
    chain: Vec<String>,
}

/// berthd with images `a` and (if `both`) `b` imported into [`NS`], the import's collections
/// done.
fn fixture(both: bool) -> Option<Fixture> {
    let berthd = e2e::berthd()?;
    let work = tempfile::tempdir().expect("work dir");
    let all = layers();
    let a_tar = work.path().join("a.tar");
    let b_tar = work.path().join("b.tar");
    let a = layered_image_tar(&a_tar, "docker.io/berth/gc-a:1", &all[..2]).expect("image a");
    let b = layered_image_tar(&b_tar, "docker.io/berth/gc-b:1", &all).expect("image b");
    let ctr = berthd.ctr(NS);
    let mut keep = image_blobs(&b);
    ctr.ok(&["images", "import", b_tar.to_str().expect("utf-8 path")]);
    if both {
        ctr.ok(&["images", "import", a_tar.to_str().expect("utf-8 path")]);
        keep.extend(image_blobs(&a));
    }
    wait_for_collection(&berthd.root, &keep);
    let chain = chain_ids(&b.diff_ids);
    assert_eq!(snapshot_dirs(&berthd.root, SN).len(), 3);
    Some(Fixture {
        berthd,
        ctr,
        _work: work,
        a,
        b,
        chain,
    })
}

impl Fixture {
    fn committed(&self) -> Vec<String> {
        let rt = runtime();
        let grpc = rt
            .block_on(Grpc::connect(&self.berthd.address))
            .expect("connect");
        let infos = rt.block_on(list(&grpc, NS, SN));
        assert_eq!(
            committed(&infos).len(),
            infos.len(),
            "only committed snapshots expected: {infos:?}"
        );
        committed(&infos)
    }

    fn sorted_chain(&self) -> Vec<String> {
        let mut c = self.chain.clone();
        c.sort();
        c
    }

    fn rm_image_sync(&self, image: &ImageInfo) {
        self.ctr.ok(&["images", "rm", "--sync", &image.name]);
    }

    /// Nothing of the images left: no snapshot, no layer directory, no blob.
    fn assert_all_gone(&self) {
        assert!(self.committed().is_empty());
        let ls = self.ctr.ok(&["snapshots", "ls"]);
        assert_eq!(ls.lines().count(), 1, "only the header:\n{ls}");
        // Collections run synchronously here, so nothing is even on its way out.
        let left = snapshot_entries(&self.berthd.root, SN);
        assert!(left.is_empty(), "layer directories left: {left:?}");
        assert!(blobs_on_disk(&self.berthd.root).is_empty());
        assert!(content_digests(&self.ctr).is_empty());
        assert_no_mounts(&self.berthd);
    }

    /// The chain survived (all three layers, intact) but the images' blobs did not.
    fn assert_chain_kept_blobs_gone(&self) {
        assert_eq!(self.committed(), self.sorted_chain());
        assert_eq!(snapshot_dirs(&self.berthd.root, SN).len(), 3);
        assert!(blobs_on_disk(&self.berthd.root).is_empty());
    }
}

#[test]
fn removing_the_last_image_frees_layers_snapshots_and_blobs() {
    let Some(f) = fixture(true) else {
        return;
    };
    // `a` shares its two layers with `b`: removing it frees only its manifest and config.
    f.rm_image_sync(&f.a);
    assert_eq!(f.committed(), f.sorted_chain());
    assert_eq!(snapshot_dirs(&f.berthd.root, SN).len(), 3);
    assert_eq!(blobs_on_disk(&f.berthd.root), image_blobs(&f.b));

    f.rm_image_sync(&f.b);
    f.assert_all_gone();
}

#[test]
fn a_lease_keeps_the_chain_until_it_is_deleted() {
    let Some(f) = fixture(false) else {
        return;
    };
    let top = f.chain.last().expect("layers").clone();
    f.ctr.ok(&["leases", "create", "--id", "hold", "-x", "0"]);
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&f.berthd.address))
        .expect("connect");
    rt.block_on(hold(&grpc, NS, "hold", SN, &top));

    f.rm_image_sync(&f.b);
    f.assert_chain_kept_blobs_gone();
    // Still whole, and still mountable.
    let viewer = Viewer::new(&f.berthd, NS);
    let got = viewer.tree(SN, &top, "leased");
    let diff = tree_diff(&expected_tree(&layers()), &got);
    assert!(diff.is_empty(), "{}", diff.join("\n"));

    f.ctr.ok(&["leases", "rm", "--sync", "hold"]);
    f.assert_all_gone();
}

#[test]
fn an_expired_lease_keeps_nothing() {
    let Some(f) = fixture(false) else {
        return;
    };
    let top = f.chain.last().expect("layers").clone();
    f.ctr.ok(&["leases", "create", "--id", "short", "-x", "2s"]);
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&f.berthd.address))
        .expect("connect");
    rt.block_on(hold(&grpc, NS, "short", SN, &top));
    f.rm_image_sync(&f.b);
    f.assert_chain_kept_blobs_gone();

    std::thread::sleep(Duration::from_millis(2200));
    collect_garbage(&f.ctr);
    f.assert_all_gone();
    assert_eq!(f.ctr.ok(&["leases", "ls", "-q"]).trim(), "");
}

#[test]
fn a_gc_root_label_keeps_the_chain_until_it_is_removed() {
    let Some(f) = fixture(false) else {
        return;
    };
    let top = f.chain.last().expect("layers").clone();
    f.ctr.ok(&[
        "snapshots",
        "label",
        &top,
        "containerd.io/gc.root=kept-by-test",
    ]);
    f.rm_image_sync(&f.b);
    f.assert_chain_kept_blobs_gone();

    // ctr marks what it prepares as a gc root too: a snapshot on top holds the chain.
    f.ctr.ok(&["snapshots", "prepare", "work", &top]);
    f.ctr
        .ok(&["snapshots", "label", &top, "containerd.io/gc.root="]);
    collect_garbage(&f.ctr);
    let mut with_work = f.sorted_chain();
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&f.berthd.address))
        .expect("connect");
    let infos = rt.block_on(list(&grpc, NS, SN));
    assert_eq!(committed(&infos), with_work);
    with_work.push("work".into());
    with_work.sort();
    let names: Vec<String> = infos.iter().map(|i| i.name.clone()).collect();
    assert_eq!(names, with_work);

    f.ctr.ok(&["snapshots", "rm", "work"]);
    collect_garbage(&f.ctr);
    f.assert_all_gone();
}
