//! Writing, resuming and committing ingests.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::{ingest_dirs, kind_of, mode, noise, store};
use crate::content::{ContentStore, Digest};
use crate::error::Kind;

#[test]
fn write_and_commit() {
    let (root, s) = store();
    let want = Digest::of(b"hello world");
    let mut w = s
        .writer("greeting", 11, Some(want.clone()))
        .expect("writer");
    assert_eq!(w.write_at(0, b"hello ").expect("write"), 6);
    assert_eq!(w.write_at(6, b"world").expect("write"), 11);
    assert_eq!(w.digest(), want);
    assert_eq!(w.commit(11, Some(want.clone())).expect("commit"), want);

    assert!(s.exists(&want));
    assert_eq!(s.size(&want).expect("size"), 11);
    assert_eq!(s.read_at(&want, 0, 100).expect("read"), b"hello world");
    assert_eq!(s.blobs().expect("blobs"), vec![want.clone()]);
    assert_eq!(
        s.blob_path(&want),
        root.path().join("blobs/sha256").join(want.hex())
    );
    assert_eq!(mode(&s.blob_path(&want)), 0o444);
    for d in ["", "blobs", "blobs/sha256", "ingest"] {
        assert_eq!(mode(&root.path().join(d)), 0o700, "{d:?}");
    }
    assert!(s.status("greeting").expect_err("gone").is(Kind::NotFound));
    assert!(s.ingests().expect("ingests").is_empty());
    assert!(ingest_dirs(root.path()).is_empty());
    // The lock went with the writer.
    assert!(s.writer("greeting", 0, None).is_ok());
}

#[test]
fn empty_blob_commits() {
    let (_root, s) = store();
    let w = s.writer("empty", 0, None).expect("writer");
    let d = w.commit(0, Some(Digest::of(b""))).expect("commit");
    assert_eq!(s.size(&d).expect("size"), 0);
    assert_eq!(s.read_at(&d, 0, 10).expect("read"), b"");
}

#[test]
fn resume_after_dropping_the_writer() {
    let (_root, s) = store();
    let mut w = s.writer("layer", 10, None).expect("writer");
    w.write_at(0, b"01234").expect("write");
    let started = w.status().started_at;
    drop(w);

    let mut w = s.writer("layer", 10, None).expect("resume");
    let st = w.status();
    assert_eq!((st.offset, st.total, st.started_at), (5, 10, started));
    assert_eq!(w.digest(), Digest::of(b"01234"));
    w.write_at(5, b"56789").expect("write");
    let d = w
        .commit(10, Some(Digest::of(b"0123456789")))
        .expect("commit");
    assert_eq!(s.read_at(&d, 0, 10).expect("read"), b"0123456789");
}

#[test]
fn resume_after_crash_and_reopen() {
    let root = tempfile::tempdir().expect("tempdir");
    let s = ContentStore::open(root.path()).expect("open");
    let mut w = s.writer("layer", 0, None).expect("writer");
    w.write_at(0, b"abc").expect("write");
    // A killed process never runs Drop; its in-memory lock dies with the store.
    std::mem::forget(w);
    let live = s.ingests().expect("ingests")[0].clone();
    drop(s);

    // Leftovers of crashes at other points.
    let ingest = root.path().join("ingest");
    let dir = |name: &str| {
        let d = ingest.join(name);
        fs::create_dir(&d).expect("mkdir");
        d
    };
    dir("aa"); // created, nothing written yet
    fs::write(
        dir("bb").join("meta"),
        b"berth-ingest 1\ntotal 0\nexpected -\nstarted 1.0\nref x",
    )
    .expect("meta without data (committed, not yet cleaned)");
    fs::write(dir("cc").join("data"), b"orphan").expect("data without metadata");
    let live_dir = ingest.join(Digest::of(b"layer").hex());
    fs::write(live_dir.join("meta.tmp"), b"half").expect("half-written metadata");
    // Commit made the data read-only, then the process died before the rename.
    fs::set_permissions(live_dir.join("data"), fs::Permissions::from_mode(0o444)).expect("chmod");

    let s = ContentStore::open(root.path()).expect("reopen");
    assert_eq!(
        ingest_dirs(root.path()),
        vec![Digest::of(b"layer").hex().to_owned()]
    );
    assert!(!live_dir.join("meta.tmp").exists());
    let st = s.status("layer").expect("status");
    assert_eq!((st.offset, st.started_at), (3, live.started_at));

    let mut w = s.writer("layer", 0, None).expect("resume");
    assert_eq!(w.status().offset, 3);
    assert_eq!(mode(&live_dir.join("data")), 0o600);
    w.write_at(3, b"def").expect("write");
    let d = w.commit(6, Some(Digest::of(b"abcdef"))).expect("commit");
    assert_eq!(s.read_at(&d, 0, 6).expect("read"), b"abcdef");
}

