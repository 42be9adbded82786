// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::records::*;
use super::*;
use crate::overlay::ACTIVE_DIRS as TEMPLATE;
use crate::{ErrorKind, Labels};

/// What overlay's prepare makes: an empty `fs` and `work`.
fn overlay_like(dir: &Path, _: &[u64]) -> Result<Contents> {
    Ok(Contents::EmptyDirs(vec![
        make_empty_dir(dir, "fs", 0o755)?,
        make_empty_dir(dir, "work", 0o711)?,
    ]))
}

fn layer(s: &Store, name: &str, parent: Option<&str>) -> u64 {
    let key = format!("{name}-active");
    s.create(Kind::Active, &key, parent, Labels::new(), overlay_like)
        .unwrap();
    s.commit(name, &key, Labels::new(), |_| Ok(Usage::default()))
        .unwrap()
        .id
}

#[test]
fn only_empty_directories_are_rebuildable() {
    let root = tempfile::tempdir().unwrap();
    let s = Store::open(root.path()).unwrap();
    s.create(Kind::Active, "a", None, Labels::new(), overlay_like)
        .unwrap();
    let rec = s.get("a").unwrap();
    assert!(rec.rebuildable);
    let mut names: Vec<_> = rec.empty_dirs.iter().map(|d| d.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["fs", "work"]);
    let work = rec.empty_dirs.iter().find(|d| d.name == "work").unwrap();
    assert_eq!(work.mode, 0o711);

    s.create(Kind::Active, "copy", None, Labels::new(), |d, _| {
        std::fs::create_dir(d.join("fs")).unwrap();
        std::fs::write(d.join("fs/file"), "data").unwrap();
        Ok(Contents::Data)
    })
    .unwrap();
    assert!(!s.get("copy").unwrap().rebuildable);

    // Committed, it holds data: no longer rebuildable.
    s.commit("c", "a", Labels::new(), |_| Ok(Usage::default()))
        .unwrap();
    let rec = s.get("c").unwrap();
    assert!(!rec.rebuildable && rec.empty_dirs.is_empty());
}

#[test]
fn ids_are_never_handed_out_twice() {
    let root = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for round in 0..3 {
        let s = Store::open(root.path()).unwrap();
        for i in 0..3 {
            let key = format!("k{round}-{i}");
            let snap = s
                .create(Kind::Active, &key, None, Labels::new(), overlay_like)
                .unwrap();
            assert!(
                seen.iter().all(|&id| id < snap.id),
                "{seen:?} then {}",
                snap.id
            );
            seen.push(snap.id);
            s.remove(&key).unwrap();
        }
        // The removed snapshots' directories are orphans until cleanup or the next open.
        assert!(s.dir(*seen.last().unwrap()).exists());
    }
    let s = Store::open(root.path()).unwrap();
    assert!(
        !s.dir(*seen.last().unwrap()).exists(),
        "open removes orphans"
    );
}

#[test]
fn children_index_refuses_removing_a_parent() {
    let root = tempfile::tempdir().unwrap();
    let s = Store::open(root.path()).unwrap();
    layer(&s, "base", None);
    s.create(Kind::Active, "a", Some("base"), Labels::new(), overlay_like)
        .unwrap();
    s.create(Kind::View, "v", Some("base"), Labels::new(), overlay_like)
        .unwrap();
    drop(s);
    // Rebuilt at open.
    let s = Store::open(root.path()).unwrap();
    let e = s.remove("base").unwrap_err();
    assert_eq!(e.kind, ErrorKind::FailedPrecondition, "{e}");
    s.remove("a").unwrap();
    assert_eq!(
        s.remove("base").unwrap_err().kind,
        ErrorKind::FailedPrecondition
    );
    s.remove("v").unwrap();
    s.remove("base").unwrap();
}

