//! Trees to compare: what a directory holds on disk, walked without following symlinks, and
//! the differences between two such trees.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context;

use crate::image::sha256_digest;

/// What a path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File {
        size: u64,
        sha256: String,
    },
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
pub(super) fn set_links(tree: &mut Tree, groups: impl IntoIterator<Item = Vec<String>>) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
