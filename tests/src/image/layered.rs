//! Multi-layer test images described change by change (files added and changed, directories,
//! symlinks, hard links, OCI whiteouts and opaque directories), together with the tree a correct
//! unpack must produce, so a test can compare a mounted snapshot against it in full.
//!
//! The expected tree is computed by a small model of the OCI layer semantics, independent of
//! the code under test. The model refuses (panics on) descriptions whose outcome depends on
//! unspecified behaviour: a missing parent directory, or a hard link to another layer's file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context;
use tar::{EntryType, Header};

use super::oci::{image_config, Layer, OciWriter};
use super::tarball::MTIME;
use super::{media_type, sha256_digest, ImageInfo};

/// One change a layer makes. Paths are relative, without a leading or trailing `/`.
#[derive(Clone, Debug)]
pub enum Op {
    /// A regular file; on a path that exists it replaces what is there (changing a file).
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A directory; on an existing directory only its mode and owner change.
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        path: String,
        target: String,
        uid: u32,
        gid: u32,
    },
    /// A hard link to a file added earlier in the same layer.
    HardLink { path: String, target: String },
    /// An OCI whiteout (`.wh.<name>`): hides the path and everything below it.
    Delete { path: String },
    /// An opaque marker (`<dir>/.wh..wh..opq`): hides what lower layers have in the directory.
    Opaque { dir: String },
}

impl Op {
    pub fn file(path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Op {
        Op::File {
            path: path.into(),
            data: data.into(),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    pub fn dir(path: &str, mode: u32) -> Op {
        Op::Dir {
            path: path.into(),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    pub fn symlink(path: &str, target: &str) -> Op {
        Op::Symlink {
            path: path.into(),
            target: target.into(),
            uid: 0,
            gid: 0,
        }
    }

    pub fn hard_link(path: &str, target: &str) -> Op {
        Op::HardLink {
            path: path.into(),
            target: target.into(),
        }
    }

    pub fn delete(path: &str) -> Op {
        Op::Delete { path: path.into() }
    }

    pub fn opaque(dir: &str) -> Op {
        Op::Opaque { dir: dir.into() }
    }

    /// The same file, directory or symlink owned by `uid:gid`.
    pub fn owner(mut self, new_uid: u32, new_gid: u32) -> Op {
        match &mut self {
            Op::File { uid, gid, .. } | Op::Dir { uid, gid, .. } | Op::Symlink { uid, gid, .. } => {
                *uid = new_uid;
                *gid = new_gid;
            }
            other => panic!("layered image: {other:?} has no owner of its own"),
        }
        self
    }
}

/// One layer: its changes in archive order, and whether the blob is gzip-compressed.
#[derive(Clone, Debug)]
pub struct LayerSpec {
    pub ops: Vec<Op>,
    pub gzip: bool,
}

impl LayerSpec {
    pub fn plain(ops: Vec<Op>) -> LayerSpec {
        LayerSpec { ops, gzip: false }
    }

    pub fn gzip(ops: Vec<Op>) -> LayerSpec {
        LayerSpec { ops, gzip: true }
    }
}

/// The mtime of every entry in layer `index`: distinct per layer, so a test sees which layer's
/// entry won.
pub fn layer_mtime(index: usize) -> u64 {
    MTIME + 1000 * index as u64
}

fn header(kind: EntryType, mode: u32, owner: (u32, u32), size: u64, mtime: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(owner.0.into());
    h.set_gid(owner.1.into());
    h.set_size(size);
    h.set_mtime(mtime);
    h
}

/// `a/b` as the whiteout entry `a/.wh.b` (or the opaque marker when `base` is `.wh..opq`).
fn whiteout_name(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, base)) => format!("{dir}/.wh.{base}"),
        None => format!(".wh.{path}"),
    }
}

/// The uncompressed layer tar for `ops`, every entry with `mtime`.
pub fn layer_tar(ops: &[Op], mtime: u64) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    // A hard link's header applies to the inode it shares, so it repeats the target's metadata.
    let mut files: HashMap<&str, (u32, (u32, u32))> = HashMap::new();
    for op in ops {
        match op {
            Op::File {
                path,
                data,
                mode,
                uid,
                gid,
            } => {
                let mut h = header(EntryType::Regular, *mode, (*uid, *gid), data.len() as u64, mtime);
                b.append_data(&mut h, path, data.as_slice())
                    .with_context(|| format!("tar file {path:?}"))?;
                files.insert(path, (*mode, (*uid, *gid)));
            }
            Op::Dir {
                path,
                mode,
                uid,
                gid,
            } => {
                let mut h = header(EntryType::Directory, *mode, (*uid, *gid), 0, mtime);
                b.append_data(&mut h, format!("{path}/"), std::io::empty())
                    .with_context(|| format!("tar dir {path:?}"))?;
            }
            Op::Symlink {
                path,
                target,
                uid,
                gid,
            } => {
                let mut h = header(EntryType::Symlink, 0o777, (*uid, *gid), 0, mtime);
                b.append_link(&mut h, path, target)
                    .with_context(|| format!("tar symlink {path:?}"))?;
            }
            Op::HardLink { path, target } => {
                let (mode, owner) = *files.get(target.as_str()).with_context(|| {
                    format!("hard link {path:?}: {target:?} is not a file of this layer")
                })?;
                let mut h = header(EntryType::Link, mode, owner, 0, mtime);
                b.append_link(&mut h, path, target)
                    .with_context(|| format!("tar hard link {path:?}"))?;
            }
            Op::Delete { path } => {
                let mut h = header(EntryType::Regular, 0o644, (0, 0), 0, mtime);
                b.append_data(&mut h, whiteout_name(path), std::io::empty())
                    .with_context(|| format!("tar whiteout of {path:?}"))?;
            }
            Op::Opaque { dir } => {
                let mut h = header(EntryType::Regular, 0o644, (0, 0), 0, mtime);
                b.append_data(&mut h, format!("{dir}/.wh..wh..opq"), std::io::empty())
                    .with_context(|| format!("tar opaque marker in {dir:?}"))?;
            }
        }
    }
    b.into_inner().context("finish layer tar")
}

fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).context("gzip layer")?;
    enc.finish().context("gzip layer")
}

