//! Creating one layer entry (not a whiteout) in its parent directory, and its metadata.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{
    fchmod, fchmodat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};
use tar::{EntryType, Header};

use super::apply::Applier;
use super::root::{clean, remove_all_at};
use super::sys::{create_file_at, is_dir, lstat_at, open_dir_at, os, set_xattr, XattrTarget};
use crate::{Error, Result};

/// What an entry creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Symlink,
    Link,
    Char,
    Block,
    Fifo,
}

impl Kind {
    fn of(ty: EntryType) -> Result<Kind> {
        Ok(match ty {
            // The parser expands GNU sparse files into their full content.
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Kind::File,
            EntryType::Directory => Kind::Dir,
            EntryType::Symlink => Kind::Symlink,
            EntryType::Link => Kind::Link,
            EntryType::Char => Kind::Char,
            EntryType::Block => Kind::Block,
            EntryType::Fifo => Kind::Fifo,
            other => {
                return Err(Error::invalid(format!(
                    "unsupported tar entry type {:?}",
                    other.as_byte() as char
                )))
            }
        })
    }
}

/// The PAX records applied beyond what the parser already folds into the header (path, link
/// path, size, uid, gid).
#[derive(Default)]
pub(super) struct Pax {
    mtime: Option<TimeSpec>,
    atime: Option<TimeSpec>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

impl Pax {
    pub(super) fn read<R: Read>(e: &mut tar::Entry<'_, R>) -> io::Result<Pax> {
        let mut pax = Pax::default();
        let Some(exts) = e.pax_extensions()? else {
            return Ok(pax);
        };
        for ext in exts {
            let ext = ext?;
            match ext.key_bytes() {
                b"mtime" => pax.mtime = Some(parse_time(ext.value_bytes())?),
                b"atime" => pax.atime = Some(parse_time(ext.value_bytes())?),
                k => {
                    if let Some(name) = k.strip_prefix(XATTR_PREFIX) {
                        pax.xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        Ok(pax)
    }

    /// (atime, mtime) as containerd sets them: the access time is never before the
    /// modification time, and times before the epoch become the epoch.
    pub(super) fn times(&self, h: &Header) -> Result<(TimeSpec, TimeSpec)> {
        let mtime = match self.mtime {
            Some(t) => t,
            None => {
                let secs = field(h.mtime(), &h.as_old().mtime, "mtime")?;
                TimeSpec::new(i64::try_from(secs).unwrap_or(0), 0)
            }
        };
        let atime = match self.atime {
            Some(a) if a > mtime => a,
            _ => mtime,
        };
        Ok((atime, mtime))
    }
}

/// A PAX time, `[-]seconds[.fraction]`; negative times are clamped to the epoch.
fn parse_time(v: &[u8]) -> io::Result<TimeSpec> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad PAX time");
    let s = std::str::from_utf8(v).map_err(|_| bad())?;
    if s.starts_with('-') {
        return Ok(TimeSpec::new(0, 0));
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let mut nanos: i64 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
    }
    Ok(TimeSpec::new(secs, nanos))
}

/// The owner an entry asks for. `u32::MAX` is chown's "leave unchanged", and larger ids do not
/// exist on Linux.
pub(super) fn owner(h: &Header) -> Result<(u32, u32)> {
    let old = h.as_old();
    let id = |v: io::Result<u64>, raw: &[u8], what: &str| -> Result<u32> {
        let v = field(v, raw, what)?;
        u32::try_from(v)
            .ok()
            .filter(|v| *v != u32::MAX)
            .ok_or_else(|| Error::invalid(format!("{what} {v} out of range")))
    };
    Ok((id(h.uid(), &old.uid, "uid")?, id(h.gid(), &old.gid, "gid")?))
}

/// A numeric header field. An empty one (all NUL or space) reads as 0, as Go's archive/tar,
/// and so containerd, reads it.
fn field(parsed: io::Result<u64>, raw: &[u8], what: &str) -> Result<u64> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        Err(e) => Err(Error::invalid(format!("bad {what}: {e}"))),
    }
}

pub(super) fn mode(h: &Header) -> Result<Mode> {
    let m = field(h.mode().map(u64::from), &h.as_old().mode, "mode")?;
    Ok(Mode::from_bits_truncate((m & 0o7777) as u32))
}

/// The device number of a character or block device entry.
fn device(h: &Header) -> Result<u64> {
    let (major, minor) = match (h.as_ustar(), h.as_gnu()) {
        (Some(u), _) => (&u.dev_major, &u.dev_minor),
        (_, Some(g)) => (&g.dev_major, &g.dev_minor),
        // Pre-POSIX headers have no device fields.
        _ => return Ok(makedev(0, 0)),
    };
    let num = |v: io::Result<Option<u32>>, raw: &[u8]| {
        field(v.map(|v| u64::from(v.unwrap_or(0))), raw, "device number")
    };
    Ok(makedev(
        num(h.device_major(), major)?,
        num(h.device_minor(), minor)?,
    ))
}

/// Xattrs a layer may not set. `trusted.*` belongs to the administrator and containerd refuses
/// it from archives; among them `trusted.overlay.*` would let a layer forge opaque directories,
/// redirects or metacopy in an upperdir. `user.overlay.*` is the same for overlay mounted with
/// `userxattr`.
fn refused_xattr(key: &[u8]) -> bool {
    key.starts_with(b"trusted.") || key.starts_with(b"user.overlay.")
}

impl Applier<'_> {
    /// Creates `base` in `dir` for the entry `e` and applies its metadata (except directory
    /// times, which the caller defers). Returns what was created.
    pub(super) fn entry_at<R: Read>(
        &mut self,
        dir: BorrowedFd<'_>,
        base: &[u8],
        e: &mut tar::Entry<'_, R>,
        pax: &Pax,
    ) -> Result<Kind> {
        let h = e.header().clone();
        let kind = Kind::of(h.entry_type())?;
        let mode = mode(&h)?;
        // Whatever is there goes, except that a directory stays for a directory entry. The
        // check is an lstat: following a symlink here is CVE-2026-33056 (a symlink, then a
        // directory of the same name, chmods the symlink's target outside the root).
        let keep_dir = match lstat_at(dir, base)? {
            Some(st) if is_dir(&st) && kind == Kind::Dir => true,
            Some(_) => {
                remove_all_at(dir, base)
                    .map_err(|e| Error::io("remove existing path", e.into()))?;
                false
            }
            None => false,
        };
        let mut file = None;
        match kind {
            Kind::File => file = Some(self.write_file(dir, base, e)?),
            Kind::Dir if keep_dir => {}
            Kind::Dir => mkdirat(Some(dir.as_raw_fd()), os(base), mode)
                .map_err(|e| create_err("create directory", e))?,
            Kind::Symlink => {
                let target = link_name(e, "symlink")?;
                symlinkat(os(&target), Some(dir.as_raw_fd()), os(base))
                    .map_err(|e| create_err("create symlink", e))?;
            }
            Kind::Link => {
                // Metadata is the target's: re-applying the link header's would change the
                // shared inode (and GNU tar does not either).
                self.hard_link(dir, base, &link_name(e, "hard link")?)?;
                return Ok(kind);
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let dev = device(&h)?;
                let sflag = match kind {
                    Kind::Char => SFlag::S_IFCHR,
                    Kind::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                mknodat(Some(dir.as_raw_fd()), os(base), sflag, mode, dev)
                    .map_err(|e| create_err("create device node", e))?;
            }
        }
        self.metadata(dir, base, file.as_ref(), kind, &h, mode, pax)?;
        Ok(kind)
    }

    /// Writes the entry's content into a new file; the content counts against the byte limit
    /// before anything is written.
    fn write_file<R: Read>(
        &mut self,
        dir: BorrowedFd<'_>,
        base: &[u8],
        e: &mut tar::Entry<'_, R>,
    ) -> Result<File> {
        let size = e.size();
        if size > self.limits.max_bytes.saturating_sub(self.written) {
            return Err(Error::exhausted(format!(
                "file content beyond the layer limit of {} bytes",
                self.limits.max_bytes
            )));
        }
        let mut f = create_file_at(dir, base).map_err(|e| create_err("create file", e))?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(64 << 10, 0);
        let mut copied = 0u64;
        let copy = loop {
            let n = match e.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(err) => break Err(self.read_err(err)),
            };
            if let Err(err) = f.write_all(&buf[..n]) {
                break Err(Error::io("write file", err));
            }
            copied += n as u64;
        };
        self.buf = buf;
        copy?;
        if copied != size {
            return Err(Error::invalid(format!(
                "truncated: {copied} of {size} bytes"
            )));
        }
        self.written += size;
        Ok(f)
    }

