//! `archive::write_diff`: the layer between two trees, checked by applying it back
//! (apply(write_diff(A, B)) onto a copy of A gives B, in both whiteout modes) and against
//! containerd's `TestDiffTar` expectations for entry order, parents, hard links and whiteouts.
//! Run as root.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod archive_util;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use archive_util::*;
use berth_snapshotter::archive::{self, Limits, WhiteoutMode};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

fn mkdir(root: &Path, rel: &str, mode: u32) {
    std::fs::create_dir_all(root.join(rel)).unwrap();
    set_mode(&root.join(rel), mode);
}

fn file(root: &Path, rel: &str, data: &[u8], mode: u32) {
    write(&root.join(rel), data, mode);
}

fn link(root: &Path, from: &str, to: &str) {
    std::fs::hard_link(root.join(from), root.join(to)).unwrap();
}

fn set_times(p: &Path, secs: i64) {
    let t = TimeSpec::new(secs, 0);
    utimensat(None, p, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
}

/// Gives everything under `root` whole-second times, children before their directories.
fn fix_times(root: &Path, secs: i64) {
    let mut paths: Vec<String> = snapshot(root).0.into_keys().collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for p in paths {
        set_times(&root.join(p), secs);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a");
}

fn diff(lower: &Path, upper: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    archive::write_diff(lower, upper, &mut out).unwrap();
    out
}

/// (name, type, link) of every entry, PAX headers folded in by the parser.
fn entries(layer: &[u8]) -> Vec<(String, char, String)> {
    let mut ar = tar::Archive::new(layer);
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap())
                .unwrap_or_default();
            (name, e.header().entry_type().as_byte() as char, link)
        })
        .collect()
}

