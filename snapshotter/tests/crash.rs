//! `kill -9` at arbitrary points: a worker process (this test binary, re-run as `crash_worker`)
//! prepares, views, commits and removes snapshots in a loop until it is killed; then the
//! snapshotter is reopened and must show only complete snapshots, and cleanup must leave exactly
//! the recorded directories. And power loss, which can keep a record but lose the directory
//! renamed into place just before it (directories are not synced at prepare): what open rebuilds
//! and what it reports.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_snapshotter::native::Native;
use berth_snapshotter::overlay::Overlay;
use berth_snapshotter::storage::Store;
use berth_snapshotter::{mount, Kind, Labels, Snapshotter};

const ROOT_ENV: &str = "BERTH_CRASH_ROOT";
const KIND_ENV: &str = "BERTH_CRASH_KIND";
const BASE_FILES: usize = 300;

enum Sn {
    Overlay(Overlay),
    Native(Native),
}

impl Sn {
    fn open(kind: &str, root: &Path) -> Sn {
        match kind {
            "overlay" => Sn::Overlay(Overlay::open_with_alias(root, None).unwrap()),
            _ => Sn::Native(Native::open(root).unwrap()),
        }
    }
    fn sn(&self) -> &dyn Snapshotter {
        match self {
            Sn::Overlay(o) => o,
            Sn::Native(n) => n,
        }
    }
    fn store(&self) -> &Store {
        match self {
            Sn::Overlay(o) => o.store(),
            Sn::Native(n) => n.store(),
        }
    }
}

/// Not a test on its own: does nothing unless run by `kill_9_*` with the root in the env.
#[test]
fn crash_worker() {
    let (Ok(root), Ok(kind)) = (std::env::var(ROOT_ENV), std::env::var(KIND_ENV)) else {
        return;
    };
    let sn = Sn::open(&kind, Path::new(&root));
    let sn = sn.sn();
    std::fs::write(Path::new(&root).join("../ready"), "").unwrap();
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    for i in 0u64.. {
        let key = format!("w-{start}-{i}");
        match i % 4 {
            0 | 1 => {
                sn.prepare(&key, Some("base"), Labels::new()).unwrap();
                if i % 4 == 0 {
                    sn.commit(&format!("c-{start}-{i}"), &key, Labels::new())
                        .unwrap();
                } else {
                    sn.remove(&key).unwrap();
                }
            }
            2 => {
                sn.view(&key, Some("base"), Labels::new()).unwrap();
            }
            _ => {
                sn.prepare(&key, None, Labels::new()).unwrap();
            }
        }
    }
}

fn nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

/// Builds the committed `base` with many files, so a native copy takes a while.
fn make_base(kind: &str, root: &Path, scratch: &Path) {
    let sn = Sn::open(kind, root);
    let mounts = sn.sn().prepare("base-active", None, Labels::new()).unwrap();
    let target = scratch.join("mnt");
    std::fs::create_dir(&target).unwrap();
    mount::mount_all(&mounts, &target).unwrap();
    for i in 0..BASE_FILES {
        std::fs::write(target.join(format!("f{i}")), vec![b'x'; 2048]).unwrap();
    }
    mount::unmount_all(&target).unwrap();
    sn.sn()
        .commit("base", "base-active", Labels::new())
        .unwrap();
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Every recorded snapshot is complete; after cleanup the directories are exactly the records'.
fn check(kind: &str, root: &Path) -> (usize, usize) {
    // What the kill left half-made (removed by open or cleanup below).
    let temps = std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("tmp-")
        })
        .count();
    let sn = Sn::open(kind, root);
    let store = sn.store();
    let records = store.records().unwrap();
    let base_id = store.get("base").unwrap().id;
    for (key, rec) in &records {
        let dir = store.dir(rec.id);
        let fs = dir.join("fs");
        assert!(fs.is_dir(), "{key:?}: {} missing", fs.display());
        let from_base = rec.parent.as_str() == "base";
        if kind == "native" && from_base {
            assert_eq!(files_in(&fs), BASE_FILES, "{key:?}: partial copy visible");
        }
        if kind == "overlay" && rec.kind() == Kind::Active {
            assert!(dir.join("work").is_dir(), "{key:?}: no work dir");
        }
        // Whatever is listed can be used.
        if rec.kind() != Kind::Committed {
            let mounts = sn.sn().mounts(key).unwrap();
            for m in mounts {
                if m.kind == "bind" {
                    assert!(Path::new(&m.source).is_dir());
                }
            }
        }
    }
    sn.sn().cleanup().unwrap();
    let dirs: BTreeSet<String> = std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // The overlay's pool of ready directories, not snapshots.
        .filter(|n| !n.starts_with("spare-"))
        .collect();
    let ids: BTreeSet<String> = records.iter().map(|(_, r)| r.id.to_string()).collect();
    assert_eq!(
        dirs, ids,
        "directories after cleanup are exactly the recorded ones"
    );
    assert!(ids.contains(&base_id.to_string()));
    // The keys the killed worker was using are free or complete: a new prepare works.
    sn.sn()
        .prepare("after-crash", Some("base"), Labels::new())
        .unwrap();
    sn.sn().remove("after-crash").unwrap();
    (records.len(), temps)
}

