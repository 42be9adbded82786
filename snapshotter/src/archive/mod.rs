//! Layer archives: applying an OCI layer tar onto a directory ([`apply`]) and computing one from
//! two directory trees ([`write_diff`]).
//!
//! Layers come from registries and image tarballs, so [`apply`] treats every byte as hostile: each
//! filesystem effect is resolved inside the target root with `openat2(RESOLVE_IN_ROOT)` and done
//! with `*at` calls on the final component, never by joining strings, and never through a
//! symlink out of the root. Symlinks and hard links that point outside are created but stay
//! bounded to the root when resolved (containerd's policy); whiteouts that would escape their
//! directory are refused. The `tar` crate only parses: its `unpack` family is never used.

mod apply;
mod compress;
mod diff;
mod entry;
mod lowers;
mod meter;
mod root;
mod sys;
mod tarw;

pub use apply::{apply, apply_over};
pub use compress::{compression_for, decompress, Compression};
pub use diff::write_diff;

/// How OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`) are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// The target is an overlay upperdir: `.wh.x` becomes a character device 0:0 named `x`, and
    /// `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory.
    Overlay,
    /// The target is a plain tree (a native snapshot, or an overlay mounted at the target):
    /// `.wh.x` removes `x`; an opaque marker removes everything in its directory that this layer
    /// did not itself create.
    Remove,
}

/// Bounds on what one layer may do, so a hostile layer (a tar or decompression bomb) fails with
/// ResourceExhausted instead of filling the disk (containerd THREAT_MODEL STORE-002/003).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of uncompressed tar stream read, and most file content bytes written.
    pub max_bytes: u64,
    /// Most tar entries.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 10_000_000,
        }
    }
}

/// What [`apply`] read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// `sha256:<hex>` of the whole uncompressed stream, trailing blocks included: the layer's
    /// diff ID as an image config lists it.
    pub diff_id: String,
    /// Bytes of uncompressed stream.
    pub size: u64,
}

/// Prefix of a whiteout entry's base name.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Base name of an opaque-directory marker.
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// Xattr overlayfs reads to make an upper directory opaque.
const OVERLAY_OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";
