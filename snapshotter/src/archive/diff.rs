//! Computing a layer from two trees, as containerd's `fs.Changes` double walk and
//! `archive.ChangeWriter` do: both trees are walked in name order side by side, changed and
//! added paths are written with their parent directories, deletions become `.wh.` entries, and
//! hard links within the layer are kept.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::fcntl::readlinkat;
use nix::sys::stat::{fstat, major, minor, FileStat, SFlag};
use tar::EntryType;

use super::root::Root;
use super::sys::{
    is_dir, kind, list_dir, list_xattrs, lstat_at, open_dir_at, open_dir_in_root, open_file_at,
    XattrTarget,
};
use super::tarw::{append, Meta};
use super::WHITEOUT_PREFIX;
use crate::{Error, ErrorKind, Result};

/// Writes the layer that turns `lower` (the parent's tree) into `upper` (the snapshot's tree)
/// to `out` as an OCI tar, in a deterministic order (by path, directories before their
/// contents).
///
/// A path counts as changed when its type, mode, owner, device number or xattrs differ or,
/// for non-directories, its size or mtime seconds; when both mtimes have no sub-second part
/// (they may have been truncated by an earlier archive round trip) file contents and symlink
/// targets are compared instead. Sockets are left out. Xattrs are all of a file's except
/// `trusted.*` (the administrator's and overlayfs's own, which [`super::apply`] refuses) and
/// `security.selinux` (a label of this host, not of the image).
pub fn write_diff(lower: &Path, upper: &Path, out: impl Write) -> Result<()> {
    let lower = Root::open(lower)?;
    let upper = Root::open(upper)?;
    let mut w = Writer {
        tar: tar::Builder::new(out),
        upper: &upper,
        added_dirs: HashSet::new(),
        link_source: HashMap::new(),
        link_pending: HashMap::new(),
    };
    let dup = |r: &Root| {
        r.fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("dup directory", e))
    };
    let mut stack = vec![Frame::new(Vec::new(), Some(dup(&lower)?), dup(&upper)?)?];
    while let Some(top) = stack.last_mut() {
        let Some(item) = top.items.get(top.next).cloned() else {
            stack.pop();
            continue;
        };
        top.next += 1;
        let path = join(&top.rel, &item.name);
        let upper_dir = top.upper.as_fd();
        let child = match (item.lower, item.upper) {
            (Some(_), None) => {
                w.whiteout(&path)?;
                None
            }
            (None, Some(u)) => {
                w.change(Change::Add, &path, upper_dir, &item.name, &u)?;
                is_dir(&u).then_some(None)
            }
            (Some(l), Some(u)) => {
                let lower_dir = top
                    .lower
                    .as_ref()
                    .expect("a lower entry has a lower dir")
                    .as_fd();
                let same = same_file(lower_dir, upper_dir, &item.name, &l, &u)?;
                let change = if same {
                    Change::Unmodified
                } else {
                    Change::Modify
                };
                w.change(change, &path, upper_dir, &item.name, &u)?;
                is_dir(&u).then_some(is_dir(&l).then_some(lower_dir))
            }
            (None, None) => None,
        };
        if let Some(lower_dir) = child {
            let lower_fd = match lower_dir {
                Some(d) => Some(open_dir_at(d, &item.name)?),
                None => None,
            };
            let upper_fd = open_dir_at(upper_dir, &item.name)?;
            stack.push(Frame::new(path, lower_fd, upper_fd)?);
        }
    }
    let mut out = w.tar.into_inner().map_err(|e| Error::io("write diff", e))?;
    out.flush().map_err(|e| Error::io("write diff", e))
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    [dir, b"/", name].concat()
}

#[derive(Clone)]
struct Item {
    name: Vec<u8>,
    lower: Option<FileStat>,
    upper: Option<FileStat>,
}

/// A directory both walks are in (or only the upper one): its entries merged by name.
struct Frame {
    rel: Vec<u8>,
    lower: Option<OwnedFd>,
    upper: OwnedFd,
    items: Vec<Item>,
    next: usize,
}

impl Frame {
    fn new(rel: Vec<u8>, lower: Option<OwnedFd>, upper: OwnedFd) -> Result<Frame> {
        let stats = |dir: BorrowedFd<'_>| -> Result<Vec<(Vec<u8>, FileStat)>> {
            let mut out = Vec::new();
            for name in list_dir(dir)? {
                if let Some(st) = lstat_at(dir, &name)? {
                    out.push((name, st));
                }
            }
            Ok(out)
        };
        let lowers = match &lower {
            Some(l) => stats(l.as_fd())?,
            None => Vec::new(),
        };
        let uppers = stats(upper.as_fd())?;
        // Both listings are sorted: merge them by name.
        let mut items = Vec::with_capacity(lowers.len().max(uppers.len()));
        let (mut l, mut u) = (lowers.into_iter().peekable(), uppers.into_iter().peekable());
        loop {
            let order = match (l.peek(), u.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(a), Some(b)) => a.0.cmp(&b.0),
            };
            let item = match order {
                std::cmp::Ordering::Less => {
                    let (name, st) = l.next().expect("peeked");
                    Item {
                        name,
                        lower: Some(st),
                        upper: None,
                    }
                }
                std::cmp::Ordering::Greater => {
                    let (name, st) = u.next().expect("peeked");
                    Item {
                        name,
                        lower: None,
                        upper: Some(st),
                    }
                }
                std::cmp::Ordering::Equal => {
                    let (name, ls) = l.next().expect("peeked");
                    let (_, us) = u.next().expect("peeked");
                    Item {
                        name,
                        lower: Some(ls),
                        upper: Some(us),
                    }
                }
            };
            items.push(item);
        }
        Ok(Frame {
            rel,
            lower,
            upper,
            items,
            next: 0,
        })
    }
}

