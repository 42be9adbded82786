//! Shared by the `archive_*` tests: a tar writer that produces what well-behaved builders
//! refuse to (`..`, absolute and empty names, raw PAX records), a sandbox with "host" files
//! next to the apply target, and tree snapshots to compare.

#![allow(dead_code)]

pub mod breakout;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_snapshotter::archive::{self, Applied, Limits, WhiteoutMode};
use berth_snapshotter::Result;
use tar::{EntryType, Header};

/// Writes tar entries with names and link names taken byte for byte.
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl Default for Tar {
    fn default() -> Self {
        Tar {
            b: tar::Builder::new(Vec::new()),
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
        }
    }
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} ").as_bytes());
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

impl Tar {
    pub fn new() -> Self {
        Self::default()
    }

    /// A header with `name` copied raw (truncated to 100 bytes; longer names need `pax`).
    pub fn header(&self, name: &str, ty: EntryType, mode: u32, size: u64) -> Header {
        let mut h = Header::new_ustar();
        h.set_entry_type(ty);
        h.set_mode(mode);
        h.set_uid(self.uid);
        h.set_gid(self.gid);
        h.set_mtime(self.mtime);
        h.set_size(size);
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name.as_bytes()[..n]);
        h
    }

    /// Appends `h` (checksummed here) and `data`.
    pub fn raw(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.b.append(&h, data).expect("append to a Vec");
        self
    }

    /// A PAX extended header for the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            pax_record(&mut body, k.as_bytes(), v);
        }
        let h = self.header(
            "PaxHeaders.0/x",
            EntryType::XHeader,
            0o644,
            body.len() as u64,
        );
        self.raw(h, &body)
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        let h = self.header(name, EntryType::Directory, mode, 0);
        self.raw(h, &[])
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        let h = self.header(name, EntryType::Regular, mode, data.len() as u64);
        self.raw(h, data)
    }

    fn link_entry(&mut self, ty: EntryType, name: &str, target: &str) -> &mut Self {
        let mut h = self.header(name, ty, 0o777, 0);
        h.set_link_name_literal(target.as_bytes())
            .expect("link name fits");
        self.raw(h, &[])
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link_entry(EntryType::Symlink, name, target)
    }

    /// A hard link `name` to `target`.
    pub fn link(&mut self, name: &str, target: &str) -> &mut Self {
        self.link_entry(EntryType::Link, name, target)
    }

    pub fn node(
        &mut self,
        name: &str,
        ty: EntryType,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> &mut Self {
        let mut h = self.header(name, ty, mode, 0);
        h.set_device_major(major).expect("ustar header");
        h.set_device_minor(minor).expect("ustar header");
        self.raw(h, &[])
    }

    /// The archive with its end-of-archive blocks.
    pub fn bytes(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().expect("finish a Vec")
    }
}

/// A temporary directory holding the apply target `root/` and "host" files around it that no
/// layer may touch.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-archive-")
            .tempdir()
            .expect("temp dir");
        let s = dir.path();
        let root = s.join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(s.join("brk-etc")).unwrap();
        write(&s.join("brk-etc/passwd"), b"host passwd", 0o644);
        write(&s.join("victim.txt"), b"host data", 0o644);
        write(&s.join("perm400"), b"...", 0o400);
        write(&s.join("also-exists-outside-root"), b"...", 0o640);
        std::fs::create_dir(s.join("hostdir")).unwrap();
        set_mode(&s.join("hostdir"), 0o750);
        Sandbox { dir, root }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// An absolute host path in the sandbox, as a string for tar names and link targets.
    pub fn host(&self, rel: &str) -> String {
        self.path()
            .join(rel)
            .to_str()
            .expect("utf-8 temp path")
            .to_string()
    }

    /// Everything in the sandbox except the apply target.
    pub fn host_state(&self) -> Tree {
        let mut t = snapshot(self.path());
        t.0.retain(|p, _| p != "root" && !p.starts_with("root/"));
        t
    }

    pub fn apply(&self, tar: &[u8], mode: WhiteoutMode) -> Result<Applied> {
        archive::apply(&self.root, tar, mode, &Limits::default())
    }
}

pub fn write(p: &Path, data: &[u8], mode: u32) {
    std::fs::write(p, data).unwrap();
    set_mode(p, mode);
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// What a tree holds, path by path (relative, `/`-separated), without following symlinks.
#[derive(Debug, PartialEq, Eq)]
pub struct Tree(pub BTreeMap<String, Node>);

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds; directories' are left out by [`snapshot`] callers that create children.
    pub mtime: i64,
    pub content: Vec<u8>,
    pub rdev: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// The other paths sharing this inode (hard links), sorted.
    pub links: Vec<String>,
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    match () {
        _ if ft.is_symlink() => "symlink",
        _ if ft.is_dir() => "dir",
        _ if ft.is_file() => "file",
        _ if ft.is_char_device() => "char",
        _ if ft.is_block_device() => "block",
        _ if ft.is_fifo() => "fifo",
        _ => "socket",
    }
}

/// Walks `root` (which itself is left out).
pub fn snapshot(root: &Path) -> Tree {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let kind = kind_of(md.file_type());
            let content = match kind {
                "file" => std::fs::read(&p).unwrap(),
                "symlink" => std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
                _ => Vec::new(),
            };
            let mut xattrs: Vec<(String, Vec<u8>)> = xattr::list(&p)
                .unwrap()
                .map(|k| k.to_string_lossy().into_owned())
                .filter(|k| !k.starts_with("security.selinux"))
                .map(|k| {
                    let v = xattr::get(&p, &k).unwrap().unwrap_or_default();
                    (k, v)
                })
                .collect();
            xattrs.sort();
            if kind == "dir" {
                stack.push(p.clone());
            } else if md.nlink() > 1 {
                inodes
                    .entry((md.dev(), md.ino()))
                    .or_default()
                    .push(rel.clone());
            }
            let node = Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
                content,
                rdev: md.rdev(),
                xattrs,
                links: Vec::new(),
            };
            out.insert(rel, node);
        }
    }
    for names in inodes.values() {
        for n in names {
            let mut others: Vec<String> = names.iter().filter(|o| *o != n).cloned().collect();
            others.sort();
            out.get_mut(n).expect("walked").links = others;
        }
    }
    Tree(out)
}

/// Asserts two trees are equal, naming the first path that differs.
pub fn assert_same_tree(want: &Tree, got: &Tree) {
    for (p, n) in &want.0 {
        match got.0.get(p) {
            None => panic!("{p}: missing"),
            Some(g) => assert_eq!(n, g, "{p}: differs"),
        }
    }
    for p in got.0.keys() {
        assert!(want.0.contains_key(p), "{p}: unexpected");
    }
}

/// The inode `rel` names when resolved inside `root`, symlinks followed the way a process
/// chrooted there would (RESOLVE_IN_ROOT).
pub fn inode_in_root(root: &Path, rel: &str) -> (u64, u64) {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    let dir = std::fs::File::open(root).unwrap();
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT);
    let fd = openat2(std::os::fd::AsRawFd::as_raw_fd(&dir), rel, how)
        .unwrap_or_else(|e| panic!("resolve {rel} in root: {e}"));
    let st = nix::sys::stat::fstat(fd).unwrap();
    nix::unistd::close(fd).unwrap();
    (st.st_dev, st.st_ino)
}

pub fn lstat(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
