//! Applying one layer: the entry loop, whiteouts, limits and the diff ID. Creating each entry
//! and its metadata is in [`super::entry`].

use std::collections::HashSet;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fstat, mknodat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};
use tar::EntryType;

use super::entry::{owner, Kind, Pax};
use super::lowers::Lowers;
use super::meter::{Ctl, Meter, Trip, HEADER_BUDGET};
use super::root::{clean, clear_opaque, remove_all_at, Root};
use super::sys::{is_dir, lstat_at, open_dir_at, os, set_xattr, XattrTarget};
use super::{
    Applied, Limits, WhiteoutMode, OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX,
};
use crate::{Error, Result};

/// Applies the layer tar stream `tar` onto the directory `root` and returns its diff ID.
///
/// Entries are cleaned lexically and resolved inside `root` (see the module docs); an existing
/// non-directory is replaced, an existing directory kept when the entry is a directory. Owners
/// (never through symlinks), modes with setuid/setgid/sticky, PAX `SCHILY.xattr.*` and times
/// are applied; directory times last. Hostile or malformed input is InvalidArgument, a layer
/// over `limits` ResourceExhausted. On error the target is left partly applied: callers apply
/// into a fresh snapshot and drop it on failure.
pub fn apply(root: &Path, tar: impl Read, mode: WhiteoutMode, limits: &Limits) -> Result<Applied> {
    apply_over(root, &[], tar, mode, limits)
}

/// [`apply`] into an overlay upperdir `root` over the layers `lowers` (its lowerdirs, topmost
/// first): a directory the layer needs but `root` lacks is created with the mode, owner and
/// times the lower layers give it, so the merged view keeps them (see `lowers.rs`).
pub fn apply_over(
    root: &Path,
    lowers: &[&Path],
    tar: impl Read,
    mode: WhiteoutMode,
    limits: &Limits,
) -> Result<Applied> {
    let target = Root::open(root)?.with_lowers(Lowers::open(lowers)?);
    let mut meter = Meter::new(tar, limits.max_bytes);
    let ctl = meter.ctl();
    let mut applier = Applier {
        root: &target,
        mode,
        limits: *limits,
        ctl: &ctl,
        entries: 0,
        written: 0,
        dirs: Vec::new(),
        created: HashSet::new(),
        opaque_done: HashSet::new(),
        buf: Vec::new(),
    };
    // Headers come in 512-byte reads: buffer them. Everything the buffer reads ahead has
    // already passed the meter, so the diff ID still covers each byte once.
    let buffered = io::BufReader::with_capacity(64 << 10, &mut meter);
    applier.run(&mut tar::Archive::new(buffered))?;
    applier.finish_dirs()?;
    let (diff_id, size) = meter.finish().map_err(|e| read_err(&ctl, limits, e))?;
    Ok(Applied { diff_id, size })
}

/// A file's identity, to recognise what this layer wrote whatever path reaches it.
type Inode = (u64, u64);

fn inode(st: &nix::sys::stat::FileStat) -> Inode {
    (st.st_dev, st.st_ino)
}

/// A directory whose times are set after every entry, so that creating its children does not
/// undo them.
struct DirTimes {
    parent: Vec<Vec<u8>>,
    base: Vec<u8>,
    inode: Inode,
    atime: TimeSpec,
    mtime: TimeSpec,
}

pub(super) struct Applier<'a> {
    pub(super) root: &'a Root,
    pub(super) mode: WhiteoutMode,
    pub(super) limits: Limits,
    ctl: &'a Ctl,
    entries: u64,
    /// File content bytes written so far, against `limits.max_bytes`.
    pub(super) written: u64,
    dirs: Vec<DirTimes>,
    /// Everything this layer created or merged, for opaque markers and whiteouts.
    pub(super) created: HashSet<Inode>,
    opaque_done: HashSet<Inode>,
    /// Reused for copying file content.
    pub(super) buf: Vec<u8>,
}

/// Turns an error from reading the stream (the parser, the decompressor or the meter) into
/// the crate's error.
fn read_err(ctl: &Ctl, limits: &Limits, e: io::Error) -> Error {
    match ctl.tripped() {
        Some(Trip::Stream) => Error::exhausted(format!(
            "layer: larger than the limit of {} bytes",
            limits.max_bytes
        )),
        Some(Trip::Header) => Error::invalid(format!(
            "layer: entry headers larger than {HEADER_BUDGET} bytes"
        )),
        None => match e.kind() {
            io::ErrorKind::InvalidData
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::Other => Error::invalid(format!("layer: malformed tar: {e}")),
            _ => Error::io("read layer", e),
        },
    }
}

