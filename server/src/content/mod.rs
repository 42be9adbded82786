//! The on-disk content store: blobs addressed by digest and resumable ingests that become blobs
//! only once their size and digest check out. It is the filesystem half of containerd's content
//! service (like its `content/local`): namespaces, labels and leases belong to the metadata layer
//! above, which calls this one.
//!
//! Layout under the root (every directory 0700):
//! - `blobs/sha256/<hex>`: committed blobs, read-only (0444), complete or absent, never partial;
//! - `ingest/<hex(sha256(ref))>/{data,meta}`: ingests in progress (see `ingest.rs`).

mod digest;
mod ingest;
mod store;
mod writer;

#[cfg(test)]
mod tests;

pub use digest::Digest;
pub use ingest::IngestStatus;
pub use store::ContentStore;
pub use writer::Writer;

use std::fmt::Display;

use crate::error::{Error, Kind};

/// Turns an io error into the crate's error, naming what was being done, and keeping the
/// distinctions a client can act on (missing, disk full).
fn io_error(e: std::io::Error, what: impl Display) -> Error {
    let text = e.to_string();
    // std's messages start with a capital ("No such file..."); ours are lowercase throughout.
    let mut chars = text.chars();
    let text = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    };
    let kind = match e.raw_os_error() {
        Some(code) if code == nix::errno::Errno::ENOSPC as i32 => Kind::ResourceExhausted,
        Some(code) if code == nix::errno::Errno::EDQUOT as i32 => Kind::ResourceExhausted,
        _ => Error::from(e).kind,
    };
    Error::new(kind, format!("{what}: {text}"))
}
