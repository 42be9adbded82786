//! Overlay specifics: support detection, the alias for long chains, and mounts made by another
//! process with plain mount(8), as `ctr` or a user would.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use berth_snapshotter::conformance::{get, put, Env, Must};
use berth_snapshotter::overlay::{self, Overlay};
use berth_snapshotter::{ErrorKind, Labels, Snapshotter};

fn open(root: &Path) -> Box<dyn Snapshotter> {
    Box::new(Overlay::open(root).expect("open overlay snapshotter"))
}

#[test]
fn supported_here_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new/root");
    assert!(overlay::supported(&root));
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
}

/// Berth inside a container whose root is itself overlay: overlay cannot stack on it, and the
/// check says so (and cleans up after itself).
#[test]
fn unsupported_on_top_of_overlay() {
    let dir = tempfile::tempdir().unwrap();
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    let p = |d: &str| dir.path().join(d).display().to_string();
    let m = berth_snapshotter::Mount {
        kind: "overlay".into(),
        source: "overlay".into(),
        target: String::new(),
        options: vec![
            format!("lowerdir={}", p("l")),
            format!("upperdir={}", p("u")),
            format!("workdir={}", p("w")),
        ],
    };
    let merged = dir.path().join("m");
    berth_snapshotter::mount::mount(&m, &merged).unwrap();
    let supported = overlay::supported(&merged.join("root"));
    let left = std::fs::read_dir(merged.join("root"))
        .map(|d| d.count())
        .unwrap_or(0);
    berth_snapshotter::mount::unmount(&merged).unwrap();
    assert!(!supported);
    assert_eq!(left, 0, "the check left its directory behind");
}

#[test]
fn alias_made_at_open_and_removed_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let sn = Overlay::open(&root).unwrap();
    let alias = sn.layout().alias.clone().expect("alias made");
    assert_eq!(
        alias,
        overlay::default_alias(&std::fs::canonicalize(&root).unwrap())
    );
    assert_eq!(std::fs::read_link(&alias).unwrap(), sn.layout().snapshots);
    drop(sn);
    assert!(std::fs::symlink_metadata(&alias).is_err());

    // A stale alias (left by a killed daemon, pointing elsewhere) is replaced.
    std::fs::create_dir_all(alias.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/nonexistent", &alias).unwrap();
    let sn = Overlay::open(&root).unwrap();
    assert_eq!(std::fs::read_link(&alias).unwrap(), sn.layout().snapshots);
}

#[test]
fn roots_that_break_option_syntax_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["a,b", "a:b"] {
        let e = Overlay::open(&dir.path().join(bad)).err().expect("refused");
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
    }
}

/// The mounts of a 128-layer snapshot, handed to mount(8) in another process as text, give the
/// layered tree: no chdir, no help from us.
#[test]
fn mount8_mounts_a_128_layer_chain() {
    let env = Env::new(&open);
    let sn = env.sn();
    let mut parent: Option<String> = None;
    for i in 0..128 {
        let name = format!("sha256:{i:064x}");
        env.layer(&name, parent.as_deref(), |d| {
            put(d, &format!("f{i}"), &i.to_string())
        });
        parent = Some(name);
    }
    let mounts = sn
        .prepare("extract-1 top", parent.as_deref(), Labels::new())
        .must("prepare");
    assert_eq!(mounts.len(), 1);
    let m = &mounts[0];
    let data = m.options.join(",");
    eprintln!(
        "mount -t {} {} <target> -o <{} bytes>",
        m.kind,
        m.source,
        data.len()
    );
    assert!(data.len() < 4096);

    let target = env.root().parent().unwrap().join("by-mount8");
    std::fs::create_dir(&target).unwrap();
    let status = Command::new("mount")
        .args(["-t", &m.kind, &m.source])
        .arg(&target)
        .args(["-o", &data])
        .status()
        .expect("run mount(8)");
    assert!(status.success(), "mount(8) failed: {status}");
    let seen = (0..128).all(|i| get(&target, &format!("f{i}")) == Some(i.to_string()));
    put(&target, "written", "through mount(8)");
    let umount = Command::new("umount")
        .arg(&target)
        .status()
        .expect("run umount(8)");
    assert!(seen, "not every layer visible through mount(8)");
    assert!(umount.success());
    // The write went to the snapshot's upper layer.
    sn.commit("done", "extract-1 top", Labels::new())
        .must("commit");
    sn.view("check", Some("done"), Labels::new()).must("view");
    let v = env.mount(&sn.mounts("check").must("mounts"));
    assert_eq!(
        get(v.path(), "written").as_deref(),
        Some("through mount(8)")
    );
}
