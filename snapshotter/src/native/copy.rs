//! A faithful copy of a snapshot's tree: contents, modes (setuid bits included), ownership,
//! extended attributes (capabilities, overlay markers), timestamps, symlinks, device nodes,
//! fifos, sockets, and hard links within the tree. Nothing is followed: every call on a source
//! or destination path either works on the link itself or refuses a link (`O_NOFOLLOW`).
//!
//! The source is a committed snapshot (never written to), the destination a fresh temp dir that
//! only this copy writes to; both are under the snapshotter's 0700 root.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;

use crate::{Error, Result};

/// Copies the tree at `src` to `dst`, which must not exist.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let mut c = Copier {
        links: HashMap::new(),
    };
    let md = lstat(src)?;
    if !md.is_dir() {
        return Err(Error::invalid(format!(
            "copy {}: not a directory",
            src.display()
        )));
    }
    c.copy(src, dst, &md)
}

struct Copier {
    /// Inodes with more than one link already copied: (dev, ino) → their first copy.
    links: HashMap<(u64, u64), PathBuf>,
}

fn lstat(p: &Path) -> Result<Metadata> {
    std::fs::symlink_metadata(p).map_err(|e| Error::io(format_args!("stat {}", p.display()), e))
}

fn io<'a>(what: &'static str, p: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(format_args!("{what} {}", p.display()), e)
}

fn nix_io<'a>(what: &'static str, p: &'a Path) -> impl FnOnce(nix::Error) -> Error + 'a {
    move |e| Error::io(format_args!("{what} {}", p.display()), e.into())
}

impl Copier {
    fn copy(&mut self, src: &Path, dst: &Path, md: &Metadata) -> Result<()> {
        let ft = md.file_type();
        if !ft.is_dir() && md.nlink() > 1 {
            if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                // linkat without AT_SYMLINK_FOLLOW: a hard-linked symlink stays a symlink.
                return std::fs::hard_link(first, dst).map_err(io("link", dst));
            }
            self.links.insert((md.dev(), md.ino()), dst.to_path_buf());
        }
        if ft.is_dir() {
            std::fs::create_dir(dst).map_err(io("create", dst))?;
            let entries = std::fs::read_dir(src).map_err(io("read", src))?;
            for entry in entries {
                let entry = entry.map_err(io("read", src))?;
                let child = entry.path();
                let cmd = lstat(&child)?;
                self.copy(&child, &dst.join(entry.file_name()), &cmd)?;
            }
            set_owner_mode(dst, md)?;
        } else if ft.is_file() {
            copy_file(src, dst, md)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(src).map_err(io("read link", src))?;
            std::os::unix::fs::symlink(&target, dst).map_err(io("symlink", dst))?;
            std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()))
                .map_err(io("chown", dst))?;
        } else {
            let kind = if ft.is_char_device() {
                SFlag::S_IFCHR
            } else if ft.is_block_device() {
                SFlag::S_IFBLK
            } else if ft.is_fifo() {
                SFlag::S_IFIFO
            } else if ft.is_socket() {
                SFlag::S_IFSOCK
            } else {
                return Err(Error::invalid(format!(
                    "copy {}: unknown file type",
                    src.display()
                )));
            };
            nix::sys::stat::mknod(dst, kind, Mode::from_bits_truncate(0o600), md.rdev())
                .map_err(nix_io("mknod", dst))?;
            set_owner_mode(dst, md)?;
        }
        copy_xattrs(src, dst)?;
        // Last, so creating children and setting xattrs do not move a directory's times.
        let at = TimeSpec::new(md.atime(), md.atime_nsec());
        let mt = TimeSpec::new(md.mtime(), md.mtime_nsec());
        nix::sys::stat::utimensat(
            None,
            dst,
            &at,
            &mt,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(nix_io("set times of", dst))
    }
}

fn copy_file(src: &Path, dst: &Path, md: &Metadata) -> Result<()> {
    let mut from = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(src)
        .map_err(io("open", src))?;
    let mut to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dst)
        .map_err(io("create", dst))?;
    std::io::copy(&mut from, &mut to).map_err(io("copy to", dst))?;
    set_owner_mode_fd(&to, dst, md)
}

/// Owner first: chown clears setuid and setgid bits, chmod then restores them.
fn set_owner_mode(p: &Path, md: &Metadata) -> Result<()> {
    std::os::unix::fs::lchown(p, Some(md.uid()), Some(md.gid())).map_err(io("chown", p))?;
    // Only called for directories and device nodes we just made: chmod cannot hit a symlink.
    nix::sys::stat::fchmodat(
        None,
        p,
        Mode::from_bits_truncate(md.mode() & 0o7777),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(nix_io("chmod", p))
}

fn set_owner_mode_fd(f: &File, p: &Path, md: &Metadata) -> Result<()> {
    let fd = f.as_raw_fd();
    nix::unistd::fchown(
        fd,
        Some(nix::unistd::Uid::from_raw(md.uid())),
        Some(nix::unistd::Gid::from_raw(md.gid())),
    )
    .map_err(nix_io("chown", p))?;
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(md.mode() & 0o7777))
        .map_err(nix_io("chmod", p))
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("path {}: contains a NUL", p.display())))
}

/// Calls `f(buf)` with a growing buffer until it fits (the attribute may change in between).
fn sized(what: &str, p: &Path, mut f: impl FnMut(&mut [u8]) -> isize) -> Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = f(&mut buf);
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        match nix::errno::Errno::last() {
            nix::errno::Errno::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            nix::errno::Errno::ENOTSUP | nix::errno::Errno::ENODATA => return Ok(None),
            e => return Err(Error::io(format_args!("{what} {}", p.display()), e.into())),
        }
    }
}

fn copy_xattrs(src: &Path, dst: &Path) -> Result<()> {
    let (s, d) = (cpath(src)?, cpath(dst)?);
    let names = sized("list xattrs of", src, |buf| {
        // SAFETY: `s` is a NUL-terminated path; `buf` is valid for writes of `buf.len()` bytes.
        unsafe { libc::llistxattr(s.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
    })?
    .unwrap_or_default();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("split on NUL leaves no NUL");
        let value = sized("read xattr of", src, |buf| {
            // SAFETY: `s` and `cname` are NUL-terminated; `buf` is valid for `buf.len()` bytes.
            unsafe {
                libc::lgetxattr(
                    s.as_ptr(),
                    cname.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            }
        })?;
        let Some(value) = value else { continue };
        // SAFETY: `d` and `cname` are NUL-terminated; `value` is valid for `value.len()` bytes.
        let r = unsafe {
            libc::lsetxattr(
                d.as_ptr(),
                cname.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if r != 0 {
            let e = nix::errno::Errno::last();
            if e == nix::errno::Errno::ENOTSUP {
                tracing::debug!(
                    "xattr {:?} of {}: not supported here, skipped",
                    OsStr::from_bytes(name),
                    dst.display()
                );
                continue;
            }
            return Err(Error::io(
                format_args!(
                    "set xattr {:?} of {}",
                    OsStr::from_bytes(name),
                    dst.display()
                ),
                e.into(),
            ));
        }
    }
    Ok(())
}