impl Applier<'_> {
    pub(super) fn read_err(&self, e: io::Error) -> Error {
        read_err(self.ctl, &self.limits, e)
    }

    fn run<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> Result<()> {
        let mut entries = archive.entries().map_err(|e| self.read_err(e))?;
        loop {
            // Only headers are read inside `next` (each entry's data is drained below), so the
            // budget bounds what the parser buffers for one entry.
            self.ctl.begin_headers();
            let next = entries.next();
            self.ctl.end_headers();
            let Some(entry) = next else {
                return Ok(());
            };
            let mut entry = entry.map_err(|e| self.read_err(e))?;
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(Error::exhausted(format!(
                    "layer: more than the limit of {} entries",
                    self.limits.max_entries
                )));
            }
            let name = entry.path_bytes().into_owned();
            self.entry(&name, &mut entry).map_err(|e| {
                e.context(format!("layer entry {:?}", String::from_utf8_lossy(&name)))
            })?;
            io::copy(&mut entry, &mut io::sink()).map_err(|e| self.read_err(e))?;
        }
    }

    fn entry<R: Read>(&mut self, name: &[u8], e: &mut tar::Entry<'_, R>) -> Result<()> {
        // Global PAX headers carry nothing containerd applies.
        if e.header().entry_type() == EntryType::XGlobalHeader {
            return Ok(());
        }
        let pax = Pax::read(e).map_err(|err| self.read_err(err))?;
        let comps = clean(name);
        if comps.iter().any(|c| c.contains(&0)) {
            return Err(Error::invalid("name contains a NUL byte"));
        }
        let Some((base, parent)) = comps.split_last() else {
            tracing::debug!("layer entry resolves to the root: ignored");
            return Ok(());
        };
        if base.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(parent, base, e.header());
        }
        let dir = self.parent(parent)?;
        let kind = self.entry_at(dir.as_fd(), base, e, &pax)?;
        let st = lstat_at(dir.as_fd(), base)?
            .ok_or_else(|| Error::internal("entry vanished after it was created"))?;
        self.created.insert(inode(&st));
        if kind == Kind::Dir {
            let (atime, mtime) = pax.times(e.header())?;
            self.dirs.push(DirTimes {
                parent: parent.iter().map(|c| c.to_vec()).collect(),
                base: base.to_vec(),
                inode: inode(&st),
                atime,
                mtime,
            });
        }
        Ok(())
    }

    /// Opens (creating if missing) the parent directory of an entry inside the root.
    pub(super) fn parent(&self, comps: &[&[u8]]) -> Result<OwnedFd> {
        self.root.dir(comps, true).map_err(|e| match e {
            Errno::ENOTDIR => Error::invalid("a parent is not a directory"),
            Errno::ELOOP => Error::invalid("too many symlinks in the parent path"),
            Errno::ENAMETOOLONG => Error::invalid("path too long"),
            Errno::EXDEV => Error::invalid("parent path leaves the root"),
            e => Error::io("open parent directory", e.into()),
        })
    }

    /// `.wh.<name>` and `.wh..wh..opq`. A whiteout hides what lower layers have at its name;
    /// what this layer itself wrote there stays (OCI image-spec, "Whiteouts").
    fn whiteout(&mut self, parent: &[&[u8]], base: &[u8], h: &tar::Header) -> Result<()> {
        if base == WHITEOUT_OPAQUE {
            let dir = self.parent(parent)?;
            return self.opaque(dir);
        }
        let victim = &base[WHITEOUT_PREFIX.len()..];
        // containerd's validateWhiteout: `.wh.`, `.wh..` and `.wh...` would name the directory
        // itself or its parent.
        if victim.is_empty() || victim == b"." || victim == b".." {
            return Err(Error::invalid("whiteout escapes its directory"));
        }
        let dir = self.parent(parent)?;
        if let Some(st) = lstat_at(dir.as_fd(), victim)? {
            if self.created.contains(&inode(&st)) {
                if is_dir(&st) {
                    return self.opaque(open_dir_at(dir.as_fd(), victim)?);
                }
                return Ok(());
            }
        }
        remove_all_at(dir.as_fd(), victim)
            .map_err(|e| Error::io("remove whited-out path", e.into()))?;
        if self.mode == WhiteoutMode::Remove {
            return Ok(());
        }
        let (uid, gid) = owner(h)?;
        mknodat(
            Some(dir.as_raw_fd()),
            os(victim),
            SFlag::S_IFCHR,
            Mode::empty(),
            nix::sys::stat::makedev(0, 0),
        )
        .map_err(|e| Error::io("create overlay whiteout", e.into()))?;
        fchownat(
            Some(dir.as_raw_fd()),
            os(victim),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| Error::io("chown overlay whiteout", e.into()))?;
        if let Some(st) = lstat_at(dir.as_fd(), victim)? {
            self.created.insert(inode(&st));
        }
        Ok(())
    }

    /// Makes `dir` opaque: the overlay xattr on an upperdir, or removing everything this layer
    /// did not write in a plain tree.
    fn opaque(&mut self, dir: OwnedFd) -> Result<()> {
        match self.mode {
            WhiteoutMode::Overlay => {
                set_xattr(XattrTarget::Fd(dir.as_fd()), OVERLAY_OPAQUE_XATTR, b"y")
                    .map_err(|e| Error::io("set overlay opaque xattr", e.into()))
            }
            WhiteoutMode::Remove => {
                let st = fstat(dir.as_raw_fd())?;
                if !self.opaque_done.insert(inode(&st)) {
                    return Ok(());
                }
                let created = &self.created;
                clear_opaque(dir, &|st| created.contains(&inode(st)))
                    .map_err(|e| Error::io("clear opaque directory", e.into()))
            }
        }
    }

    /// Sets directory times once every entry is in place; a directory removed or replaced by a
    /// later entry is left alone.
    fn finish_dirs(&mut self) -> Result<()> {
        for d in std::mem::take(&mut self.dirs) {
            let parent: Vec<&[u8]> = d.parent.iter().map(|c| c.as_slice()).collect();
            let dir = match self.root.dir(&parent, false) {
                Ok(dir) => dir,
                Err(Errno::ENOENT | Errno::ENOTDIR) => continue,
                Err(e) => return Err(Error::io("reopen directory for its times", e.into())),
            };
            match lstat_at(dir.as_fd(), &d.base)? {
                Some(st) if inode(&st) == d.inode => {}
                _ => continue,
            }
            utimensat(
                Some(dir.as_raw_fd()),
                os(&d.base),
                &d.atime,
                &d.mtime,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| {
                Error::io(
                    format!("set times of {:?}", String::from_utf8_lossy(&d.base)),
                    e.into(),
                )
            })?;
        }
        Ok(())
    }
}
