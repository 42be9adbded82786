//! The target of an apply: entry names cleaned lexically, their parents resolved inside the
//! root (missing directories created on the way), and trees removed without ever following a
//! symlink.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{readlinkat, OFlag};
use nix::sys::stat::{fchmod, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::lowers::Lowers;
use super::sys::{is_dir, kind, list_dir, lstat_at, open_dir_at, open_dir_in_root, owned};
use crate::{Error, Result};

/// Symlinks followed while resolving one path before giving up, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// An entry name split into components the way containerd cleans it (`filepath.Clean` against
/// `/`): empty and `.` components dropped, `..` removing the one before it and clamped at the
/// top. What is left names a path below the root, but may still cross symlinks, which only
/// resolution inside the root makes safe.
pub(crate) fn clean(name: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The directory every effect of one apply stays inside.
pub(crate) struct Root {
    fd: OwnedFd,
    /// Where directories created on the way take their attributes from (overlay upperdirs).
    lowers: Lowers,
}

impl Root {
    /// Opens `path` (symlinks in it followed: the caller chose it) as the root.
    pub(crate) fn open(path: &Path) -> Result<Root> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(path, flags, Mode::empty())
            .map_err(|e| Error::io(format!("open layer target {}", path.display()), e.into()))?;
        Ok(Root {
            fd: owned(fd),
            lowers: Lowers::default(),
        })
    }

    /// The same root, creating missing directories with the attributes `lowers` give them.
    pub(crate) fn with_lowers(self, lowers: Lowers) -> Root {
        Root { lowers, ..self }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens the directory `comps` inside the root, with `openat2(RESOLVE_IN_ROOT)`. When
    /// that finds something missing, [`Root::walk`] resolves again the way containerd's
    /// `RootPath` does, creating missing directories (0755) if `create` is set.
    pub(crate) fn dir(&self, comps: &[&[u8]], create: bool) -> nix::Result<OwnedFd> {
        match open_dir_in_root(self.fd(), &comps.join(&b'/')) {
            Err(Errno::ENOENT) => self.walk(comps, create),
            r => r,
        }
    }

    /// Walks `comps` one component at a time from the root, each step an `openat` with
    /// O_NOFOLLOW on a descriptor already inside the root. Symlinks are expanded here rather
    /// than by the kernel: absolute targets restart at the root, `..` never leaves it (the
    /// clamping RESOLVE_IN_ROOT does; CVE-2021-38511: `link -> ..` then `link/x/y` must not
    /// create directories outside), and a target is cleaned lexically first, so
    /// `missing/../etc` means `etc` as it does for containerd.
    fn walk(&self, comps: &[&[u8]], create: bool) -> nix::Result<OwnedFd> {
        let mut stack = vec![self.fd.try_clone().map_err(io_errno)?];
        // The resolved path of `stack`'s top below the root, for [`Lowers::copy_attrs`].
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut pending: VecDeque<Vec<u8>> = comps.iter().map(|c| c.to_vec()).collect();
        let mut links = 0;
        while let Some(c) = pending.pop_front() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                        names.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let top = stack.last().expect("the root is never popped").as_fd();
            match lstat_at(top, &c)? {
                Some(st) if is_dir(&st) => {
                    stack.push(open_dir_at(top, &c)?);
                    names.push(c);
                }
                Some(st) if kind(&st) == SFlag::S_IFLNK => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::ELOOP);
                    }
                    let target = readlinkat(Some(top.as_raw_fd()), OsStr::from_bytes(&c))?;
                    let target = target.into_vec();
                    if target.starts_with(b"/") {
                        stack.truncate(1);
                        names.clear();
                    }
                    for part in clean_link(&target).into_iter().rev() {
                        pending.push_front(part.to_vec());
                    }
                }
                Some(_) => return Err(Errno::ENOTDIR),
                None if !create => return Err(Errno::ENOENT),
                None => {
                    let created = match mkdirat(
                        Some(top.as_raw_fd()),
                        OsStr::from_bytes(&c),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) => true,
                        Err(Errno::EEXIST) => false,
                        Err(e) => return Err(e),
                    };
                    let fd = open_dir_at(top, &c)?;
                    names.push(c);
                    if created {
                        // The umask must not narrow the default.
                        fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o755))?;
                        self.lowers.copy_attrs(&names, &fd)?;
                    }
                    stack.push(fd);
                }
            }
        }
        Ok(stack.pop().expect("the root is never popped"))
    }
}

