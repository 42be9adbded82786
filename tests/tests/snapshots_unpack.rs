//! Unpacking a multi-layer image built by the tests (files added, changed and deleted,
//! directories made opaque, links, modes and owners across layers) gives exactly the tree the
//! layers describe, under both `--snapshotter overlayfs` and `--snapshotter native`: every
//! chain-id named snapshot of the stack is checked through a view mounted the way a user would
//! mount what `ctr snapshots mounts` prints.

mod snapshots_support;

use berth_tests::e2e;
use berth_tests::image::layered::{
    chain_ids, expected_tree, layered_image_tar, tree_diff, LayerSpec, Op,
};
use berth_tests::store::content_labels;
use snapshots_support::{
    assert_no_mounts, committed, image_blobs, list, sn_args, snapshot_dirs, wait_for_collection,
    Viewer,
};

/// Pseudo-random bytes that span several tar blocks.
fn bulk(seed: u64, len: usize) -> Vec<u8> {
    e2e::pseudo_random(seed, len)
}

fn layers() -> Vec<LayerSpec> {
    vec![
        // A base tree.
        LayerSpec::gzip(vec![
            Op::dir("bin", 0o755),
            Op::file("bin/tool", bulk(1, 100_000), 0o755),
            Op::hard_link("bin/tool2", "bin/tool"),
            Op::symlink("bin/sh", "tool"),
            Op::file("bin/suid", "suid", 0o4755),
            Op::file("bin/sgid", "sgid", 0o2755).owner(0, 50),
            Op::dir("etc", 0o755),
            Op::file("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644),
            Op::file("etc/group", "root:x:0:\n", 0o644),
            Op::dir("home", 0o755),
            Op::dir("home/user", 0o700).owner(1000, 1000),
            Op::file("home/user/.profile", "export A=1\n", 0o600).owner(1000, 1000),
            Op::symlink("home/user/link", "/etc/passwd").owner(1000, 1000),
            Op::dir("opt", 0o755),
            Op::dir("opt/app", 0o755),
            Op::file("opt/app/a", "a", 0o644),
            Op::file("opt/app/b", "b", 0o644),
            Op::dir("opt/app/sub", 0o755),
            Op::file("opt/app/sub/c", "c", 0o644),
            Op::dir("tmp", 0o1777),
            Op::dir("var", 0o755),
            Op::dir("var/lib", 0o755),
            Op::file("var/lib/state", "state", 0o644),
            Op::dir("gone", 0o755),
            Op::dir("gone/deep", 0o755),
            Op::file("gone/deep/f", "f", 0o644),
            Op::file("a-file", "becomes a directory", 0o644),
            Op::dir("a-dir", 0o755),
            Op::file("a-dir/x", "x", 0o644),
        ]),
        // Changes, deletions, an opaque directory, type changes.
        LayerSpec::plain(vec![
            Op::file(
                "etc/passwd",
                "root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/home/user:/bin/sh\n",
                0o600,
            ),
            Op::delete("etc/group"),
            Op::delete("gone"),
            Op::dir("opt/app", 0o755),
            Op::opaque("opt/app"),
            Op::file("opt/app/new", "new", 0o644),
            Op::file("a-dir", "was a directory", 0o644),
            Op::dir("a-file", 0o750),
            Op::file("a-file/inside", "inside", 0o644),
            // Replaces one name of a hard-linked pair: the other keeps the old bytes.
            Op::file("bin/tool", bulk(2, 50_000), 0o755),
            Op::dir("home/user", 0o750).owner(1000, 1000),
        ]),
        // Things deleted before come back; more links, an opaque dir whose new child comes first.
        LayerSpec::gzip(vec![
            Op::file("etc/group", "root:x:0:\nusers:x:100:\n", 0o644),
            Op::dir("gone", 0o711),
            Op::file("gone/back", "back", 0o644),
            Op::symlink("bin/sh", "tool2"),
            Op::delete("etc/never-existed"),
            Op::dir("var/lib", 0o755),
            Op::file("var/lib/fresh", "fresh", 0o644),
            Op::opaque("var/lib"),
            Op::file("opt/shared", bulk(3, 10_000), 0o640).owner(1000, 100),
            Op::hard_link("opt/shared-link", "opt/shared"),
            Op::file("bin/suid-user", "suid-user", 0o4750).owner(1000, 1000),
        ]),
        // Long and odd names, an empty file, a locked directory.
        LayerSpec::plain(vec![
            Op::delete("bin/suid"),
            Op::file(&format!("opt/{}", "n".repeat(150)), "long name", 0o644),
            Op::file("opt/with space", "", 0o644),
            Op::dir("opt/locked", 0o000),
            Op::file("opt/locked/secret", "secret", 0o400),
            Op::delete("opt/app/a"),
        ]),
    ]
}

/// Imports `layers` with `--snapshotter sn` and checks every snapshot of the chain.
fn unpacks_exactly(sn: &str, layers: Vec<LayerSpec>) {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let work = tempfile::tempdir().expect("work dir");
    let tar = work.path().join("layered.tar");
    let image = layered_image_tar(&tar, "docker.io/berth/layered:1", &layers).expect("image");
    let chain = chain_ids(&image.diff_ids);
    let ctr = berthd.ctr("unpack");
    let tar_arg = tar.to_str().expect("utf-8 path");
    ctr.ok(&["images", "import", "--snapshotter", sn, tar_arg]);
    wait_for_collection(&berthd.root, &image_blobs(&image));

    // The stack: one committed snapshot per layer, named by chain id, each on the one below.
    let rt = berth_tests::grpc::runtime();
    let grpc = rt
        .block_on(berth_tests::grpc::Grpc::connect(&berthd.address))
        .expect("connect");
    let infos = rt.block_on(list(&grpc, "unpack", sn));
    let mut want = chain.clone();
    want.sort();
    assert_eq!(committed(&infos), want);
    assert_eq!(
        infos.len(),
        chain.len(),
        "only committed snapshots are left"
    );
    for (i, name) in chain.iter().enumerate() {
        let info = infos.iter().find(|x| &x.name == name).expect("listed");
        let parent = if i == 0 { "" } else { chain[i - 1].as_str() };
        assert_eq!(info.parent, parent, "parent of layer {i}");
    }
    assert_eq!(snapshot_dirs(&berthd.root, sn).len(), chain.len());
    let other = if sn == "native" {
        "overlayfs"
    } else {
        "native"
    };
    assert!(snapshot_dirs(&berthd.root, other).is_empty());
    let labels = content_labels(&ctr);
    let top = chain.last().expect("layers");
    assert!(
        labels[&image.config_digest].contains(&format!("containerd.io/gc.ref.snapshot.{sn}={top}")),
        "{labels:?}"
    );
    for (layer, diff_id) in image.layer_digests.iter().zip(&image.diff_ids) {
        assert!(
            labels[layer].contains(&format!("containerd.io/uncompressed={diff_id}")),
            "{labels:?}"
        );
    }

    // `ctr snapshots tree` nests each layer under the one below.
    let tree = ctr.ok(&sn_args(sn, &["tree"]));
    let lines: Vec<&str> = tree.lines().collect();
    for (i, name) in chain.iter().enumerate() {
        let line = lines
            .iter()
            .position(|l| l.ends_with(name.as_str()))
            .unwrap_or_else(|| panic!("{name} not in tree:\n{tree}"));
        let indent = lines[line].len() - lines[line].trim_start().len();
        assert_eq!(
            indent,
            if i == 0 { 1 } else { 2 * i },
            "depth of layer {i}:\n{tree}"
        );
    }

    // Every prefix of the stack mounts as exactly what its layers describe.
    let viewer = Viewer::new(&berthd, "unpack");
    for (i, name) in chain.iter().enumerate() {
        let got = viewer.tree(sn, name, &format!("check-{i}"));
        let want = expected_tree(&layers[..=i]);
        let diff = tree_diff(&want, &got);
        assert!(
            diff.is_empty(),
            "{sn}: snapshot of layers 0..={i} differs from the layers:\n{}",
            diff.join("\n")
        );
    }
    assert_no_mounts(&berthd);
}

#[test]
fn layered_image_unpacks_exactly_with_overlayfs() {
    unpacks_exactly("overlayfs", layers());
}

#[test]
fn layered_image_unpacks_exactly_with_native() {
    unpacks_exactly("native", layers());
}

/// Layers that change a directory's content without listing the directory itself (hand-made
/// layers do; docker and buildkit always list it). The directory keeps the attributes the
/// lower layer gave it: containerd creates the missing parents of an overlay upperdir as
/// copies of the lower layers' directories.
fn unlisted_parents() -> Vec<LayerSpec> {
    vec![
        LayerSpec::plain(vec![
            Op::dir("home", 0o751).owner(7, 8),
            Op::dir("home/user", 0o700).owner(1000, 1000),
            Op::file("home/user/old", "old", 0o600).owner(1000, 1000),
            Op::file("home/user/gone", "gone", 0o600).owner(1000, 1000),
            Op::dir("srv", 0o2770).owner(0, 33),
            Op::file("srv/index", "index", 0o640),
            Op::dir("var", 0o755),
            Op::dir("var/cache", 0o750).owner(1, 1),
            Op::file("var/cache/stale", "stale", 0o644),
        ]),
        LayerSpec::gzip(vec![
            Op::file("home/user/new", "new", 0o600).owner(1000, 1000),
            Op::delete("home/user/gone"),
            Op::file("srv/index", "changed", 0o640),
            // An opaque marker in a directory the layer does not list either.
            Op::opaque("var/cache"),
            Op::file("var/cache/fresh", "fresh", 0o644),
        ]),
    ]
}

#[test]
fn unlisted_parents_keep_their_attributes_with_overlayfs() {
    unpacks_exactly("overlayfs", unlisted_parents());
}

#[test]
fn unlisted_parents_keep_their_attributes_with_native() {
    unpacks_exactly("native", unlisted_parents());
}

/// 128 layers, each adding one file: the overlay mount of the top view names 128 lowerdirs,
/// more than fits a page as plain paths under the test's root, and still mounts by hand.
#[test]
fn a_chain_of_128_layers_mounts() {
    let layers: Vec<LayerSpec> = (0..128)
        .map(|i| {
            let mut ops = Vec::new();
            if i == 0 {
                ops.push(Op::dir("layers", 0o755));
            }
            ops.push(Op::file(
                &format!("layers/{i:03}"),
                format!("layer {i}"),
                0o644,
            ));
            LayerSpec::plain(ops)
        })
        .collect();
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let work = tempfile::tempdir().expect("work dir");
    let tar = work.path().join("long.tar");
    let image = layered_image_tar(&tar, "docker.io/berth/long:1", &layers).expect("image");
    let chain = chain_ids(&image.diff_ids);
    let ctr = berthd.ctr("long");
    ctr.ok(&["images", "import", tar.to_str().expect("utf-8 path")]);
    assert_eq!(snapshot_dirs(&berthd.root, "overlayfs").len(), 128);
    let viewer = Viewer::new(&berthd, "long");
    let top = chain.last().expect("layers");
    let got = viewer.tree("overlayfs", top, "top");
    let diff = tree_diff(&expected_tree(&layers), &got);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    assert_no_mounts(&berthd);
}
