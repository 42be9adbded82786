//! The native snapshotter's tree copy keeps everything a layer can hold.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use berth_snapshotter::native::copy_tree;
use nix::sys::stat::{Mode, SFlag};

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let path = CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = CString::new(name).unwrap();
    // SAFETY: both strings are NUL-terminated and `value` is valid for its length.
    let r = unsafe {
        nix::libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(r, 0, "lsetxattr: {}", std::io::Error::last_os_error());
}

fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = CString::new(name).unwrap();
    let mut buf = vec![0u8; 1024];
    // SAFETY: both strings are NUL-terminated and `buf` is valid for its length.
    let n = unsafe {
        nix::libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

#[test]
fn copies_everything_without_following_links() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "host").unwrap();

    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("file"), "content").unwrap();
    std::fs::write(src.join("sub/deeper/big"), vec![1u8; 300_000]).unwrap();
    std::os::unix::fs::chown(src.join("file"), Some(1000), Some(2000)).unwrap();
    std::fs::set_permissions(src.join("file"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::hard_link(src.join("file"), src.join("sub/hardlink")).unwrap();
    std::os::unix::fs::symlink(&outside, src.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../file", src.join("sub/rel-link")).unwrap();
    std::os::unix::fs::lchown(src.join("sub/rel-link"), Some(5), Some(6)).unwrap();
    nix::sys::stat::mknod(
        &src.join("null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    nix::sys::stat::mknod(&src.join("whiteout"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
    nix::unistd::mkfifo(&src.join("fifo"), Mode::from_bits_truncate(0o640)).unwrap();
    set_xattr(&src.join("file"), "user.note", b"hello");
    set_xattr(&src.join("sub"), "trusted.overlay.opaque", b"y");
    set_xattr(
        &src.join("file"),
        "security.capability",
        &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    std::fs::set_permissions(src.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let old = nix::sys::time::TimeSpec::new(1_000_000_000, 123_456_789);
    for p in ["sub/deeper", "sub", "abs-link", "file"] {
        nix::sys::stat::utimensat(
            None,
            &src.join(p),
            &old,
            &old,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }

    copy_tree(&src, &dst).unwrap();

    let md = |p: &str| std::fs::symlink_metadata(dst.join(p)).unwrap();
    assert_eq!(
        std::fs::read_to_string(dst.join("file")).unwrap(),
        "content"
    );
    assert_eq!(
        std::fs::read(dst.join("sub/deeper/big")).unwrap().len(),
        300_000
    );
    let f = md("file");
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (1000, 2000, 0o4755));
    assert_eq!(f.ino(), md("sub/hardlink").ino(), "hard link kept");
    assert_eq!(f.nlink(), 2);
    assert_ne!(f.ino(), std::fs::metadata(src.join("file")).unwrap().ino());
    assert_eq!((f.mtime(), f.mtime_nsec()), (1_000_000_000, 123_456_789));
    let sub = md("sub");
    assert_eq!(sub.mode() & 0o7777, 0o750);
    assert_eq!(
        (sub.mtime(), sub.mtime_nsec()),
        (1_000_000_000, 123_456_789),
        "dir times set last"
    );
    assert_eq!(md("sub/deeper").mtime(), 1_000_000_000);
    assert_eq!(std::fs::read_link(dst.join("abs-link")).unwrap(), outside);
    assert_eq!(md("abs-link").mtime(), 1_000_000_000, "symlink's own times");
    assert!(!outside.join("file").exists() && std::fs::read_dir(&outside).unwrap().count() == 1);
    let rl = md("sub/rel-link");
    assert!(rl.file_type().is_symlink());
    assert_eq!((rl.uid(), rl.gid()), (5, 6));
    let null = md("null");
    assert!(null.file_type().is_char_device());
    let src_null = std::fs::symlink_metadata(src.join("null")).unwrap();
    assert_eq!(
        (null.rdev(), null.mode()),
        (nix::sys::stat::makedev(1, 3), src_null.mode())
    );
    assert_eq!(md("whiteout").rdev(), 0);
    assert!(md("fifo").file_type().is_fifo());
    assert_eq!(
        md("fifo").mode(),
        std::fs::symlink_metadata(src.join("fifo")).unwrap().mode()
    );
    assert_eq!(
        get_xattr(&dst.join("file"), "user.note").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        get_xattr(&dst.join("sub"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(get_xattr(&dst.join("file"), "security.capability").is_some());
}

#[test]
fn refuses_an_existing_destination_and_a_non_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::create_dir(dir.path().join("dst")).unwrap();
    assert!(copy_tree(&dir.path().join("src"), &dir.path().join("dst")).is_err());
    std::fs::write(dir.path().join("file"), "x").unwrap();
    assert!(copy_tree(&dir.path().join("file"), &dir.path().join("d2")).is_err());
}
