//! `archive::apply` doing what a layer says: whiteouts in both modes (checked against a real
//! overlay mount), metadata, devices, links, replacement rules, limits, compression and the
//! diff ID. Run as root.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod archive_util;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Stdio};

use archive_util::*;
use berth_snapshotter::archive::{self, compression_for, decompress, Limits, WhiteoutMode};
use berth_snapshotter::ErrorKind;
use sha2::{Digest, Sha256};
use tar::EntryType;

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn mode_of(p: &Path) -> u32 {
    lstat(p).mode() & 0o7777
}

/// An overlay mount of `lower` under `upper`, unmounted on drop.
struct Overlay {
    merged: std::path::PathBuf,
}

impl Overlay {
    fn mount(lower: &Path, upper: &Path, work: &Path, merged: &Path) -> Overlay {
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        nix::mount::mount(
            Some("overlay"),
            merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .expect("mount overlay (tests run as root)");
        Overlay {
            merged: merged.to_path_buf(),
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The lower tree the whiteout tests hide parts of.
fn lower_tree(root: &Path) {
    for d in ["d", "o", "o/sub", "p", "m", "m/sub"] {
        std::fs::create_dir(root.join(d)).unwrap();
    }
    for f in ["a", "d/x", "d/y", "o/old", "o/sub/z", "p/old", "m/sub/old"] {
        write(&root.join(f), b"lower", 0o644);
    }
}

fn whiteout_layer() -> Vec<u8> {
    let mut t = Tar::new();
    t.uid = 1000;
    t.gid = 1001;
    t.file(".wh.a", b"", 0o644)
        .dir("d", 0o755)
        .file("d/.wh.x", b"", 0o644)
        // Marker after the directory's new content, and before it.
        .dir("o", 0o755)
        .file("o/new", b"layer", 0o644)
        .file("o/.wh..wh..opq", b"", 0o644)
        .file("p/.wh..wh..opq", b"", 0o644)
        .file("p/new", b"layer", 0o644)
        // A directory this layer merges into stays, but loses what lower layers put in it.
        .dir("m", 0o755)
        .dir("m/sub", 0o755)
        .file("m/.wh..wh..opq", b"", 0o644)
        .bytes()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// What the merged view must hold after the whiteout layer.
fn check_merged(root: &Path) {
    assert!(!exists(&root.join("a")));
    assert_eq!(names(&root.join("d")), ["y"]);
    assert_eq!(names(&root.join("o")), ["new"]);
    assert_eq!(names(&root.join("p")), ["new"]);
    assert_eq!(names(&root.join("m")), ["sub"]);
    assert_eq!(names(&root.join("m/sub")), Vec::<String>::new());
}

#[test]
fn whiteouts_remove_mode() {
    let s = Sandbox::new();
    lower_tree(&s.root);
    s.apply(&whiteout_layer(), WhiteoutMode::Remove).unwrap();
    check_merged(&s.root);
}

#[test]
fn whiteouts_overlay_mode_make_an_upperdir_overlayfs_understands() {
    let s = Sandbox::new();
    let (lower, work, merged) = (
        s.path().join("lower"),
        s.path().join("work"),
        s.path().join("merged"),
    );
    for d in [&lower, &work, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    lower_tree(&lower);
    s.apply(&whiteout_layer(), WhiteoutMode::Overlay).unwrap();

    let a = lstat(&s.root.join("a"));
    assert!(a.file_type().is_char_device());
    assert_eq!((a.rdev(), a.uid(), a.gid()), (0, 1000, 1001));
    assert!(lstat(&s.root.join("d/x")).file_type().is_char_device());
    for opaque in ["o", "p", "m"] {
        let v = xattr::get(s.root.join(opaque), "trusted.overlay.opaque").unwrap();
        assert_eq!(v.as_deref(), Some(&b"y"[..]), "{opaque}");
    }
    assert_eq!(
        xattr::get(s.root.join("d"), "trusted.overlay.opaque").unwrap(),
        None
    );

    let m = Overlay::mount(&lower, &s.root, &work, &merged);
    check_merged(&m.merged);
}

#[test]
fn whiteout_of_a_path_this_layer_wrote_keeps_it() {
    for mode in [WhiteoutMode::Remove, WhiteoutMode::Overlay] {
        let s = Sandbox::new();
        let layer = Tar::new()
            .file("f", b"mine", 0o644)
            .file(".wh.f", b"", 0o644)
            .bytes();
        s.apply(&layer, mode).unwrap();
        assert_eq!(
            std::fs::read(s.root.join("f")).unwrap(),
            b"mine",
            "{mode:?}"
        );
    }
}

#[test]
fn layer_cannot_set_overlay_or_trusted_xattrs() {
    let s = Sandbox::new();
    let mut t = Tar::new();
    t.pax(&[
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/elsewhere"),
        ("SCHILY.xattr.user.overlay.opaque", b"y"),
        ("SCHILY.xattr.user.ok", b"kept"),
    ]);
    t.dir("d", 0o755);
    s.apply(&t.bytes(), WhiteoutMode::Overlay).unwrap();
    let d = s.root.join("d");
    assert_eq!(xattr::get(&d, "trusted.overlay.opaque").unwrap(), None);
    assert_eq!(xattr::get(&d, "trusted.overlay.redirect").unwrap(), None);
    assert_eq!(xattr::get(&d, "user.overlay.opaque").unwrap(), None);
    assert_eq!(
        xattr::get(&d, "user.ok").unwrap().as_deref(),
        Some(&b"kept"[..])
    );
}

/// A `security.capability` value (v2, cap_net_bind_service permitted and effective).
const CAP: &[u8] = &[1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

#[test]
fn metadata_owner_mode_xattrs_and_times() {
    let s = Sandbox::new();
    let mut t = Tar::new();
    t.uid = 1234;
    t.gid = 5678;
    t.mtime = 1_000_000_000;
    t.dir("d", 0o2775).dir("tmp", 0o1777);
    t.pax(&[
        ("SCHILY.xattr.user.note", b"hello"),
        ("SCHILY.xattr.security.capability", CAP),
        ("mtime", b"1500000000.25"),
        ("atime", b"1600000000.5"),
    ]);
    t.file("d/suid", b"#!/bin/true\n", 0o4755);
    t.uid = 4321;
    t.symlink("d/link", "suid");
    t.uid = 1234;
    t.file("d/late", b"created after d", 0o600);
    s.apply(&t.bytes(), WhiteoutMode::Remove).unwrap();

    let d = lstat(&s.root.join("d"));
    assert_eq!((d.mode() & 0o7777, d.uid(), d.gid()), (0o2775, 1234, 5678));
    // Directory times are set after its children were created.
    assert_eq!((d.mtime(), d.mtime_nsec()), (1_000_000_000, 0));
    assert_eq!(mode_of(&s.root.join("tmp")), 0o1777);

    let f = lstat(&s.root.join("d/suid"));
    // Mode after chown: setuid survives.
    assert_eq!((f.mode() & 0o7777, f.uid(), f.gid()), (0o4755, 1234, 5678));
    assert_eq!((f.mtime(), f.mtime_nsec()), (1_500_000_000, 250_000_000));
    assert_eq!((f.atime(), f.atime_nsec()), (1_600_000_000, 500_000_000));
    let p = s.root.join("d/suid");
    assert_eq!(
        xattr::get(&p, "user.note").unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    // Set after chown, which would have cleared it.
    assert_eq!(
        xattr::get(&p, "security.capability").unwrap().as_deref(),
        Some(CAP)
    );

    // lchown: the symlink is owned as asked, its target keeps its owner.
    let l = lstat(&s.root.join("d/link"));
    assert!(l.file_type().is_symlink());
    assert_eq!(l.uid(), 4321);
    assert_eq!(lstat(&s.root.join("d/suid")).uid(), 1234);
    assert_eq!(l.mtime(), 1_000_000_000);
}

#[test]
fn devices_fifos_and_hard_links() {
    let s = Sandbox::new();
    let mut t = Tar::new();
    t.node("null", EntryType::Char, 1, 3, 0o666)
        .node("loop9", EntryType::Block, 7, 9, 0o660)
        .node("pipe", EntryType::Fifo, 0, 0, 0o600)
        .file("a", b"shared", 0o640)
        .link("b", "a")
        .symlink("s", "a")
        .link("s2", "s");
    s.apply(&t.bytes(), WhiteoutMode::Remove).unwrap();

    let n = lstat(&s.root.join("null"));
    assert!(n.file_type().is_char_device());
    assert_eq!(
        (n.rdev(), n.mode() & 0o7777),
        (nix::sys::stat::makedev(1, 3), 0o666)
    );
    let b = lstat(&s.root.join("loop9"));
    assert!(b.file_type().is_block_device());
    assert_eq!(b.rdev(), nix::sys::stat::makedev(7, 9));
    assert!(lstat(&s.root.join("pipe")).file_type().is_fifo());
    assert_eq!(
        lstat(&s.root.join("a")).ino(),
        lstat(&s.root.join("b")).ino()
    );
    assert_eq!(lstat(&s.root.join("a")).nlink(), 2);
    // A hard link to a symlink is the symlink's inode, not its target's.
    assert_eq!(
        lstat(&s.root.join("s2")).ino(),
        lstat(&s.root.join("s")).ino()
    );
    assert!(lstat(&s.root.join("s2")).file_type().is_symlink());
}

#[test]
fn existing_paths_are_replaced_or_merged() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.root.join("x/deep")).unwrap();
    write(&s.root.join("y"), b"file", 0o644);
    std::fs::create_dir(s.root.join("z")).unwrap();
    set_mode(&s.root.join("z"), 0o700);
    write(&s.root.join("z/child"), b"kept", 0o644);
    let layer = Tar::new()
        .file("x", b"now a file", 0o644)
        .dir("y", 0o755)
        .dir("z", 0o755)
        .file("z/new", b"n", 0o644)
        .bytes();
    s.apply(&layer, WhiteoutMode::Remove).unwrap();
    assert_eq!(std::fs::read(s.root.join("x")).unwrap(), b"now a file");
    assert!(lstat(&s.root.join("y")).is_dir());
    assert_eq!(mode_of(&s.root.join("z")), 0o755);
    assert_eq!(names(&s.root.join("z")), ["child", "new"]);
}

#[test]
fn long_names_through_pax_and_gnu_headers() {
    let s = Sandbox::new();
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    let mut t = Tar::new();
    t.pax(&[("path", long.as_bytes())]);
    let h = t.header("truncated", EntryType::Regular, 0o644, 2);
    t.raw(h, b"ok");
    let mut bytes = t.bytes();
    bytes.truncate(bytes.len() - 1024);
    // And a GNU long name written by the tar crate itself.
    let mut b = tar::Builder::new(bytes);
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, format!("{}/gnu", "g".repeat(200)), &b"gnu"[..])
        .unwrap();
    let bytes = b.into_inner().unwrap();
    s.apply(&bytes, WhiteoutMode::Remove).unwrap();
    assert_eq!(std::fs::read(s.root.join(&long)).unwrap(), b"ok");
    assert_eq!(
        std::fs::read(s.root.join(format!("{}/gnu", "g".repeat(200)))).unwrap(),
        b"gnu"
    );
}

#[test]
fn diff_id_covers_the_whole_stream_including_trailing_blocks() {
    let s = Sandbox::new();
    let mut bytes = Tar::new().file("f", b"data", 0o644).bytes();
    // Padding to a 10 KiB record, as tar(1) writes.
    bytes.resize(10240, 0);
    let applied = s.apply(&bytes, WhiteoutMode::Remove).unwrap();
    assert_eq!(applied.diff_id, sha(&bytes));
    assert_eq!(applied.size, 10240);
    // An empty layer is an empty stream.
    let s = Sandbox::new();
    let applied = s.apply(&[], WhiteoutMode::Remove).unwrap();
    assert_eq!((applied.diff_id, applied.size), (sha(&[]), 0));
}

#[test]
fn gzip_and_zstd_layers() {
    let mut t = Tar::new();
    t.dir("etc", 0o755)
        .file("etc/os-release", &b"NAME=test\n".repeat(1000), 0o644);
    let raw = t.bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    let gz = gz.finish().unwrap();
    let zst = ruzstd::encoding::compress_to_vec(
        raw.as_slice(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    assert!(
        zst.len() < raw.len() / 4,
        "the zstd stream is really compressed"
    );
    let cases = [
        ("application/vnd.oci.image.layer.v1.tar", raw.clone()),
        ("application/vnd.oci.image.layer.v1.tar+gzip", gz.clone()),
        (
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            gz.clone(),
        ),
        ("application/vnd.oci.image.layer.v1.tar+zstd", zst.clone()),
        // docker's "uncompressed" type on a gzip blob: sniffed.
        ("application/vnd.docker.image.rootfs.diff.tar", gz),
    ];
    for (media_type, blob) in cases {
        let s = Sandbox::new();
        let r = decompress(compression_for(media_type).unwrap(), blob.as_slice()).unwrap();
        let applied = archive::apply(&s.root, r, WhiteoutMode::Remove, &Limits::default()).unwrap();
        assert_eq!(applied.diff_id, sha(&raw), "{media_type}");
        assert_eq!(
            std::fs::read(s.root.join("etc/os-release")).unwrap().len(),
            10_000
        );
    }
}

#[test]
fn byte_limit_refuses_a_large_file_before_writing_it() {
    let s = Sandbox::new();
    let mut t = Tar::new();
    let h = t.header("big", EntryType::Regular, 0o644, 10 << 20);
    let layer = t.raw(h, &vec![7u8; 10 << 20]).bytes();
    let limits = Limits {
        max_bytes: 1 << 20,
        ..Limits::default()
    };
    let e = archive::apply(&s.root, layer.as_slice(), WhiteoutMode::Remove, &limits).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResourceExhausted, "{e}");
    assert!(!exists(&s.root.join("big")));
}

#[test]
fn byte_limit_stops_a_decompression_bomb() {
    let s = Sandbox::new();
    // A tiny layer followed by 64 MiB of zeros: kilobytes compressed.
    let mut raw = Tar::new().file("f", b"x", 0o644).bytes();
    raw.resize(64 << 20, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 1 << 20);
    let limits = Limits {
        max_bytes: 4 << 20,
        ..Limits::default()
    };
    let r = decompress(archive::Compression::Gzip, gz.as_slice()).unwrap();
    let e = archive::apply(&s.root, r, WhiteoutMode::Remove, &limits).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResourceExhausted, "{e}");
}

#[test]
fn entry_limit() {
    let s = Sandbox::new();
    let mut t = Tar::new();
    for i in 0..50 {
        t.file(&format!("f{i}"), b"", 0o644);
    }
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    let e =
        archive::apply(&s.root, t.bytes().as_slice(), WhiteoutMode::Remove, &limits).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResourceExhausted, "{e}");
    assert!(names(&s.root).len() <= 10);
}

#[test]
fn oversized_pax_header_is_refused_without_buffering_it() {
    let s = Sandbox::new();
    let mut t = Tar::new();
    t.pax(&[("comment", &vec![b'x'; 8 << 20])]);
    let layer = t.file("f", b"", 0o644).bytes();
    let e = s.apply(&layer, WhiteoutMode::Remove).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
}

#[test]
fn malformed_streams_are_invalid() {
    let garbage = vec![0x5a; 4096];
    let mut truncated = Tar::new().file("f", &[1u8; 5000], 0o644).bytes();
    truncated.truncate(2048);
    let mut bad_sum = Tar::new().file("f", b"x", 0o644).bytes();
    bad_sum[0] = b'g';
    let mut bad_uid = Tar::new();
    bad_uid.pax(&[("uid", b"4294967295")]);
    let bad_uid = bad_uid.file("f", b"", 0o644).bytes();
    for (what, layer) in [
        ("garbage", garbage),
        ("truncated", truncated),
        ("checksum", bad_sum),
        ("uid", bad_uid),
    ] {
        let s = Sandbox::new();
        let e = s.apply(&layer, WhiteoutMode::Remove).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{what}: {e}");
    }
    let s = Sandbox::new();
    let gz = decompress(archive::Compression::Gzip, &b"not gzip at all"[..]).unwrap();
    let e = archive::apply(&s.root, gz, WhiteoutMode::Remove, &Limits::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
}

/// A zstd stream from the reference encoder (`zstd`, when installed): high level, long window,
/// and two frames, as parallel compressors write.
#[test]
fn zstd_from_the_reference_encoder() {
    if Command::new("zstd").arg("--version").output().is_err() {
        eprintln!("zstd not installed: reference-encoder check skipped");
        return;
    }
    let mut t = Tar::new();
    for i in 0..50 {
        t.file(
            &format!("f{i}"),
            format!("content {i} ").repeat(500).as_bytes(),
            0o644,
        );
    }
    let raw = t.bytes();
    let zstd = |args: &[&str], input: &[u8]| -> Vec<u8> {
        let mut child = Command::new("zstd")
            .args(args)
            .args(["-q", "-c", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let (head, tail) = raw.split_at(raw.len() / 2);
    let mut two_frames = zstd(&["-19", "--long=27"], head);
    two_frames.extend(zstd(&["-3"], tail));
    let s = Sandbox::new();
    let r = decompress(archive::Compression::Zstd, two_frames.as_slice()).unwrap();
    let applied = archive::apply(&s.root, r, WhiteoutMode::Remove, &Limits::default()).unwrap();
    assert_eq!(applied.diff_id, sha(&raw));
    assert_eq!(names(&s.root).len(), 50);
}
