//! The diff service's logic: apply a layer blob onto mounts (unpack), and compute a layer from two
//! mounts into the content store (`ctr snapshots diff`, image commits).

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::path::Path;

use berth_snapshotter::archive::{self, Compression, Limits, WhiteoutMode};
use berth_snapshotter::Mount;
use sha2::{Digest as _, Sha256};

use crate::content::Digest;
use crate::error::{Error, Result};
use crate::metadata::{content, DescriptorRec};
use crate::mount::TempMount;
use crate::Meta;

pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LABEL_UNCOMPRESSED: &str = "containerd.io/uncompressed";

/// Where a layer goes: straight into a directory, or through a temporary mount.
enum Target<'a> {
    /// The directory, how whiteouts are made there, and the layers under it (an overlay's
    /// lowerdirs, topmost first), which give directories created in it their attributes.
    Dir(&'a str, WhiteoutMode, Vec<&'a str>),
    Mounted,
}

fn option<'a>(m: &'a Mount, name: &str) -> Option<&'a str> {
    m.options
        .iter()
        .find_map(|o| o.strip_prefix(name)?.strip_prefix('='))
}

fn target(mounts: &[Mount]) -> Result<Target<'_>> {
    match mounts {
        [] => Err(Error::invalid("no mounts to apply the layer onto")),
        [m] if m.kind == "overlay" => match option(m, "upperdir") {
            // Whiteouts become overlay's own (char 0:0, opaque xattr) in the upper layer.
            Some(upper) => {
                let lowers =
                    option(m, "lowerdir").map_or_else(Vec::new, |l| l.split(':').collect());
                Ok(Target::Dir(upper, WhiteoutMode::Overlay, lowers))
            }
            None => Err(Error::invalid(
                "overlay mount without upperdir is read-only",
            )),
        },
        [m] if m.kind == "bind" => {
            if m.options.iter().any(|o| o == "ro") {
                return Err(Error::invalid(format!(
                    "mount of {} is read-only",
                    m.source
                )));
            }
            Ok(Target::Dir(&m.source, WhiteoutMode::Remove, Vec::new()))
        }
        _ => Ok(Target::Mounted),
    }
}

/// Applies the layer blob `desc` (held by the namespace) onto `mounts`; returns the descriptor of
/// the uncompressed layer, whose digest is the diff ID callers check against the image config.
pub fn apply(m: &Meta, ns: &str, desc: &DescriptorRec, mounts: &[Mount]) -> Result<DescriptorRec> {
    let d = Digest::parse(&desc.digest)?;
    let comp = archive::compression_for(&desc.media_type)?;
    let (_, file) = content::open(m, ns, &d)?;
    let reader = archive::decompress(comp, BufReader::with_capacity(1 << 20, file))?;
    let limits = Limits::default();
    let applied = match target(mounts)? {
        Target::Dir(dir, mode, lowers) => {
            let lowers: Vec<&Path> = lowers.iter().map(Path::new).collect();
            archive::apply_over(Path::new(dir), &lowers, reader, mode, &limits)?
        }
        Target::Mounted => {
            let tm = TempMount::new(&m.tmpmounts, mounts)?;
            archive::apply(tm.path(), reader, WhiteoutMode::Remove, &limits)?
        }
    };
    Ok(DescriptorRec {
        media_type: MEDIA_TYPE_LAYER.into(),
        digest: applied.diff_id,
        size: applied.size as i64,
        annotations: HashMap::new(),
    })
}

/// Hashes what passes through: the uncompressed digest of a layer.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Appends to an ingest.
struct IngestWrite<'a> {
    w: &'a mut content::NsWriter,
    offset: i64,
}

impl Write for IngestWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.offset = self
            .w
            .inner
            .write_at(self.offset, buf)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct DiffRequest {
    pub left: Vec<Mount>,
    pub right: Vec<Mount>,
    pub media_type: String,
    pub reference: String,
    pub labels: HashMap<String, String>,
}

/// Writes the changes from `left` to `right` as a layer into the content store.
pub fn diff(m: &Meta, ns: &str, req: DiffRequest, lease: Option<&str>) -> Result<DescriptorRec> {
    let media_type = if req.media_type.is_empty() {
        MEDIA_TYPE_LAYER_GZIP.to_string()
    } else {
        req.media_type
    };
    let comp = archive::compression_for(&media_type)?;
    let reference = if req.reference.is_empty() {
        format!("diff-{}", uuid::Uuid::new_v4().simple())
    } else {
        req.reference
    };
    // No left side: the layer is the whole of the right side, compared with an empty dir.
    let lower = TempMount::new(&m.tmpmounts, &read_only(req.left))?;
    let upper = TempMount::new(&m.tmpmounts, &read_only(req.right))?;
    let mut w = content::writer(m, ns, &reference, 0, None, lease)?;
    let uncompressed = {
        let sink = IngestWrite {
            w: &mut w,
            offset: 0,
        };
        let digest = match comp {
            Compression::None => {
                let mut h = Hashing {
                    inner: sink,
                    hash: Sha256::new(),
                };
                archive::write_diff(lower.path(), upper.path(), &mut h)?;
                h.hash.finalize()
            }
            Compression::Gzip => {
                let gz = flate2::write::GzEncoder::new(sink, flate2::Compression::fast());
                let mut h = Hashing {
                    inner: gz,
                    hash: Sha256::new(),
                };
                archive::write_diff(lower.path(), upper.path(), &mut h)?;
                h.inner
                    .finish()
                    .map_err(|e| Error::internal(format!("compress layer: {e}")))?;
                h.hash.finalize()
            }
            Compression::Zstd => {
                return Err(Error::invalid(format!(
                    "media type {media_type:?}: writing zstd layers is not supported"
                )))
            }
        };
        Digest::from_sha256(&digest)
    };
    let mut labels = req.labels;
    labels.insert(LABEL_UNCOMPRESSED.into(), uncompressed.to_string());
    let size = w.status().offset;
    let written = w.inner.digest();
    let d = match w.commit(m, 0, None, labels) {
        Ok(d) => d,
        // The same layer was computed before: it is the answer all the same.
        Err(e) if e.is(crate::error::Kind::AlreadyExists) => written,
        Err(e) => return Err(e),
    };
    Ok(DescriptorRec {
        media_type,
        digest: d.to_string(),
        size,
        annotations: HashMap::new(),
    })
}

/// Views mount read-only for reading a diff.
fn read_only(mut mounts: Vec<Mount>) -> Vec<Mount> {
    for m in &mut mounts {
        m.options.retain(|o| o != "rw");
        if !m.options.iter().any(|o| o == "ro") {
            m.options.push("ro".into());
        }
    }
    mounts
}
