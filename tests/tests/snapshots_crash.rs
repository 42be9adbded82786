//! Crash safety of unpack: berthd is killed with SIGKILL while `ctr images import` unpacks a
//! generated 10-layer, 100 MiB image, then restarted on the same root. Every committed snapshot
//! it lists is whole (the top one mounts to exactly the content of the layers below it), the
//! import can be run again and completes the chain, and once the killed import's lease is
//! deleted a collection leaves no snapshot or layer directory that nothing lists.

mod snapshots_support;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_tests::e2e;
use berth_tests::grpc::{runtime, Grpc};
use berth_tests::image::generated_image_tar;
use berth_tests::image::layered::{chain_ids, tree_diff, Node, NodeKind, Tree};
use berth_tests::image::{sha256_digest, ImageInfo};
use snapshots_support::{
    assert_no_mounts, committed, list, snapshot_dirs, snapshot_entries, Viewer, VIEW_LEASE,
};

const NS: &str = "crash";
const SN: &str = "overlayfs";
const LAYERS: usize = 10;
const BYTES: u64 = 100 << 20;

/// The tree each layer of the image adds, read back from the image tarball. Generated layers
/// hold only directories and regular files, none of them in more than one layer.
fn layer_trees(tar: &Path, image: &ImageInfo) -> Vec<Tree> {
    let file = std::fs::File::open(tar).expect("open image tar");
    let mut outer = tar::Archive::new(std::io::BufReader::new(file));
    let mut by_digest = std::collections::HashMap::new();
    for entry in outer.entries().expect("read image tar") {
        let mut entry = entry.expect("image tar entry");
        let path = entry.path().expect("entry path").display().to_string();
        let Some(hex) = path.strip_prefix("blobs/sha256/") else {
            continue;
        };
        let digest = format!("sha256:{hex}");
        if !image.layer_digests.contains(&digest) {
            continue;
        }
        let mut blob = Vec::new();
        entry.read_to_end(&mut blob).expect("read layer blob");
        by_digest.insert(digest, tree_of_layer(&blob));
    }
    image
        .layer_digests
        .iter()
        .map(|d| by_digest.remove(d).expect("every layer is in the tarball"))
        .collect()
}

fn tree_of_layer(blob: &[u8]) -> Tree {
    let mut tree = Tree::new();
    let mut layer = tar::Archive::new(blob);
    for entry in layer.entries().expect("read layer") {
        let mut entry = entry.expect("layer entry");
        let h = entry.header().clone();
        let path = entry.path().expect("entry path").display().to_string();
        let path = path.trim_end_matches('/').to_string();
        let kind = if h.entry_type().is_dir() {
            NodeKind::Dir
        } else {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("layer file");
            NodeKind::File {
                size: data.len() as u64,
                sha256: sha256_digest(&data),
            }
        };
        let mtime = (kind != NodeKind::Dir)
            .then(|| i64::try_from(h.mtime().expect("mtime")).expect("mtime fits"));
        let owner = |id: u64| u32::try_from(id).expect("ids fit");
        tree.insert(
            path,
            Node {
                kind,
                mode: h.mode().expect("mode") & 0o7777,
                uid: owner(h.uid().expect("uid")),
                gid: owner(h.gid().expect("gid")),
                mtime,
                links: Vec::new(),
            },
        );
    }
    tree
}

/// Whether a fifth layer directory exists and something has been written into it.
fn fifth_layer_landing(root: &Path) -> bool {
    let dirs = snapshot_dirs(root, SN);
    let Some(newest) = dirs.iter().filter_map(|d| d.parse::<u64>().ok()).max() else {
        return false;
    };
    let fs = root
        .join("snapshots")
        .join(SN)
        .join("snapshots")
        .join(newest.to_string())
        .join("fs");
    dirs.len() >= 5 && std::fs::read_dir(fs).is_ok_and(|mut d| d.next().is_some())
}

/// What the snapshot of the first `n` layers holds.
fn union(layers: &[Tree], n: usize) -> Tree {
    layers[..n]
        .iter()
        .flatten()
        .map(|(p, node)| (p.clone(), node.clone()))
        .collect()
}