#[test]
fn offset_rules() {
    let (_root, s) = store();
    let mut w = s.writer("r", 0, None).expect("writer");
    w.write_at(0, b"hello").expect("write");
    for bad in [3, 6, 100, -1] {
        let (kind, msg) = kind_of(w.write_at(bad, b"x"));
        assert_eq!(kind, Kind::OutOfRange, "{bad}");
        assert!(msg.contains("current offset 5"), "{msg}");
    }
    assert_eq!(w.status().offset, 5);
    assert_eq!(w.write_at(5, b"").expect("empty write"), 5);
    // Offset 0 throws the old bytes away.
    assert_eq!(w.write_at(0, b"abc").expect("restart"), 3);
    assert_eq!(w.digest(), Digest::of(b"abc"));
    drop(w);
    assert_eq!(s.status("r").expect("status").offset, 3);
    let d = s
        .writer("r", 0, None)
        .expect("resume")
        .commit(3, None)
        .expect("commit");
    assert_eq!(d, Digest::of(b"abc"));
}

#[test]
fn wrong_digest_keeps_the_ingest_and_publishes_nothing() {
    let (root, s) = store();
    let mut w = s.writer("r", 0, None).expect("writer");
    w.write_at(0, b"real bytes").expect("write");
    let claimed = Digest::of(b"other bytes");
    let (kind, msg) = kind_of(w.commit(0, Some(claimed.clone())));
    assert_eq!(kind, Kind::FailedPrecondition);
    assert_eq!(
        msg,
        format!(
            "unexpected commit digest {}, expected {claimed}",
            Digest::of(b"real bytes")
        )
    );
    assert!(s.blobs().expect("blobs").is_empty());
    assert_eq!(
        fs::read_dir(root.path().join("blobs/sha256"))
            .expect("ls")
            .count(),
        0
    );
    assert_eq!(s.status("r").expect("kept").offset, 10);
    // The client can still finish it properly.
    let w = s.writer("r", 0, None).expect("resume");
    assert_eq!(
        w.commit(10, None).expect("commit"),
        Digest::of(b"real bytes")
    );
}

#[test]
fn wrong_size_keeps_the_ingest() {
    let (_root, s) = store();
    let mut w = s.writer("r", 0, None).expect("writer");
    w.write_at(0, b"0123456789").expect("write");
    let (kind, msg) = kind_of(w.commit(12, None));
    assert_eq!(kind, Kind::FailedPrecondition);
    assert_eq!(msg, "unexpected commit size 10, expected 12");
    assert!(s.blobs().expect("blobs").is_empty());
    assert_eq!(s.status("r").expect("kept").offset, 10);
}

#[test]
fn writes_past_the_total_are_refused_whole() {
    let (_root, s) = store();
    let mut w = s.writer("r", 4, None).expect("writer");
    w.write_at(0, b"abc").expect("write");
    assert_eq!(kind_of(w.write_at(3, b"de")).0, Kind::InvalidArgument);
    assert_eq!(w.status().offset, 3);
    w.set_total(5).expect("raise total");
    w.write_at(3, b"de").expect("fits now");
    assert_eq!(kind_of(w.set_total(-1)).0, Kind::InvalidArgument);
    drop(w);
    assert_eq!(s.status("r").expect("status").total, 5);
}

#[test]
fn resuming_with_another_total_starts_over() {
    let (_root, s) = store();
    let mut w = s.writer("r", 10, None).expect("writer");
    w.write_at(0, b"abc").expect("write");
    drop(w);
    // Unknown total or the same one resumes; a different one is a different blob.
    assert_eq!(s.writer("r", 0, None).expect("resume").status().offset, 3);
    let w = s.writer("r", 20, None).expect("restart");
    assert_eq!((w.status().offset, w.status().total), (0, 20));
    assert_eq!(w.digest(), Digest::of(b""));
}

#[test]
fn already_exists() {
    let (root, s) = store();
    let d = Digest::of(b"same");
    let mut w = s.writer("a", 0, None).expect("writer");
    w.write_at(0, b"same").expect("write");
    w.commit(4, Some(d.clone())).expect("commit");

    let mut w = s.writer("b", 0, None).expect("writer");
    w.write_at(0, b"same").expect("write");
    let (kind, msg) = kind_of(w.commit(4, Some(d.clone())));
    assert_eq!(kind, Kind::AlreadyExists);
    assert_eq!(msg, format!("content {d}: already exists"));
    assert!(s.status("b").expect_err("removed").is(Kind::NotFound));
    assert!(ingest_dirs(root.path()).is_empty());

    // Asking to write something already stored fails up front.
    let (kind, _) = kind_of(s.writer("c", 4, Some(d.clone())));
    assert_eq!(kind, Kind::AlreadyExists);
    assert!(ingest_dirs(root.path()).is_empty());
}

#[test]
fn five_mib_in_one_mib_chunks() {
    const MIB: usize = 1 << 20;
    let (_root, s) = store();
    let data = noise(5 * MIB);
    let want = Digest::of(&data);
    let mut w = s
        .writer("big", data.len() as i64, Some(want.clone()))
        .expect("writer");
    let mut offset = 0;
    for chunk in data.chunks(MIB) {
        offset = w.write_at(offset, chunk).expect("write");
    }
    assert_eq!(offset, data.len() as i64);
    assert_eq!(
        w.commit(data.len() as i64, Some(want.clone()))
            .expect("commit"),
        want
    );
    assert_eq!(s.size(&want).expect("size"), data.len() as u64);
    let mut back = Vec::new();
    while back.len() < data.len() {
        back.extend(s.read_at(&want, back.len() as u64, MIB).expect("read"));
    }
    assert!(back == data, "read back differs");
}