/// Writes an OCI image layout tarball named `name` (the `io.containerd.image.name` annotation)
/// with one layer per spec, bottom first.
pub fn layered_image_tar(
    out: &Path,
    name: &str,
    layers: &[LayerSpec],
) -> anyhow::Result<ImageInfo> {
    let mut writer = OciWriter::create(out)?;
    for (index, spec) in layers.iter().enumerate() {
        let tar = layer_tar(&spec.ops, layer_mtime(index))?;
        let diff_id = sha256_digest(&tar);
        let (media_type, blob) = if spec.gzip {
            (media_type::OCI_LAYER_GZIP, gzip(&tar)?)
        } else {
            (media_type::OCI_LAYER, tar)
        };
        writer.add_layer(Layer {
            media_type,
            blob,
            diff_id,
        })?;
    }
    let config = image_config(writer.diff_ids(), None, "berth-tests: layered image");
    writer.finish(name, &config)
}

/// The chain IDs of a layer stack (what unpack names its committed snapshots): the first
/// diff ID, then `sha256("<previous chain id> <diff id>")` for each next layer.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_digest(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// What a path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File { size: u64, sha256: String },
    Symlink(String),
    /// Anything else, by its `S_IFMT` bits (a visible whiteout device would land here).
    Other(u32),
}

/// One path of a tree: what it is, its permission bits (with setuid, setgid and sticky), owner,
/// mtime (files and symlinks only: directory times depend on how a tree was built), and the
/// other paths of the tree that are hard links to the same file, sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Option<i64>,
    pub links: Vec<String>,
}

/// Relative path to node, the root itself excluded.
pub type Tree = BTreeMap<String, Node>;

/// Fills in `links` from groups of paths that share an inode.
fn set_links(tree: &mut Tree, groups: impl IntoIterator<Item = Vec<String>>) {
    for group in groups {
        if group.len() < 2 {
            continue;
        }
        for path in &group {
            let mut others: Vec<String> = group.iter().filter(|p| *p != path).cloned().collect();
            others.sort();
            if let Some(node) = tree.get_mut(path) {
                node.links = others;
            }
        }
    }
}

/// Everything below `root` on disk, without following symlinks.
pub fn walk_tree(root: &Path) -> anyhow::Result<Tree> {
    let mut tree = Tree::new();
    let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    let mut pending = vec![String::new()];
    while let Some(rel) = pending.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
            let entry = entry.with_context(|| format!("list {}", dir.display()))?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| anyhow::anyhow!("non-utf-8 name {n:?} in {}", dir.display()))?;
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let full = entry.path();
            let md = std::fs::symlink_metadata(&full)
                .with_context(|| format!("stat {}", full.display()))?;
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                pending.push(path.clone());
                NodeKind::Dir
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&full)
                    .with_context(|| format!("read link {}", full.display()))?;
                NodeKind::Symlink(target.to_string_lossy().into_owned())
            } else if ft.is_file() {
                let data =
                    std::fs::read(&full).with_context(|| format!("read {}", full.display()))?;
                inodes
                    .entry((md.dev(), md.ino()))
                    .or_default()
                    .push(path.clone());
                NodeKind::File {
                    size: data.len() as u64,
                    sha256: sha256_digest(&data),
                }
            } else {
                NodeKind::Other(md.mode() & 0o170_000)
            };
            let mtime = (kind != NodeKind::Dir).then(|| md.mtime());
            tree.insert(
                path,
                Node {
                    kind,
                    mode: md.mode() & 0o7777,
                    uid: md.uid(),
                    gid: md.gid(),
                    mtime,
                    links: Vec::new(),
                },
            );
        }
    }
    set_links(&mut tree, inodes.into_values());
    Ok(tree)
}