/// Checks what berthd lists: committed snapshots are a prefix of the chain, each on the one
/// below, and the top one mounts to exactly its layers. Returns how many are committed.
fn check_committed(
    viewer: &Viewer,
    grpc: &Grpc,
    rt: &tokio::runtime::Runtime,
    chain: &[String],
    layers: &[Tree],
    view: &str,
) -> usize {
    let infos = rt.block_on(list(grpc, NS, SN));
    let done: BTreeSet<String> = committed(&infos).into_iter().collect();
    let n = done.len();
    let prefix: BTreeSet<String> = chain[..n].iter().cloned().collect();
    assert_eq!(
        done, prefix,
        "committed snapshots are not a prefix of the chain"
    );
    for (i, name) in chain[..n].iter().enumerate() {
        let info = infos.iter().find(|x| &x.name == name).expect("listed");
        let parent = if i == 0 { "" } else { chain[i - 1].as_str() };
        assert_eq!(info.parent, parent, "parent of layer {i}");
    }
    if n > 0 {
        let got = viewer.tree(SN, &chain[n - 1], view);
        let diff = tree_diff(&union(layers, n), &got);
        assert!(
            diff.is_empty(),
            "snapshot of {n} layers is not whole:\n{}",
            diff.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
    }
    n
}

#[test]
fn kill_9_mid_unpack_leaves_only_whole_snapshots() {
    let Some(mut berthd) = e2e::berthd() else {
        return;
    };
    let work = tempfile::tempdir().expect("work dir");
    let tar = work.path().join("big.tar");
    let image = generated_image_tar(&tar, "docker.io/berth/crash-unpack:1", LAYERS, BYTES, 11)
        .expect("generate image");
    let chain = chain_ids(&image.diff_ids);
    let layers = layer_trees(&tar, &image);
    let ctr = berthd.ctr(NS);
    let tar_arg = tar.to_str().expect("utf-8 path").to_string();

    // Kill once the fifth layer has started to land in its directory: four layers are
    // committed or nearly, the fifth is half applied.
    let importer = {
        let ctr = ctr.clone();
        let tar_arg = tar_arg.clone();
        std::thread::spawn(move || ctr.run(&["images", "import", &tar_arg]))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !fifth_layer_landing(&berthd.root) {
        assert!(!importer.is_finished(), "the import ended before the kill");
        assert!(Instant::now() < deadline, "unpack never reached layer 5");
        std::thread::sleep(Duration::from_millis(1));
    }
    berthd.kill9();
    let out = importer.join().expect("importer thread");
    assert!(!out.status.success(), "import succeeded across a kill");

    berthd.restart().expect("restart berthd");
    let viewer = Viewer::new(&berthd, NS);
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&berthd.address))
        .expect("connect");
    let n = check_committed(&viewer, &grpc, &rt, &chain, &layers, "after-kill");
    assert!(n < LAYERS, "all {LAYERS} layers committed before the kill");
    let left = rt.block_on(list(&grpc, NS, SN));
    eprintln!(
        "{n} of {LAYERS} layers were committed when berthd was killed; {} other snapshots",
        left.len() - n
    );

    // The import runs again to the end.
    let out = ctr.ok(&["images", "import", &tar_arg]);
    assert!(out.contains("done"), "{out}");
    let n = check_committed(&viewer, &grpc, &rt, &chain, &layers, "after-import");
    assert_eq!(n, LAYERS);

    // The killed import's lease still holds its half-applied snapshot; without it a collection
    // leaves exactly the committed chain on disk.
    for lease in ctr.ok(&["leases", "ls", "-q"]).lines() {
        if lease != VIEW_LEASE {
            ctr.ok(&["leases", "rm", "--sync", lease]);
        }
    }
    let infos = rt.block_on(list(&grpc, NS, SN));
    assert_eq!(committed(&infos).len(), LAYERS);
    assert_eq!(infos.len(), LAYERS, "only the chain is left: {infos:?}");
    // The collection ran synchronously: nothing is even on its way out.
    assert_eq!(snapshot_entries(&berthd.root, SN).len(), LAYERS);
    assert_no_mounts(&berthd);
}

/// What a crash between a snapshot's record removal and its directory's removal leaves (see
/// the snapshotter's storage docs): a numbered layer directory no record names. After a
/// restart, the next collection removes it, as containerd's collector cleans up snapshotters.
#[test]
fn an_orphan_layer_directory_left_by_a_crash_is_collected() {
    let Some(mut berthd) = e2e::berthd() else {
        return;
    };
    let work = tempfile::tempdir().expect("work dir");
    let tar = work.path().join("small.tar");
    let image = generated_image_tar(&tar, "docker.io/berth/orphan:1", 2, 1 << 20, 3)
        .expect("generate image");
    let chain = chain_ids(&image.diff_ids);
    let ctr = berthd.ctr(NS);
    ctr.ok(&["images", "import", tar.to_str().expect("utf-8 path")]);
    let before = snapshot_dirs(&berthd.root, SN);
    ctr.ok(&["snapshots", "prepare", "doomed", &chain[1]]);
    let doomed: Vec<String> = snapshot_dirs(&berthd.root, SN)
        .difference(&before)
        .cloned()
        .collect();
    assert_eq!(doomed.len(), 1, "prepare made one directory");
    ctr.ok(&["snapshots", "rm", "doomed"]);
    // Remove drops the record; the directory goes with the next collection.
    e2e::collect_garbage(&ctr);
    assert_eq!(snapshot_dirs(&berthd.root, SN), before);

    // The crash: the record is gone, the directory (with content) is back.
    berthd.kill9();
    let orphan = berthd
        .root
        .join("snapshots")
        .join(SN)
        .join("snapshots")
        .join(&doomed[0]);
    std::fs::create_dir_all(orphan.join("fs/data")).expect("orphan dir");
    std::fs::create_dir_all(orphan.join("work")).expect("orphan work dir");
    std::fs::write(orphan.join("fs/data/left-behind"), "x").expect("orphan file");
    berthd.restart().expect("restart berthd");

    e2e::collect_garbage(&ctr);
    assert_eq!(
        snapshot_entries(&berthd.root, SN),
        before,
        "the orphan is still there"
    );
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&berthd.address))
        .expect("connect");
    let mut want = chain.clone();
    want.sort();
    assert_eq!(committed(&rt.block_on(list(&grpc, NS, SN))), want);
}
