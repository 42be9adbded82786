//! Locks, listing, abort, reads and the store's layout.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use super::{ingest_dirs, kind_of, mode, store};
use crate::content::{ContentStore, Digest};
use crate::error::Kind;

#[test]
fn one_writer_per_ref() {
    let (_root, s) = store();
    let mut w = s.writer("r", 0, None).expect("writer");
    w.write_at(0, b"x").expect("write");
    let (kind, msg) = kind_of(s.writer("r", 0, None));
    assert_eq!(kind, Kind::Unavailable);
    assert!(msg.starts_with("ref r locked"), "{msg}");
    assert_eq!(kind_of(s.abort("r")).0, Kind::Unavailable);
    assert!(s.writer("other", 0, None).is_ok());
    drop(w);
    assert!(s.writer("r", 0, None).is_ok());
}

#[test]
fn racing_writers_on_one_ref() {
    let (_root, s) = store();
    let s = Arc::new(s);
    let gate = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (s, gate) = (Arc::clone(&s), Arc::clone(&gate));
            std::thread::spawn(move || {
                gate.wait();
                let w = s.writer("contended", 0, None);
                let ok = w.is_ok();
                gate.wait(); // hold any writer until everyone has tried
                ok
            })
        })
        .collect();
    let winners = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .filter(|ok| *ok);
    assert_eq!(winners.count(), 1);
}

#[test]
fn abort() {
    let (root, s) = store();
    let mut w = s.writer("r", 0, None).expect("writer");
    w.write_at(0, b"abc").expect("write");
    drop(w);
    s.abort("r").expect("abort");
    assert!(ingest_dirs(root.path()).is_empty());
    assert!(s.status("r").expect_err("gone").is(Kind::NotFound));
    let (kind, msg) = kind_of(s.abort("r"));
    assert_eq!(
        (kind, msg.as_str()),
        (Kind::NotFound, "ingest ref \"r\": not found")
    );
    assert_eq!(s.writer("r", 0, None).expect("fresh").status().offset, 0);
}

#[test]
fn status_and_listing() {
    let (root, s) = store();
    let refs = [
        "layer-sha256:1",
        "../../etc/passwd",
        "a\nb",
        "ünïcödé",
        "/abs",
    ];
    for (i, r) in refs.iter().enumerate() {
        let expected = (i == 0).then(|| Digest::of(b"0123"));
        let mut w = s.writer(r, 100 + i as i64, expected).expect("writer");
        w.write_at(0, &vec![b'x'; i]).expect("write");
    }
    let list = s.ingests().expect("ingests");
    let mut want: Vec<&str> = refs.to_vec();
    want.sort();
    assert_eq!(
        list.iter()
            .map(|st| st.reference.as_str())
            .collect::<Vec<_>>(),
        want
    );

    let st = s.status("a\nb").expect("status");
    assert_eq!((st.offset, st.total, st.expected), (2, 102, None));
    assert!(st.started_at <= st.updated_at);
    assert_eq!(
        s.status("layer-sha256:1").expect("status").expected,
        Some(Digest::of(b"0123"))
    );
    assert!(s.status("nope").expect_err("missing").is(Kind::NotFound));

    // Refs never become paths: every ingest dir is a fixed-length hex name.
    for name in ingest_dirs(root.path()) {
        assert!(
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
    }
    assert!(!root.path().join("etc").exists());
}

#[test]
fn bad_arguments() {
    let (_root, s) = store();
    assert_eq!(kind_of(s.writer("", 0, None)).0, Kind::InvalidArgument);
    assert_eq!(kind_of(s.writer("r", -5, None)).0, Kind::InvalidArgument);
    let w = s.writer("r", 0, None).expect("writer");
    assert_eq!(kind_of(w.commit(-1, None)).0, Kind::InvalidArgument);
}

#[test]
fn reads_and_deletes() {
    let (_root, s) = store();
    let mut w = s.writer("r", 0, None).expect("writer");
    w.write_at(0, b"0123456789").expect("write");
    let d = w.commit(10, None).expect("commit");
    assert_eq!(s.read_at(&d, 8, 100).expect("tail"), b"89");
    assert_eq!(s.read_at(&d, 10, 100).expect("at end"), b"");
    assert_eq!(s.read_at(&d, 2, 3).expect("middle"), b"234");
    let (kind, msg) = kind_of(s.read_at(&d, 11, 1));
    assert_eq!(kind, Kind::OutOfRange, "{msg}");

    let missing = Digest::of(b"missing");
    let (kind, msg) = kind_of(s.size(&missing));
    assert_eq!(
        (kind, msg),
        (Kind::NotFound, format!("content {missing}: not found"))
    );
    assert_eq!(kind_of(s.open_blob(&missing)).0, Kind::NotFound);
    assert_eq!(kind_of(s.read_at(&missing, 0, 1)).0, Kind::NotFound);
    assert_eq!(kind_of(s.delete(&missing)).0, Kind::NotFound);

    // A reader that opened the blob keeps it through a delete.
    let open = s.open_blob(&d).expect("open");
    s.delete(&d).expect("delete");
    assert!(!s.exists(&d));
    assert!(s.blobs().expect("blobs").is_empty());
    assert_eq!(std::io::read_to_string(open).expect("read"), "0123456789");
}

#[test]
fn open_tightens_modes_and_ignores_strangers() {
    let root = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(root.path().join("blobs/sha256")).expect("mkdir");
    fs::set_permissions(root.path().join("blobs"), fs::Permissions::from_mode(0o755))
        .expect("chmod");
    fs::write(root.path().join("blobs/sha256/not-a-digest"), b"?").expect("stray file");
    let s = ContentStore::open(root.path()).expect("open");
    assert_eq!(mode(&root.path().join("blobs")), 0o700);
    assert!(s.blobs().expect("blobs").is_empty());
    assert!(root.path().join("blobs/sha256/not-a-digest").exists());

    fs::write(root.path().join("ingest/stray"), b"?").expect("stray file");
    let s = ContentStore::open(root.path()).expect("reopen");
    assert!(s.ingests().expect("ingests").is_empty());
    assert!(root.path().join("ingest/stray").exists());

    fs::write(root.path().join("file"), b"").expect("file");
    assert!(ContentStore::open(&root.path().join("file")).is_err());
}