/// A tree with one of everything.
fn rich_tree(root: &Path) {
    mkdir(root, "etc", 0o755);
    file(root, "etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644);
    link(root, "etc/passwd", "etc/passwd.link");
    mkdir(root, "bin", 0o755);
    file(root, "bin/su", b"#!/bin/true\n", 0o4755);
    std::os::unix::fs::symlink("su", root.join("bin/sudo")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs-link")).unwrap();
    mkdir(root, "tmp", 0o1777);
    mkdir(root, "home/user", 0o700);
    file(root, "home/user/.profile", b"export A=1\n", 0o600);
    std::os::unix::fs::chown(root.join("home/user"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::chown(root.join("home/user/.profile"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::lchown(root.join("bin/sudo"), Some(7), Some(8)).unwrap();
    xattr::set(root.join("etc/passwd"), "user.origin", b"test").unwrap();
    xattr::set(root.join("home/user"), "user.dir", b"d").unwrap();
    mkdir(root, "dev", 0o755);
    nix::sys::stat::mknod(
        &root.join("dev/null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    nix::unistd::mkfifo(
        &root.join("dev/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let long = format!("{}/{}", "l".repeat(110), "n".repeat(120));
    mkdir(root, &"l".repeat(110), 0o755);
    file(root, &long, b"long", 0o644);
    file(root, "same-size", b"aaaa", 0o644);
    file(root, "unmod", b"unmodified", 0o644);
    mkdir(root, "gone/deep", 0o755);
    file(root, "gone/deep/f", b"x", 0o644);
    file(root, "f2d", b"file", 0o644);
    mkdir(root, "d2f/sub", 0o755);
    file(root, "d2f/sub/x", b"x", 0o644);
    mkdir(root, "links", 0o755);
    fix_times(root, 1_600_000_000);
}

/// Every kind of change, made to a copy of [`rich_tree`].
fn change_tree(root: &Path) {
    // Same size, same whole-second mtime: only the content tells.
    file(root, "same-size", b"bbbb", 0o644);
    set_times(&root.join("same-size"), 1_600_000_000);
    set_mode(&root.join("bin/su"), 0o755);
    std::os::unix::fs::chown(root.join("etc/passwd"), Some(0), Some(42)).unwrap();
    std::fs::remove_file(root.join("bin/sudo")).unwrap();
    std::os::unix::fs::symlink("su-new", root.join("bin/sudo")).unwrap();
    std::fs::remove_dir_all(root.join("gone")).unwrap();
    std::fs::remove_file(root.join("f2d")).unwrap();
    mkdir(root, "f2d", 0o750);
    file(root, "f2d/inner", b"inner", 0o644);
    std::fs::remove_dir_all(root.join("d2f")).unwrap();
    file(root, "d2f", b"now a file", 0o644);
    link(root, "unmod", "links/new");
    mkdir(root, "new/a/b", 0o755);
    file(root, "new/a/b/c", b"new", 0o644);
    xattr::set(root.join("home/user/.profile"), "user.changed", b"1").unwrap();
    nix::unistd::mkfifo(
        &root.join("new/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    std::os::unix::net::UnixListener::bind(root.join("new/socket")).unwrap();
    set_times(&root.join("new/a/b/c"), 1_700_000_000);
}

fn without_sockets(mut t: Tree) -> Tree {
    t.0.retain(|_, n| n.kind != "socket");
    t
}

#[test]
fn base_layer_round_trip() {
    let s = Sandbox::new();
    let (empty, a, out) = (
        s.path().join("empty"),
        s.path().join("a"),
        s.path().join("out"),
    );
    for d in [&empty, &a, &out] {
        std::fs::create_dir(d).unwrap();
    }
    rich_tree(&a);
    let layer = diff(&empty, &a);
    archive::apply(
        &out,
        layer.as_slice(),
        WhiteoutMode::Remove,
        &Limits::default(),
    )
    .unwrap();
    assert_same_tree(&snapshot(&a), &snapshot(&out));
}

#[test]
fn apply_of_diff_onto_a_copy_of_lower_gives_upper() {
    let s = Sandbox::new();
    let (a, b, c) = (s.path().join("a"), s.path().join("b"), s.path().join("c"));
    for d in [&a, &b, &c] {
        std::fs::create_dir(d).unwrap();
    }
    rich_tree(&a);
    copy_tree(&a, &b);
    change_tree(&b);
    copy_tree(&a, &c);
    let layer = diff(&a, &b);
    let got = entries(&layer);
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    assert!(
        names.contains(&"same-size"),
        "a content-only change is found: {names:?}"
    );
    assert!(names.contains(&".wh.gone"));
    assert!(!names
        .iter()
        .any(|n| n.starts_with("gone/") || n.contains("socket")));
    // The chowned file is written; its unchanged hard link follows as a link to it.
    let link = ("etc/passwd.link".to_string(), '1', "etc/passwd".to_string());
    assert!(got.contains(&link), "{got:?}");

    archive::apply(
        &c,
        layer.as_slice(),
        WhiteoutMode::Remove,
        &Limits::default(),
    )
    .unwrap();
    assert_same_tree(&without_sockets(snapshot(&b)), &snapshot(&c));
}

#[test]
fn overlay_mode_apply_of_diff_mounted_over_lower_gives_upper() {
    let s = Sandbox::new();
    let (a, b, upper, work, merged) = (
        s.path().join("a"),
        s.path().join("b"),
        s.path().join("u"),
        s.path().join("w"),
        s.path().join("m"),
    );
    for d in [&a, &b, &upper, &work, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    rich_tree(&a);
    copy_tree(&a, &b);
    change_tree(&b);
    let layer = diff(&a, &b);
    archive::apply(
        &upper,
        layer.as_slice(),
        WhiteoutMode::Overlay,
        &Limits::default(),
    )
    .unwrap();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        a.display(),
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .unwrap();
    let got = snapshot(&merged);
    nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert_same_tree(&without_sockets(snapshot(&b)), &got);
}

#[test]
fn diff_is_deterministic() {
    let s = Sandbox::new();
    let (a, b) = (s.path().join("a"), s.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    rich_tree(&a);
    copy_tree(&a, &b);
    change_tree(&b);
    let one = diff(&a, &b);
    assert!(one == diff(&a, &b), "two diffs of the same trees differ");
}

type Build = fn(&Path);

/// containerd's `TestDiffTar`: `a` builds the lower tree, `b` changes a copy of it.
fn diff_case(name: &str, a: Build, b: Build, want: &[(&str, char, &str)]) {
    let s = Sandbox::new();
    let (lower, upper) = (s.path().join("a"), s.path().join("b"));
    std::fs::create_dir(&lower).unwrap();
    std::fs::create_dir(&upper).unwrap();
    a(&lower);
    copy_tree(&lower, &upper);
    b(&upper);
    let got = entries(&diff(&lower, &upper));
    let want: Vec<(String, char, String)> = want
        .iter()
        .map(|(n, t, l)| (n.to_string(), *t, l.to_string()))
        .collect();
    assert_eq!(got, want, "{name}");
}

#[test]
fn containerd_diff_tar_cases() {
    diff_case("EmptyDiff", |r| mkdir(r, "etc", 0o755), |_| {}, &[]);
    diff_case(
        "ParentInclusion",
        |r| {
            mkdir(r, "d1", 0o755);
            mkdir(r, "d2", 0o770);
        },
        |r| {
            mkdir(r, "d1/d", 0o700);
            file(r, "d2/f", b"ok", 0o644);
        },
        &[
            ("d1/", '5', ""),
            ("d1/d/", '5', ""),
            ("d2/", '5', ""),
            ("d2/f", '0', ""),
        ],
    );
    diff_case(
        "HardlinkParentInclusion",
        |r| {
            for d in ["d1", "d2", "d3", "d4", "d5", "d6"] {
                mkdir(r, d, 0o755);
            }
            for f in ["d1/f1", "d2/f1", "d4/f1", "d5/f1"] {
                file(r, f, b"link me", 0o644);
            }
            link(r, "d1/f1", "d6/l1");
            link(r, "d5/f1", "d6/l2");
        },
        |r| {
            link(r, "d1/f1", "d2/l1");
            link(r, "d4/f1", "d3/l1");
            std::fs::remove_file(r.join("d6/l1")).unwrap();
            std::fs::remove_file(r.join("d6/l2")).unwrap();
        },
        &[
            ("d2/", '5', ""),
            ("d2/l1", '0', ""),
            ("d1/", '5', ""),
            ("d1/f1", '1', "d2/l1"),
            ("d3/", '5', ""),
            ("d3/l1", '0', ""),
            ("d4/", '5', ""),
            ("d4/f1", '1', "d3/l1"),
            ("d6/", '5', ""),
            ("d6/.wh.l1", '0', ""),
            ("d6/.wh.l2", '0', ""),
        ],
    );
    diff_case(
        "UpdateDirectoryPermission",
        |r| {
            mkdir(r, "d1", 0o755);
            mkdir(r, "d2", 0o770);
        },
        |r| {
            set_mode(&r.join("d1"), 0o777);
            mkdir(r, "d1/d", 0o700);
            file(r, "d2/f", b"ok", 0o644);
        },
        &[
            ("d1/", '5', ""),
            ("d1/d/", '5', ""),
            ("d2/", '5', ""),
            ("d2/f", '0', ""),
        ],
    );
    diff_case(
        "WhiteoutIncludesParents",
        |r| {
            for d in ["d1", "d2", "d3", "d4", "d5"] {
                mkdir(r, d, 0o755);
                file(r, &format!("{d}/f1"), b"content", 0o644);
            }
            file(r, "d2/f2", b"content", 0o644);
        },
        |r| {
            for f in ["d1/f1", "d2/f1", "d3/f1", "d4/f1"] {
                std::fs::remove_file(r.join(f)).unwrap();
            }
            set_mode(&r.join("d2/f2"), 0o777);
            file(r, "d3/f2", b"content", 0o644);
            file(r, "d4/f0", b"content", 0o644);
            std::fs::remove_dir_all(r.join("d5")).unwrap();
        },
        &[
            ("d1/", '5', ""),
            ("d1/.wh.f1", '0', ""),
            ("d2/", '5', ""),
            ("d2/.wh.f1", '0', ""),
            ("d2/f2", '0', ""),
            ("d3/", '5', ""),
            ("d3/.wh.f1", '0', ""),
            ("d3/f2", '0', ""),
            ("d4/", '5', ""),
            ("d4/f0", '0', ""),
            ("d4/.wh.f1", '0', ""),
            (".wh.d5", '0', ""),
        ],
    );
    diff_case(
        "WhiteoutParentRemoval",
        |r| {
            mkdir(r, "d1", 0o755);
            mkdir(r, "d2", 0o755);
            file(r, "d2/f1", b"content", 0o644);
        },
        |r| {
            std::fs::remove_dir_all(r.join("d1")).unwrap();
            std::fs::remove_dir_all(r.join("d2")).unwrap();
            mkdir(r, "d3", 0o755);
        },
        &[(".wh.d1", '0', ""), (".wh.d2", '0', ""), ("d3/", '5', "")],
    );
    diff_case(
        "IgnoreSockets",
        |r| file(r, "f1", b"content", 0o644),
        |r| {
            file(r, "f2", b"content", 0o644);
            std::os::unix::net::UnixListener::bind(r.join("s0")).unwrap();
            file(r, "f3", b"content", 0o644);
        },
        &[("f2", '0', ""), ("f3", '0', "")],
    );
}

#[test]
fn whiteouts_carry_no_metadata_and_files_carry_truncated_times() {
    let s = Sandbox::new();
    let (a, b) = (s.path().join("a"), s.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    file(&a, "old", b"x", 0o644);
    file(&b, "new", b"y", 0o640);
    let t = TimeSpec::new(1_650_000_000, 999_999_999);
    utimensat(
        None,
        &b.join("new"),
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    let layer = diff(&a, &b);
    let mut ar = tar::Archive::new(layer.as_slice());
    let got: Vec<(String, u32, u64, u64)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("new".to_string(), 0o640, 1_650_000_000, 0),
            (".wh.old".to_string(), 0, 0, 0)
        ]
    );
    assert!(lstat(&b.join("new")).mtime_nsec() != 0);
}

/// Archives written by GNU tar (an independent writer: POSIX with xattrs, and GNU long names)
/// apply to the same tree.
#[test]
fn gnu_tar_archives_apply_to_the_tree_they_came_from() {
    let s = Sandbox::new();
    let src = s.path().join("src");
    std::fs::create_dir(&src).unwrap();
    rich_tree(&src);
    let want = snapshot(&src);
    for format in [
        &["--format=posix", "--xattrs", "--xattrs-include=*"][..],
        &["--format=gnu"],
    ] {
        let out = Command::new("tar")
            .args(["--numeric-owner", "-C"])
            .arg(&src)
            .args(format)
            .args(["-cf", "-", "."])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tar {format:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dest = s.path().join(format[0].trim_start_matches("--format="));
        std::fs::create_dir(&dest).unwrap();
        let applied = archive::apply(
            &dest,
            out.stdout.as_slice(),
            WhiteoutMode::Remove,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(applied.size, out.stdout.len() as u64);
        let mut got = snapshot(&dest);
        if format[0] == "--format=gnu" {
            // The GNU format has no xattrs.
            let mut want = snapshot(&src);
            want.0.values_mut().for_each(|n| n.xattrs.clear());
            got.0.values_mut().for_each(|n| n.xattrs.clear());
            assert_same_tree(&want, &got);
        } else {
            assert_same_tree(&want, &got);
        }
    }
}