/// A schema 1 database (children index in sled, exact next id) opens as schema 2.
#[test]
fn schema_1_is_migrated() {
    let root = tempfile::tempdir().unwrap();
    {
        let db = sled::open(root.path().join("metadata")).unwrap();
        db.insert(VERSION_KEY, &1u32.to_be_bytes()).unwrap();
        db.insert(ID_LIMIT_KEY, &3u64.to_be_bytes()).unwrap();
        let rec = |id, kind, parent: &str| SnapshotRec {
            id,
            kind: kind_to_i32(kind),
            parent: parent.into(),
            ..Default::default()
        };
        let enc = |r: &SnapshotRec| prost::Message::encode_to_vec(r);
        db.insert(snapshot_key("base"), enc(&rec(1, Kind::Committed, "")))
            .unwrap();
        db.insert(snapshot_key("a"), enc(&rec(2, Kind::Active, "base")))
            .unwrap();
        let mut child = V1_CHILD_PREFIX.to_vec();
        child.extend_from_slice(&1u64.to_be_bytes());
        child.extend_from_slice(&2u64.to_be_bytes());
        db.insert(child, &[]).unwrap();
        db.flush().unwrap();
        for id in [1, 2] {
            std::fs::create_dir_all(root.path().join(format!("snapshots/{id}/fs"))).unwrap();
        }
    }
    let s = Store::open(root.path()).unwrap();
    assert_eq!(
        s.db.get(VERSION_KEY).unwrap().unwrap().as_ref(),
        SCHEMA_VERSION.to_be_bytes()
    );
    assert_eq!(s.db.scan_prefix(V1_CHILD_PREFIX).count(), 0);
    assert_eq!(
        s.remove("base").unwrap_err().kind,
        ErrorKind::FailedPrecondition
    );
    let snap = s
        .create(Kind::Active, "b", Some("base"), Labels::new(), overlay_like)
        .unwrap();
    assert!(snap.id >= 3);
    assert_eq!(s.snapshot("a").unwrap().parent_ids, [1]);
}