/// Xattrs carried in layers and compared between trees.
fn xattrs(t: XattrTarget<'_>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut all = list_xattrs(t).map_err(|e| Error::io("list xattrs", e.into()))?;
    all.retain(|(k, _)| !k.starts_with(b"trusted.") && k.as_slice() != b"security.selinux");
    Ok(all)
}

fn link_target(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Vec<u8>> {
    let t = readlinkat(Some(dir.as_raw_fd()), OsStr::from_bytes(name))?;
    Ok(t.into_vec())
}

/// continuity's `sameFile`, with all carried xattrs where it compares only capabilities.
fn same_file(
    ldir: BorrowedFd<'_>,
    udir: BorrowedFd<'_>,
    name: &[u8],
    l: &FileStat,
    u: &FileStat,
) -> Result<bool> {
    if (l.st_dev, l.st_ino) == (u.st_dev, u.st_ino) {
        return Ok(true);
    }
    if (l.st_mode, l.st_uid, l.st_gid, l.st_rdev) != (u.st_mode, u.st_uid, u.st_gid, u.st_rdev) {
        return Ok(false);
    }
    if xattrs(XattrTarget::At(ldir, name))? != xattrs(XattrTarget::At(udir, name))? {
        return Ok(false);
    }
    if is_dir(u) {
        return Ok(true);
    }
    if l.st_size != u.st_size || l.st_mtime != u.st_mtime {
        return Ok(false);
    }
    if l.st_mtime_nsec != 0 || u.st_mtime_nsec != 0 {
        return Ok(l.st_mtime_nsec == u.st_mtime_nsec);
    }
    // Both times may be truncated: look at what they hold.
    match kind(u) {
        SFlag::S_IFLNK => Ok(link_target(ldir, name)? == link_target(udir, name)?),
        SFlag::S_IFREG if u.st_size > 0 => same_content(ldir, udir, name),
        _ => Ok(true),
    }
}

fn same_content(ldir: BorrowedFd<'_>, udir: BorrowedFd<'_>, name: &[u8]) -> Result<bool> {
    let open = |d| open_file_at(d, name).map_err(|e| Error::io("open file to compare", e.into()));
    let (mut a, mut b) = (open(ldir)?, open(udir)?);
    let (mut ba, mut bb) = (vec![0u8; 32 << 10], vec![0u8; 32 << 10]);
    loop {
        let n = read_full(&mut a, &mut ba)?;
        let m = read_full(&mut b, &mut bb)?;
        if ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Fills `buf` unless the file ends first; returns how much was read.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f
            .read(&mut buf[n..])
            .map_err(|e| Error::io("read file to compare", e))?
        {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Add,
    Modify,
    /// Unchanged, but hard-linked: it may have to be relinked to a new copy of its inode.
    Unmodified,
}

struct Writer<'a, W: Write> {
    tar: tar::Builder<W>,
    upper: &'a Root,
    /// Directories already written (by relative path without the trailing `/`).
    added_dirs: HashSet<Vec<u8>>,
    /// The first name written for each hard-linked inode; later names link to it.
    link_source: HashMap<(u64, u64), Vec<u8>>,
    /// Unchanged names of a hard-linked inode seen before any changed one.
    link_pending: HashMap<(u64, u64), Vec<Vec<u8>>>,
}

impl<W: Write> Writer<'_, W> {
    fn write(&mut self, m: &Meta, data: impl Read) -> Result<()> {
        append(&mut self.tar, m, data).map_err(|e| Error::io("write diff", e))
    }

    /// A `.wh.<name>` for a path the upper tree no longer has (a removed directory needs only
    /// its own).
    fn whiteout(&mut self, path: &[u8]) -> Result<()> {
        self.include_parents(path)?;
        let (dir, base) = match path.iter().rposition(|c| *c == b'/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        let name = [dir, WHITEOUT_PREFIX, base].concat();
        self.write(&Meta::bare(name, EntryType::Regular), std::io::empty())
    }

    /// Writes the parent directories of `path` that are not in the layer yet, outermost first,
    /// so the entry lands in a directory with the upper tree's metadata.
    fn include_parents(&mut self, path: &[u8]) -> Result<()> {
        let mut missing = Vec::new();
        let mut p = path;
        while let Some(i) = p.iter().rposition(|c| *c == b'/') {
            p = &p[..i];
            if self.added_dirs.contains(p) {
                break;
            }
            missing.push(p.to_vec());
        }
        for dir in missing.into_iter().rev() {
            let fd = open_dir_in_root(self.upper.fd(), &dir)
                .map_err(|e| Error::io("open parent directory in upper", e.into()))?;
            let st = fstat(fd.as_raw_fd())?;
            let m = self.meta(&dir, &st, None, xattrs(XattrTarget::Fd(fd.as_fd()))?);
            self.write(&m, std::io::empty())?;
            self.added_dirs.insert(dir);
        }
        Ok(())
    }

    fn meta(
        &self,
        path: &[u8],
        st: &FileStat,
        link: Option<Vec<u8>>,
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Meta {
        let (kind, name) = match kind(st) {
            SFlag::S_IFDIR => (EntryType::Directory, [path, b"/"].concat()),
            SFlag::S_IFLNK => (EntryType::Symlink, path.to_vec()),
            SFlag::S_IFCHR => (EntryType::Char, path.to_vec()),
            SFlag::S_IFBLK => (EntryType::Block, path.to_vec()),
            SFlag::S_IFIFO => (EntryType::Fifo, path.to_vec()),
            _ => (EntryType::Regular, path.to_vec()),
        };
        let device = matches!(kind, EntryType::Char | EntryType::Block);
        Meta {
            name,
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid.into(),
            gid: st.st_gid.into(),
            size: if kind == EntryType::Regular {
                st.st_size as u64
            } else {
                0
            },
            mtime: st.st_mtime,
            link,
            dev: if device {
                (major(st.st_rdev) as u32, minor(st.st_rdev) as u32)
            } else {
                (0, 0)
            },
            xattrs,
        }
    }

    fn change(
        &mut self,
        change: Change,
        path: &[u8],
        dir: BorrowedFd<'_>,
        name: &[u8],
        st: &FileStat,
    ) -> Result<()> {
        let k = kind(st);
        if k == SFlag::S_IFSOCK {
            return Ok(());
        }
        let mut followers = Vec::new();
        let mut link_to = None;
        if k != SFlag::S_IFDIR && st.st_nlink > 1 {
            let id = (st.st_dev, st.st_ino);
            if let Some(src) = self.link_source.get(&id) {
                link_to = Some(src.clone());
            } else if change == Change::Unmodified {
                self.link_pending.entry(id).or_default().push(path.to_vec());
                return Ok(());
            } else {
                self.link_source.insert(id, path.to_vec());
                followers = self.link_pending.remove(&id).unwrap_or_default();
            }
        } else if change == Change::Unmodified {
            return Ok(());
        }

        self.include_parents(path)?;
        if let Some(src) = link_to {
            let mut m = Meta::bare(path.to_vec(), EntryType::Link);
            (m.mode, m.uid, m.gid, m.mtime) = (
                st.st_mode & 0o7777,
                st.st_uid.into(),
                st.st_gid.into(),
                st.st_mtime,
            );
            m.link = Some(src);
            return self.write(&m, std::io::empty());
        }
        let file = match k {
            SFlag::S_IFREG => {
                Some(open_file_at(dir, name).map_err(|e| Error::io("open file", e.into()))?)
            }
            _ => None,
        };
        let dir_fd = match k {
            SFlag::S_IFDIR => Some(open_dir_at(dir, name)?),
            _ => None,
        };
        let target = match (&file, &dir_fd) {
            (Some(f), _) => XattrTarget::Fd(f.as_fd()),
            (_, Some(d)) => XattrTarget::Fd(d.as_fd()),
            _ => XattrTarget::At(dir, name),
        };
        let link = match k {
            SFlag::S_IFLNK => Some(link_target(dir, name)?),
            _ => None,
        };
        let m = self.meta(path, st, link, xattrs(target)?);
        match file {
            Some(f) => {
                let mut counted = Counted { inner: f, n: 0 };
                self.write(&m, &mut counted)?;
                if counted.n != m.size {
                    return Err(Error::new(
                        ErrorKind::FailedPrecondition,
                        format!(
                            "file {:?} changed while the diff was written",
                            String::from_utf8_lossy(path)
                        ),
                    ));
                }
            }
            None => self.write(&m, std::io::empty())?,
        }
        if k == SFlag::S_IFDIR {
            self.added_dirs.insert(path.to_vec());
        }
        for follower in followers {
            self.include_parents(&follower)?;
            let mut l = Meta::bare(follower, EntryType::Link);
            (l.mode, l.uid, l.gid, l.mtime) = (m.mode, m.uid, m.gid, m.mtime);
            l.link = Some(path.to_vec());
            self.write(&l, std::io::empty())?;
        }
        Ok(())
    }
}

/// Counts what the tar writer read, to notice a file that shrank under it.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}
