//! The tree a layer stack must unpack to, from a small model of the OCI layer semantics
//! (replacement, whiteouts, opaque directories, hard links) that shares no code with the
//! implementation under test.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::tree::{set_links, Node, NodeKind, Tree};
use super::{layer_mtime, LayerSpec, Op};
use crate::image::sha256_digest;

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
        path.is_empty()
            || matches!(self.nodes.get(path), Some(n) if matches!(n.kind, ModelKind::Dir))
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
    #[should_panic(expected = "not a directory")]
    fn model_refuses_missing_parents() {
        expected_tree(&[LayerSpec::plain(vec![Op::file("nodir/f", "", 0o644)])]);
    }
}
