//! Thin, fd-relative system call wrappers the archive code is built from. Every call here acts
//! on a directory descriptor plus one path component (or on an open descriptor), so callers
//! never hand the kernel a string path that could be redirected.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::libc;
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};

/// The file type bits of a stat.
pub(crate) fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

pub(crate) fn is_dir(st: &FileStat) -> bool {
    kind(st) == SFlag::S_IFDIR
}

/// Takes ownership of a descriptor a nix call just returned.
pub(crate) fn owned(fd: i32) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open-type call, so it is a valid
    // descriptor that nothing else owns or will close.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Opens directory `path` below `root`, resolving every component (`..` and absolute symlinks
/// included) as if `root` were `/`.
pub(crate) fn open_dir_in_root(root: BorrowedFd<'_>, path: &[u8]) -> nix::Result<OwnedFd> {
    let path = if path.is_empty() { b"." as &[u8] } else { path };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    // The kernel answers EAGAIN when a concurrent rename or mount might have let `..` escape;
    // the lookup is simply retried.
    let mut tries = 0;
    loop {
        match openat2(root.as_raw_fd(), OsStr::from_bytes(path), how) {
            Err(Errno::EAGAIN) if tries < 16 => tries += 1,
            r => return r.map(owned),
        }
    }
}

/// Opens the directory `name` in `dir` without following a symlink there.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        flags,
        Mode::empty(),
    )
    .map(owned)
}

/// Opens the regular file `name` in `dir` for reading, never through a symlink.
pub(crate) fn open_file_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<std::fs::File> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd = openat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        flags,
        Mode::empty(),
    )?;
    Ok(std::fs::File::from(owned(fd)))
}

/// Creates `name` in `dir` as a new regular file; fails if anything (a symlink included) is
/// already there.
pub(crate) fn create_file_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<std::fs::File> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        flags,
        Mode::from_bits_truncate(0o600),
    )?;
    Ok(std::fs::File::from(owned(fd)))
}

/// `lstat` of `name` in `dir`; `None` when nothing is there.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<Option<FileStat>> {
    match fstatat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The names in a directory, `.` and `..` left out, sorted bytewise.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> nix::Result<Vec<Vec<u8>>> {
    // A fresh open file description, so the listing starts at the beginning whatever was read
    // through `dir` before.
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut d = nix::dir::Dir::openat(Some(dir.as_raw_fd()), ".", flags, Mode::empty())?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// What an xattr call acts on: an open file or directory, or one name in a directory (for
/// symlinks and device nodes, which must not be opened).
#[derive(Clone, Copy)]
pub(crate) enum XattrTarget<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a [u8]),
}

impl XattrTarget<'_> {
    /// `/proc/self/fd/<dir>/<name>`: the kernel resolves our own descriptor, then looks up one
    /// component, which the `l*xattr` calls do not follow.
    fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<CString> {
        let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        p.extend_from_slice(name);
        CString::new(p).map_err(|_| Errno::EINVAL)
    }
}

pub(crate) fn set_xattr(t: XattrTarget<'_>, key: &[u8], value: &[u8]) -> nix::Result<()> {
    let key = CString::new(key).map_err(|_| Errno::EINVAL)?;
    let res = match t {
        // SAFETY: `key` is NUL-terminated, `value` is a live slice whose length is passed, and
        // `fd` is an open descriptor borrowed for the call.
        XattrTarget::Fd(fd) => unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                key.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        },
        XattrTarget::At(dir, name) => {
            let path = XattrTarget::proc_path(dir, name)?;
            // SAFETY: both strings are NUL-terminated and `value` is a live slice whose length
            // is passed.
            unsafe {
                libc::lsetxattr(
                    path.as_ptr(),
                    key.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            }
        }
    };
    Errno::result(res).map(drop)
}

/// Calls a size-probing xattr getter twice: once for the size, once into a buffer of it,
/// retrying if the value grew in between.
fn read_sized(mut call: impl FnMut(*mut libc::c_void, usize) -> isize) -> nix::Result<Vec<u8>> {
    loop {
        let n = Errno::result(call(std::ptr::null_mut(), 0))?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; n as usize];
        match Errno::result(call(buf.as_mut_ptr().cast(), buf.len())) {
            Ok(got) => {
                buf.truncate(got as usize);
                return Ok(buf);
            }
            Err(Errno::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// All xattrs as (name, value), sorted by name; none when the filesystem has no xattrs.
pub(crate) fn list_xattrs(t: XattrTarget<'_>) -> nix::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let path = match t {
        XattrTarget::At(dir, name) => Some(XattrTarget::proc_path(dir, name)?),
        XattrTarget::Fd(_) => None,
    };
    let names = read_sized(|buf, len| match (t, &path) {
        // SAFETY: `buf` is null with `len` 0 or a writable buffer of `len` bytes; `fd` is open.
        (XattrTarget::Fd(fd), _) => unsafe { libc::flistxattr(fd.as_raw_fd(), buf.cast(), len) },
        // SAFETY: as above, and `p` is NUL-terminated.
        (_, Some(p)) => unsafe { libc::llistxattr(p.as_ptr(), buf.cast(), len) },
        (_, None) => unreachable!("an At target always has a path"),
    });
    let names = match names {
        Ok(n) => n,
        Err(Errno::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for key in names.split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let ckey = CString::new(key).map_err(|_| Errno::EINVAL)?;
        let value = read_sized(|buf, len| match (t, &path) {
            // SAFETY: `ckey` is NUL-terminated, `buf` is null with `len` 0 or writable for
            // `len` bytes, `fd` is open.
            (XattrTarget::Fd(fd), _) => unsafe {
                libc::fgetxattr(fd.as_raw_fd(), ckey.as_ptr(), buf, len)
            },
            // SAFETY: as above, and `p` is NUL-terminated.
            (_, Some(p)) => unsafe { libc::lgetxattr(p.as_ptr(), ckey.as_ptr(), buf, len) },
            (_, None) => unreachable!("an At target always has a path"),
        });
        match value {
            Ok(v) => out.push((key.to_vec(), v)),
            // Removed between the listing and the read.
            Err(Errno::ENODATA) => continue,
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// A path component as the `OsStr` nix calls take.
pub(crate) fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}