/// Human-readable differences between two trees; empty when they are equal.
pub fn tree_diff(expected: &Tree, actual: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, want) in expected {
        match actual.get(path) {
            None => out.push(format!("missing {path}: {want:?}")),
            Some(got) if got != want => {
                out.push(format!("differs {path}:\n  want {want:?}\n  got  {got:?}"))
            }
            Some(_) => {}
        }
    }
    for (path, got) in actual {
        if !expected.contains_key(path) {
            out.push(format!("unexpected {path}: {got:?}"));
        }
    }
    out
}

/// A file's content and metadata, shared by its hard links.
struct Inode {
    size: u64,
    sha256: String,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

enum ModelKind {
    Dir,
    File(usize),
    Symlink(String),
}

struct ModelNode {
    kind: ModelKind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

/// The OCI layer semantics, applied to an in-memory tree.
#[derive(Default)]
struct Model {
    nodes: BTreeMap<String, ModelNode>,
    inodes: Vec<Inode>,
    /// Paths this layer wrote: a whiteout or opaque marker leaves them alone.
    created: HashSet<String>,
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn is_below(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

impl Model {
    fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || matches!(self.nodes.get(path), Some(n) if matches!(n.kind, ModelKind::Dir))
    }

    fn need_parent(&self, path: &str) {
        assert!(
            self.is_dir(parent_of(path)),
            "layered image: the parent of {path:?} is not a directory at that point"
        );
    }

    fn remove(&mut self, path: &str) {
        self.nodes.remove(path);
        self.nodes.retain(|p, _| !is_below(p, path));
    }

    /// Hides every path below `dir` that this layer did not write.
    fn clear_opaque(&mut self, dir: &str) {
        let doomed: Vec<String> = self
            .nodes
            .keys()
            .filter(|p| is_below(p, dir) && !self.created.contains(*p))
            .cloned()
            .collect();
        for p in doomed {
            self.remove(&p);
        }
    }

    fn put(&mut self, path: &str, node: ModelNode) {
        self.need_parent(path);
        self.remove(path);
        self.nodes.insert(path.to_string(), node);
        self.created.insert(path.to_string());
    }

    fn apply(&mut self, op: &Op, mtime: i64) {
        match op {
            Op::File {
                path,
                data,
                mode,
                uid,
                gid,
            } => {
                self.inodes.push(Inode {
                    size: data.len() as u64,
                    sha256: sha256_digest(data),
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                    mtime,
                });
                let kind = ModelKind::File(self.inodes.len() - 1);
                let node = ModelNode {
                    kind,
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                    mtime,
                };
                self.put(path, node);
            }
            Op::Dir {
                path,
                mode,
                uid,
                gid,
            } => {
                let node = ModelNode {
                    kind: ModelKind::Dir,
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                    mtime,
                };
                if self.is_dir(path) && !path.is_empty() {
                    self.nodes.insert(path.clone(), node);
                    self.created.insert(path.clone());
                } else {
                    self.put(path, node);
                }
            }
            Op::Symlink {
                path,
                target,
                uid,
                gid,
            } => {
                let node = ModelNode {
                    kind: ModelKind::Symlink(target.clone()),
                    mode: 0o777,
                    uid: *uid,
                    gid: *gid,
                    mtime,
                };
                self.put(path, node);
            }
            Op::HardLink { path, target } => {
                let index = match self.nodes.get(target.as_str()) {
                    Some(ModelNode {
                        kind: ModelKind::File(i),
                        ..
                    }) if self.created.contains(target) => *i,
                    _ => panic!("layered image: hard link {path:?} to {target:?}, which is not a file of the same layer"),
                };
                let ino = &self.inodes[index];
                let node = ModelNode {
                    kind: ModelKind::File(index),
                    mode: ino.mode,
                    uid: ino.uid,
                    gid: ino.gid,
                    mtime,
                };
                self.put(path, node);
            }
            Op::Delete { path } => {
                self.need_parent(path);
                if !self.created.contains(path) {
                    self.remove(path);
                } else if self.is_dir(path) {
                    // What this layer wrote stays; a whiteout only hides lower layers.
                    self.clear_opaque(path);
                }
            }
            Op::Opaque { dir } => {
                assert!(
                    self.is_dir(dir),
                    "layered image: opaque marker in {dir:?}, which is not a directory"
                );
                self.clear_opaque(dir);
            }
        }
    }

    fn tree(&self) -> Tree {
        let mut tree = Tree::new();
        let mut groups: HashMap<usize, Vec<String>> = HashMap::new();
        for (path, n) in &self.nodes {
            let node = match &n.kind {
                ModelKind::Dir => Node {
                    kind: NodeKind::Dir,
                    mode: n.mode,
                    uid: n.uid,
                    gid: n.gid,
                    mtime: None,
                    links: Vec::new(),
                },
                ModelKind::Symlink(target) => Node {
                    kind: NodeKind::Symlink(target.clone()),
                    mode: n.mode,
                    uid: n.uid,
                    gid: n.gid,
                    mtime: Some(n.mtime),
                    links: Vec::new(),
                },
                ModelKind::File(i) => {
                    groups.entry(*i).or_default().push(path.clone());
                    let ino = &self.inodes[*i];
                    Node {
                        kind: NodeKind::File {
                            size: ino.size,
                            sha256: ino.sha256.clone(),
                        },
                        mode: ino.mode,
                        uid: ino.uid,
                        gid: ino.gid,
                        mtime: Some(ino.mtime),
                        links: Vec::new(),
                    }
                }
            };
            tree.insert(path.clone(), node);
        }
        set_links(&mut tree, groups.into_values());
        tree
    }
}

/// The tree that unpacking `layers` (bottom first) must produce.
pub fn expected_tree(layers: &[LayerSpec]) -> Tree {
    let mut model = Model::default();
    for (index, spec) in layers.iter().enumerate() {
        model.created.clear();
        let mtime = i64::try_from(layer_mtime(index)).expect("layer mtimes fit in i64");
        for op in &spec.ops {
            model.apply(op, mtime);
        }
    }
    model.tree()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> Vec<LayerSpec> {
        vec![
            LayerSpec::plain(vec![
                Op::dir("etc", 0o755),
                Op::file("etc/a", "a1", 0o644),
                Op::dir("d", 0o700).owner(5, 6),
                Op::file("d/old", "old", 0o600),
                Op::file("x", "x", 0o4755),
                Op::hard_link("y", "x"),
            ]),
            LayerSpec::gzip(vec![
                Op::file("etc/a", "a2", 0o640),
                Op::delete("x"),
                Op::dir("d", 0o750),
                Op::file("d/new", "new", 0o644),
                Op::opaque("d"),
                Op::symlink("l", "etc/a"),
            ]),
        ]
    }

    #[test]
    fn model_follows_whiteouts_opaque_dirs_and_links() {
        let tree = expected_tree(&layers());
        let names: Vec<&str> = tree.keys().map(String::as_str).collect();
        assert_eq!(names, ["d", "d/new", "etc", "etc/a", "l", "y"]);
        assert_eq!(tree["d"].mode, 0o750);
        assert_eq!(tree["etc/a"].mode, 0o640);
        assert_eq!(tree["y"].mode, 0o4755);
        assert!(tree["y"].links.is_empty(), "x is gone, y stays alone");
        assert_eq!(tree["l"].kind, NodeKind::Symlink("etc/a".into()));
        assert_eq!(tree["l"].mtime, Some(layer_mtime(1) as i64));

        let one = expected_tree(&layers()[..1]);
        assert_eq!(one["x"].links, ["y"]);
        assert_eq!(one["d"].uid, 5);
    }

    #[test]
    fn tar_names_whiteouts_and_chain_ids() {
        let tar = layer_tar(&layers()[1].ops, layer_mtime(1)).expect("layer");
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry").path().expect("path").display().to_string())
            .collect();
        assert_eq!(names, ["etc/a", ".wh.x", "d/", "d/new", "d/.wh..wh..opq", "l"]);
        let ids = chain_ids(&["sha256:a".into(), "sha256:b".into()]);
        assert_eq!(ids[0], "sha256:a");
        assert_eq!(ids[1], sha256_digest(b"sha256:a sha256:b"));
    }

    #[test]
    #[should_panic(expected = "not a directory")]
    fn model_refuses_missing_parents() {
        expected_tree(&[LayerSpec::plain(vec![Op::file("nodir/f", "", 0o644)])]);
    }

    #[test]
    fn walks_a_real_tree() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub/f"), "hi").expect("write");
        std::fs::hard_link(dir.path().join("sub/f"), dir.path().join("g")).expect("link");
        std::os::unix::fs::symlink("sub/f", dir.path().join("s")).expect("symlink");
        let tree = walk_tree(dir.path()).expect("walk");
        let names: Vec<&str> = tree.keys().map(String::as_str).collect();
        assert_eq!(names, ["g", "s", "sub", "sub/f"]);
        assert_eq!(tree["g"].links, ["sub/f"]);
        assert_eq!(tree["s"].kind, NodeKind::Symlink("sub/f".into()));
        assert_eq!(
            tree["sub/f"].kind,
            NodeKind::File {
                size: 2,
                sha256: sha256_digest(b"hi")
            }
        );
    }
}