/// A symlink target cleaned lexically: empty and `.` components dropped and `name/..` pairs
/// cancelled; leading `..` components stay, to climb from the link's directory.
fn clean_link(target: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in target.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." if out.last().is_some_and(|l| *l != b"..") => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO))
}

fn unlink(dir: BorrowedFd<'_>, name: &[u8], flag: UnlinkatFlags) -> nix::Result<()> {
    match unlinkat(Some(dir.as_raw_fd()), OsStr::from_bytes(name), flag) {
        Err(Errno::ENOENT) => Ok(()),
        r => r,
    }
}

/// A directory being emptied: its name in the directory below it on the stack, its descriptor,
/// and the subdirectories still to empty.
struct Frame {
    name: Vec<u8>,
    fd: OwnedFd,
    subdirs: Vec<Vec<u8>>,
}

/// Opens `name` in `parent`, unlinks every non-directory in it, and lists its subdirectories.
fn open_frame(parent: BorrowedFd<'_>, name: &[u8]) -> nix::Result<Frame> {
    let fd = open_dir_at(parent, name)?;
    let mut subdirs = Vec::new();
    for child in list_dir(fd.as_fd())? {
        match lstat_at(fd.as_fd(), &child)? {
            Some(st) if is_dir(&st) => subdirs.push(child),
            Some(_) => unlink(fd.as_fd(), &child, UnlinkatFlags::NoRemoveDir)?,
            None => {}
        }
    }
    Ok(Frame {
        name: name.to_vec(),
        fd,
        subdirs,
    })
}

/// Removes `name` in `dir` and everything below it, like `rm -rf`, without following symlinks
/// and without recursion (a hostile tree may be deep). Missing is fine.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
    match lstat_at(dir, name)? {
        None => return Ok(()),
        Some(st) if !is_dir(&st) => return unlink(dir, name, UnlinkatFlags::NoRemoveDir),
        Some(_) => {}
    }
    let mut stack = vec![open_frame(dir, name)?];
    loop {
        let top = stack.last_mut().expect("popped only when emptied below");
        if let Some(sub) = top.subdirs.pop() {
            let frame = open_frame(top.fd.as_fd(), &sub)?;
            stack.push(frame);
            continue;
        }
        let done = stack.pop().expect("checked above");
        let parent = stack.last().map_or(dir, |f| f.fd.as_fd());
        unlink(parent, &done.name, UnlinkatFlags::RemoveDir)?;
        if stack.is_empty() {
            return Ok(());
        }
    }
}

/// Empties `dir` of everything `keep` rejects, descending into kept directories: what an
/// opaque marker means for a plain tree, where `keep` recognises what this layer wrote. Depth
/// first with one descriptor per level, so neither wide nor deep trees exhaust descriptors.
pub(crate) fn clear_opaque(dir: OwnedFd, keep: &dyn Fn(&FileStat) -> bool) -> nix::Result<()> {
    let sweep = |fd: OwnedFd| -> nix::Result<(OwnedFd, Vec<Vec<u8>>)> {
        let mut kept_dirs = Vec::new();
        for child in list_dir(fd.as_fd())? {
            let Some(st) = lstat_at(fd.as_fd(), &child)? else {
                continue;
            };
            if !keep(&st) {
                remove_all_at(fd.as_fd(), &child)?;
            } else if is_dir(&st) {
                kept_dirs.push(child);
            }
        }
        Ok((fd, kept_dirs))
    };
    let mut stack = vec![sweep(dir)?];
    while let Some((fd, kept_dirs)) = stack.last_mut() {
        match kept_dirs.pop() {
            Some(sub) => {
                let next = open_dir_at(fd.as_fd(), &sub)?;
                stack.push(sweep(next)?);
            }
            None => {
                stack.pop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn clean_is_lexical_and_clamped() {
        let c = |s: &str| {
            clean(s.as_bytes())
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("/")
        };
        assert_eq!(c("./a/../b"), "b");
        assert_eq!(c("../../etc/passwd"), "etc/passwd");
        assert_eq!(c("/abs//x/./y/"), "abs/x/y");
        assert_eq!(c("localetc/sub/.."), "localetc");
        assert_eq!(c(".."), "");
        assert_eq!(c(""), "");
        assert_eq!(c(".wh..."), ".wh...");
    }
}