fn kill_9_rounds(kind: &str) {
    let scratch = tempfile::Builder::new()
        .prefix("berth-crash-")
        .tempdir()
        .unwrap();
    let root: PathBuf = scratch.path().join("root");
    make_base(kind, &root, scratch.path());
    let exe = std::env::current_exe().unwrap();
    for round in 0..8 {
        let ready = scratch.path().join("ready");
        let _ = std::fs::remove_file(&ready);
        let mut child = Command::new(&exe)
            .args(["crash_worker", "--exact", "--nocapture", "--test-threads=1"])
            .env(ROOT_ENV, &root)
            .env(KIND_ENV, kind)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while !ready.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "worker never got ready"
            );
            assert!(child.try_wait().unwrap().is_none(), "worker exited early");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(20 + nanos() % 300));
        // SIGKILL to the worker we spawned, by its pid.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert!(status.code().is_none(), "worker was not killed: {status}");
        let (n, temps) = check(kind, &root);
        eprintln!(
            "{kind} round {round}: {n} snapshots consistent after kill -9 ({temps} half-made)"
        );
    }
}

#[test]
fn kill_9_overlay() {
    kill_9_rounds("overlay");
}

#[test]
fn kill_9_native() {
    kill_9_rounds("native");
}

fn ids(store: &Store, keys: &[&str]) -> Vec<u64> {
    keys.iter().map(|k| store.get(k).unwrap().id).collect()
}

/// Power loss after a snapshot was recorded but before its rename reached the disk: the record
/// is there, the directory is not (deleted here by hand while the snapshotter is closed). An
/// active snapshot's directories come back and mount; a committed layer that lost its files is
/// still listed, and what is built on it fails naming it.
#[test]
fn power_loss_overlay_record_without_directory() {
    let scratch = tempfile::Builder::new()
        .prefix("berth-lost-")
        .tempdir()
        .unwrap();
    let root = scratch.path().join("root");
    make_base("overlay", &root, scratch.path());
    let sn = Sn::open("overlay", &root);
    let s = sn.sn();
    s.prepare("act", Some("base"), Labels::new()).unwrap();
    s.prepare("doomed-active", Some("base"), Labels::new())
        .unwrap();
    s.commit("doomed", "doomed-active", Labels::new()).unwrap();
    s.prepare("child", Some("doomed"), Labels::new()).unwrap();
    let lost = ids(sn.store(), &["act", "doomed"]);
    drop(sn);
    for id in &lost {
        std::fs::remove_dir_all(root.join("snapshots").join(id.to_string())).unwrap();
    }

    let sn = Sn::open("overlay", &root);
    let s = sn.sn();
    let target = scratch.path().join("mnt");
    mount::mount_all(&s.mounts("act").unwrap(), &target).unwrap();
    let seen = files_in(&target);
    let wrote = std::fs::write(target.join("new"), "x");
    mount::unmount_all(&target).unwrap();
    assert_eq!(
        seen, BASE_FILES,
        "base visible through the rebuilt snapshot"
    );
    wrote.unwrap();

    assert_eq!(s.stat("doomed").unwrap().kind, Kind::Committed);
    for e in [
        s.mounts("child").unwrap_err(),
        s.prepare("more", Some("doomed"), Labels::new())
            .unwrap_err(),
    ] {
        assert_eq!(
            e.kind,
            berth_snapshotter::ErrorKind::FailedPrecondition,
            "{e}"
        );
        assert!(
            e.msg.contains("\"doomed\"") && e.msg.contains("lost"),
            "{e}"
        );
    }
    // Removing is how it is repaired.
    s.remove("child").unwrap();
    s.remove("doomed").unwrap();
    s.remove("act").unwrap();
    s.cleanup().unwrap();
    let left: Vec<_> = std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().starts_with("spare-"))
        .collect();
    assert_eq!(left.len(), 1, "only base is left: {left:?}");
}

/// A native copy holds data no record can rebuild: its directory is synced before it is
/// recorded, and one missing anyway is reported rather than made again empty.
#[test]
fn power_loss_native_copy_is_not_rebuilt_empty() {
    let scratch = tempfile::Builder::new()
        .prefix("berth-lost-")
        .tempdir()
        .unwrap();
    let root = scratch.path().join("root");
    make_base("native", &root, scratch.path());
    let sn = Sn::open("native", &root);
    sn.sn().prepare("cp", Some("base"), Labels::new()).unwrap();
    sn.sn().prepare("empty", None, Labels::new()).unwrap();
    let lost = ids(sn.store(), &["cp", "empty"]);
    drop(sn);
    for id in &lost {
        std::fs::remove_dir_all(root.join("snapshots").join(id.to_string())).unwrap();
    }

    let sn = Sn::open("native", &root);
    let e = sn.store().snapshot("cp").unwrap_err();
    assert_eq!(
        e.kind,
        berth_snapshotter::ErrorKind::FailedPrecondition,
        "{e}"
    );
    assert!(e.msg.contains("\"cp\"") && e.msg.contains("lost"), "{e}");
    assert!(
        !sn.store().dir(lost[0]).exists(),
        "a copy was made again empty"
    );
    // Nothing was copied into that one: it is made again.
    assert!(sn.store().dir(lost[1]).join("fs").is_dir());
    sn.sn().remove("cp").unwrap();
}