    /// Links `base` to the entry named `target`, resolved inside the root; the last component
    /// is not followed, so a link to a symlink is a second symlink (containerd's
    /// `hardlinkRootPath`), never a link to whatever it points at.
    fn hard_link(&self, dir: BorrowedFd<'_>, base: &[u8], target: &[u8]) -> Result<()> {
        let comps = clean(target);
        let Some((tbase, tparent)) = comps.split_last() else {
            return Err(Error::invalid("hard link to the root"));
        };
        let missing = || Error::invalid(format!("hard link target {:?} missing", lossy(target)));
        let tdir = self.root.dir(tparent, false).map_err(|e| match e {
            Errno::ENOENT | Errno::ENOTDIR => missing(),
            e => Error::io("open hard link target directory", e.into()),
        })?;
        linkat(
            Some(tdir.as_raw_fd()),
            os(tbase),
            Some(dir.as_raw_fd()),
            os(base),
            AtFlags::empty(),
        )
        .map_err(|e| match e {
            Errno::ENOENT => missing(),
            Errno::EPERM => Error::invalid("hard link to a directory"),
            e => create_err("create hard link", e),
        })
    }

    /// Owner, xattrs, mode and (except for directories) times, in that order: chown clears
    /// setuid/setgid and `security.capability`, so both come after it. Nothing here follows a
    /// symlink.
    #[allow(clippy::too_many_arguments)]
    fn metadata(
        &self,
        dir: BorrowedFd<'_>,
        base: &[u8],
        file: Option<&File>,
        kind: Kind,
        h: &Header,
        mode: Mode,
        pax: &Pax,
    ) -> Result<()> {
        let (uid, gid) = owner(h)?;
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        match file {
            Some(f) => fchown(f.as_raw_fd(), uid, gid),
            None => fchownat(
                Some(dir.as_raw_fd()),
                os(base),
                uid,
                gid,
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ),
        }
        .map_err(|e| Error::io("chown", e.into()))?;

        if !pax.xattrs.is_empty() {
            let dir_fd;
            let target = match (file, kind) {
                (Some(f), _) => XattrTarget::Fd(f.as_fd()),
                (None, Kind::Dir) => {
                    dir_fd = open_dir_at(dir, base)?;
                    XattrTarget::Fd(dir_fd.as_fd())
                }
                // Symlinks and device nodes must not be opened.
                _ => XattrTarget::At(dir, base),
            };
            for (key, value) in &pax.xattrs {
                self.set_xattr(target, key, value, kind)?;
            }
        }

        if kind != Kind::Symlink {
            match file {
                Some(f) => fchmod(f.as_raw_fd(), mode),
                None => fchmodat(
                    Some(dir.as_raw_fd()),
                    os(base),
                    mode,
                    FchmodatFlags::NoFollowSymlink,
                ),
            }
            .map_err(|e| Error::io("chmod", e.into()))?;
        }

        if kind != Kind::Dir {
            let (atime, mtime) = pax.times(h)?;
            match file {
                Some(f) => futimens(f.as_raw_fd(), &atime, &mtime),
                None => utimensat(
                    Some(dir.as_raw_fd()),
                    os(base),
                    &atime,
                    &mtime,
                    UtimensatFlags::NoFollowSymlink,
                ),
            }
            .map_err(|e| Error::io("set times", e.into()))?;
        }
        Ok(())
    }