#[test]
fn unknown_schema_is_refused() {
    let root = tempfile::tempdir().unwrap();
    {
        let db = sled::open(root.path().join("metadata")).unwrap();
        db.insert(VERSION_KEY, &9u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let e = Store::open(root.path()).err().unwrap();
    assert!(e.msg.contains("unknown schema version"), "{e}");
}

/// A power loss took the directories of records (deleted by hand while closed): rebuildable
/// ones come back as they were made, the others are reported and refuse mounts.
#[test]
fn lost_directories_at_open() {
    let root = tempfile::tempdir().unwrap();
    let s = Store::open(root.path()).unwrap();
    let base = layer(&s, "base", None);
    // Owned by someone else, as overlay does when the image's root is.
    let act = s
        .create_empty(
            Kind::Active,
            "act",
            Some("base"),
            Labels::new(),
            &TEMPLATE,
            |_| Ok(Some((1234, 4321))),
        )
        .unwrap()
        .id;
    let before = std::fs::metadata(s.dir(act).join("fs")).unwrap();
    let doomed = layer(&s, "doomed", Some("base"));
    s.create(
        Kind::Active,
        "child",
        Some("doomed"),
        Labels::new(),
        overlay_like,
    )
    .unwrap();
    drop(s);

    std::fs::remove_dir_all(root.path().join(format!("snapshots/{act}"))).unwrap();
    std::fs::remove_dir_all(root.path().join(format!("snapshots/{doomed}"))).unwrap();
    let s = Store::open(root.path()).unwrap();

    let fs = std::fs::metadata(s.dir(act).join("fs")).unwrap();
    assert_eq!(
        (fs.mode(), fs.uid(), fs.gid()),
        (before.mode(), before.uid(), before.gid())
    );
    let work = std::fs::metadata(s.dir(act).join("work")).unwrap();
    assert_eq!(work.mode() & 0o7777, 0o711);
    assert_eq!(s.snapshot("act").unwrap().parent_ids, [base]);

    // Still listed, so it can be seen and removed; what depends on it fails naming it.
    assert!(s.stat("doomed").is_ok());
    for e in [
        s.snapshot("child").unwrap_err(),
        s.create(Kind::View, "v", Some("doomed"), Labels::new(), overlay_like)
            .unwrap_err(),
    ] {
        assert_eq!(e.kind, ErrorKind::FailedPrecondition, "{e}");
        assert!(
            e.msg.contains("\"doomed\"") && e.msg.contains("lost"),
            "{e}"
        );
    }
    s.remove("child").unwrap();
    s.remove("doomed").unwrap();
    s.cleanup().unwrap();
    assert!(s.get("doomed").is_err());
}

fn spares_in(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("spare-"))
        .collect()
}

/// Waits (briefly) until the pool thread has made `n` spares.
fn wait_for_spares(root: &Path, n: usize) {
    for _ in 0..500 {
        if spares_in(root).len() == n {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("expected {n} spares, found {:?}", spares_in(root));
}

#[test]
fn spares_are_used_refilled_kept_by_cleanup_and_removed_on_drop() {
    let root = tempfile::tempdir().unwrap();
    let mut s = Store::open(root.path()).unwrap();
    s.keep_spares(TEMPLATE.to_vec()).unwrap();
    wait_for_spares(root.path(), 4);
    let before = spares_in(root.path());

    // The template: a spare becomes the snapshot, with the owner asked for and a record that
    // can rebuild it; the pool makes another.
    let snap = s
        .create_empty(Kind::Active, "a", None, Labels::new(), &TEMPLATE, |_| {
            Ok(Some((1234, 4321)))
        })
        .unwrap();
    let fs = std::fs::metadata(s.dir(snap.id).join("fs")).unwrap();
    assert_eq!(
        (fs.mode() & 0o7777, fs.uid(), fs.gid()),
        (0o755, 1234, 4321)
    );
    let work = std::fs::metadata(s.dir(snap.id).join("work")).unwrap();
    assert_eq!(work.mode() & 0o7777, 0o711);
    let rec = s.get("a").unwrap();
    assert!(rec.rebuildable);
    let fs_rec = rec.empty_dirs.iter().find(|d| d.name == "fs").unwrap();
    assert_eq!((fs_rec.uid, fs_rec.gid), (1234, 4321));
    wait_for_spares(root.path(), 4);
    assert_ne!(spares_in(root.path()), before, "a used spare was replaced");

    // Not the template (a view has no work dir): made in place, spares untouched.
    let spares = {
        let mut v = spares_in(root.path());
        v.sort();
        v
    };
    s.create_empty(Kind::View, "v", None, Labels::new(), &TEMPLATE[..1], |_| {
        Ok(None)
    })
    .unwrap();
    let mut after = spares_in(root.path());
    after.sort();
    assert_eq!(after, spares);
    assert!(!s.dir(s.get("v").unwrap().id).join("work").exists());

    // A failed create (the key is taken) leaves no directory of its own behind.
    let e = s
        .create_empty(Kind::Active, "a", None, Labels::new(), &TEMPLATE, |_| {
            Ok(None)
        })
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists);
    s.cleanup().unwrap();
    wait_for_spares(root.path(), 4);

    drop(s);
    assert_eq!(spares_in(root.path()), Vec::<String>::new());
}

#[test]
fn open_removes_spares_a_crash_left() {
    let root = tempfile::tempdir().unwrap();
    drop(Store::open(root.path()).unwrap());
    // What a killed daemon's pool leaves: spares, one of them half made.
    for d in ["spare-0/fs", "spare-0/work", "spare-1/fs"] {
        std::fs::create_dir_all(root.path().join("snapshots").join(d)).unwrap();
    }
    let _s = Store::open(root.path()).unwrap();
    assert_eq!(spares_in(root.path()), Vec::<String>::new());
}
