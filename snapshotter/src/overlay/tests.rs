use super::*;

fn layout(root: &str, alias: Option<PathBuf>) -> Layout {
    Layout {
        snapshots: Path::new(root).join("snapshots"),
        alias,
        index_off: true,
    }
}

fn data_len(m: &Mount) -> usize {
    crate::mount::parse_options(&m.options).1.len()
}

/// Snapshot `id` on parents `parents` (oldest first, so the nearest is the last).
fn chain(kind: Kind, id: u64, parents: std::ops::RangeInclusive<u64>) -> Snapshot {
    Snapshot {
        id,
        kind,
        parent_ids: parents.rev().collect(),
    }
}

fn alone(kind: Kind, id: u64) -> Snapshot {
    Snapshot {
        id,
        kind,
        parent_ids: Vec::new(),
    }
}

#[test]
fn shapes_match_containerd() {
    let l = layout("/r", None);
    let m = mounts_for(&l, "k", &alone(Kind::Active, 1)).unwrap();
    assert_eq!(m[0].kind, "bind");
    assert_eq!(m[0].source, "/r/snapshots/1/fs");
    assert_eq!(m[0].options, ["rw", "rbind"]);
    let m = mounts_for(&l, "k", &alone(Kind::View, 1)).unwrap();
    assert_eq!(m[0].options, ["ro", "rbind"]);
    let m = mounts_for(&l, "k", &chain(Kind::View, 9, 4..=4)).unwrap();
    assert_eq!(
        (m[0].kind.as_str(), m[0].source.as_str()),
        ("bind", "/r/snapshots/4/fs")
    );
    assert_eq!(m[0].options, ["ro", "rbind"]);
    let m = mounts_for(&l, "k", &chain(Kind::Active, 9, 3..=4)).unwrap();
    assert_eq!(
        (m[0].kind.as_str(), m[0].source.as_str()),
        ("overlay", "overlay")
    );
    assert_eq!(
        m[0].options,
        [
            "index=off",
            "workdir=/r/snapshots/9/work",
            "upperdir=/r/snapshots/9/fs",
            "lowerdir=/r/snapshots/4/fs:/r/snapshots/3/fs"
        ]
    );
    let m = mounts_for(&l, "k", &chain(Kind::View, 9, 3..=4)).unwrap();
    assert_eq!(
        m[0].options,
        ["index=off", "lowerdir=/r/snapshots/4/fs:/r/snapshots/3/fs"]
    );
    let e = mounts_for(&l, "k", &chain(Kind::Committed, 9, 3..=4)).unwrap_err();
    assert!(e.is(crate::ErrorKind::FailedPrecondition));
}

/// 128 layers with six-digit ids under the daemon's default root: the plain form is far over a
/// page, the alias form under it.
#[test]
fn long_chain_fits_a_page_through_the_alias() {
    let root = "/var/lib/berth/snapshots/overlayfs";
    let alias = default_alias(Path::new(root));
    assert_eq!(alias.as_os_str().len(), "/run/berth-l/abcdef".len());
    let snap = chain(Kind::Active, 100_129, 100_001..=100_128);

    let plain = mounts_for(&layout(root, None), "k", &snap);
    assert!(plain.unwrap_err().is(crate::ErrorKind::ResourceExhausted));
    let plain_len: usize = {
        let l = layout(root, None);
        let dirs: Vec<String> = snap
            .parent_ids
            .iter()
            .map(|id| format!("{}/{id}/fs", l.snapshots.display()))
            .collect();
        dirs.join(":").len()
    };

    let m = mounts_for(&layout(root, Some(alias.clone())), "k", &snap).unwrap();
    let len = data_len(&m[0]);
    eprintln!(
        "128 layers under {root}: plain lowerdir alone {plain_len} bytes; \
         with alias {} the whole data string is {len} bytes",
        alias.display()
    );
    assert!(plain_len > 4096);
    assert!(len < 4096, "{len}");
    // The view of the same chain is shorter still.
    let view = chain(Kind::View, 100_129, 100_001..=100_128);
    let m = mounts_for(&layout(root, Some(alias)), "k", &view).unwrap();
    assert!(data_len(&m[0]) < len);
}

#[test]
fn short_chains_keep_plain_paths() {
    let root = "/var/lib/berth/snapshots/overlayfs";
    let l = layout(root, Some(default_alias(Path::new(root))));
    let m = mounts_for(&l, "k", &chain(Kind::Active, 200, 101..=160)).unwrap();
    assert!(m[0]
        .options
        .last()
        .unwrap()
        .starts_with(&format!("lowerdir={root}/snapshots/")));
}

#[test]
fn aliases_differ_per_root() {
    assert_ne!(
        default_alias(Path::new("/a")),
        default_alias(Path::new("/b"))
    );
    assert_eq!(
        default_alias(Path::new("/a")),
        default_alias(Path::new("/a"))
    );
}
