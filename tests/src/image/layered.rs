//! Multi-layer test images described change by change (files added and changed, directories,
//! symlinks, hard links, OCI whiteouts and opaque directories), together with the tree a correct
//! unpack must produce, so a test can compare a mounted snapshot against it in full.
//!
//! The expected tree is computed by a small model of the OCI layer semantics, independent of
//! the code under test. The model refuses (panics on) descriptions whose outcome depends on
//! unspecified behaviour: a missing parent directory, or a hard link to another layer's file.

mod model;
mod tree;

pub use model::expected_tree;
pub use tree::{tree_diff, walk_tree, Node, NodeKind, Tree};

use std::collections::HashMap;
use std::io::Write;
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
                let mut h = header(
                    EntryType::Regular,
                    *mode,
                    (*uid, *gid),
                    data.len() as u64,
                    mtime,
                );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_names_whiteouts_and_chain_ids() {
        let tar = layer_tar(
            &[
                Op::file("etc/a", "a2", 0o640),
                Op::delete("x"),
                Op::dir("d", 0o750),
                Op::file("d/new", "new", 0o644),
                Op::opaque("d"),
                Op::symlink("l", "etc/a"),
            ],
            layer_mtime(1),
        )
        .expect("layer");
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            ["etc/a", ".wh.x", "d/", "d/new", "d/.wh..wh..opq", "l"]
        );
        let ids = chain_ids(&["sha256:a".into(), "sha256:b".into()]);
        assert_eq!(ids[0], "sha256:a");
        assert_eq!(ids[1], sha256_digest(b"sha256:a sha256:b"));
    }
}