    /// One PAX xattr, with containerd's tolerance: unsupported attributes and `user.*` on
    /// files that cannot carry it are skipped with a warning, as are refused names.
    fn set_xattr(&self, t: XattrTarget<'_>, key: &[u8], value: &[u8], kind: Kind) -> Result<()> {
        if refused_xattr(key) {
            tracing::warn!(xattr = %lossy(key), "layer xattr refused: ignored");
            return Ok(());
        }
        match set_xattr(t, key, value) {
            Ok(()) => Ok(()),
            Err(Errno::ENOTSUP) => {
                tracing::warn!(xattr = %lossy(key), "xattr not supported here: ignored");
                Ok(())
            }
            Err(Errno::EPERM)
                if key.starts_with(b"user.") && !matches!(kind, Kind::File | Kind::Dir) =>
            {
                tracing::warn!(xattr = %lossy(key), "user xattr on a special file: ignored");
                Ok(())
            }
            Err(e) => Err(Error::io(format!("set xattr {}", lossy(key)), e.into())),
        }
    }
}

/// An error creating an entry: a name the filesystem cannot hold is the archive's fault.
fn create_err(what: &str, e: Errno) -> Error {
    match e {
        Errno::ENAMETOOLONG => Error::invalid("name too long"),
        e => Error::io(what, e.into()),
    }
}

fn link_name<R: Read>(e: &tar::Entry<'_, R>, what: &str) -> Result<Vec<u8>> {
    match e.link_name_bytes() {
        Some(t) if !t.is_empty() && !t.contains(&0) => Ok(t.into_owned()),
        _ => Err(Error::invalid(format!("{what} without a valid target"))),
    }
}

pub(super) fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn pax_times() {
        let t = |s: &str| parse_time(s.as_bytes()).map(|t| (t.tv_sec(), t.tv_nsec()));
        assert_eq!(t("1700000000").unwrap(), (1700000000, 0));
        assert_eq!(t("1700000000.5").unwrap(), (1700000000, 500_000_000));
        assert_eq!(t("12.000000001999").unwrap(), (12, 1));
        assert_eq!(t("-5.5").unwrap(), (0, 0));
        assert!(t("").is_err());
        assert!(t("1e9").is_err());
        assert!(t(".5").is_err());
    }
}
