//! Snapshots on disk: the [`Snapshotter`] trait with containerd's semantics and its two
//! implementations, overlayfs and a native copy-based fallback, plus layer archives applied onto
//! and computed from mounted snapshots ([`archive`]).
//!
//! This crate owns everything under a snapshotter's root directory (its own metadata and the
//! numbered snapshot directories). It knows nothing of namespaces, leases, gRPC or the content
//! store: the daemon maps namespaced keys onto the flat keys used here and keeps gc references.

pub mod archive;
pub mod error;
pub mod mount;
pub mod native;
pub mod overlay;
pub mod storage;

/// A suite every [`Snapshotter`] must pass; see [`conformance::run_all`].
#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{Error, ErrorKind, Result};

use std::collections::HashMap;
use std::time::SystemTime;

pub type Labels = HashMap<String, String>;

/// A snapshot's kind, as containerd numbers them on the wire (1 view, 2 active, 3 committed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    View,
    Active,
    Committed,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::View => "view",
            Kind::Active => "active",
            Kind::Committed => "committed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// The key (active/view) or the name (committed).
    pub name: String,
    /// The committed snapshot this one is based on.
    pub parent: Option<String>,
    pub kind: Kind,
    pub labels: Labels,
    pub created: SystemTime,
    pub updated: SystemTime,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes used by this snapshot's own layer (not its parents').
    pub size: i64,
    pub inodes: i64,
}

/// A mount as containerd describes it: what `mount(8)` takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub kind: String,
    pub source: String,
    pub target: String,
    pub options: Vec<String>,
}

/// containerd's snapshotter contract. Keys are any non-empty text (unpack uses keys with spaces);
/// they never become paths. Errors carry containerd's kinds: NotFound for a missing key or
/// parent, AlreadyExists for a taken key or name, FailedPrecondition for removing a snapshot
/// that has children or committing a view, InvalidArgument for a parent that is not committed.
pub trait Snapshotter: Send + Sync {
    /// The name clients use (`overlayfs`, `native`).
    fn name(&self) -> &str;
    fn stat(&self, key: &str) -> Result<Info>;
    /// Only labels change: `labels` or `labels.<k>` paths; an empty list replaces all labels.
    fn update(&self, key: &str, labels: Labels, paths: &[String]) -> Result<Info>;
    /// Usage of the snapshot's own layer; for an active snapshot computed now.
    fn usage(&self, key: &str) -> Result<Usage>;
    /// The mounts of an active snapshot or a view.
    fn mounts(&self, key: &str) -> Result<Vec<Mount>>;
    /// Creates an active (writable) snapshot on top of the committed `parent`.
    fn prepare(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>>;
    /// Creates a read-only view of the committed `parent`.
    fn view(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>>;
    /// Turns the active snapshot `key` into the committed snapshot `name`.
    fn commit(&self, name: &str, key: &str, labels: Labels) -> Result<()>;
    /// Removes the snapshot's record; its directory goes at once or with [`Snapshotter::cleanup`].
    fn remove(&self, key: &str) -> Result<()>;
    /// Every snapshot, in no particular order.
    fn list(&self) -> Result<Vec<Info>>;
    /// Removes directories no record points at (left by crashes or deferred removal).
    fn cleanup(&self) -> Result<()>;
}
