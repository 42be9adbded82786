//! berthd: containerd's API services over gRPC, the sled metadata store, the content store, garbage
//! collection and the event exchange. It owns everything under the daemon's root and state dirs.
//! It must not run containers itself (that is the shim's and the runtime's job) nor know about
//! snapshot layouts on disk (the snapshotter crate's).

pub mod config;
pub mod content;
pub mod daemon;
pub mod diff;
pub mod error;
pub mod events;
pub mod filters;
pub mod gc;
pub mod identifiers;
pub mod memory;
pub mod metadata;
pub mod mount;
pub mod services;
pub mod snapshotters;

use std::collections::HashMap;
use std::sync::Arc;

use berth_snapshotter::Snapshotter;

/// Everything a service needs: the metadata, the content bytes, the event exchange and the
/// collector. Shared by all services behind an `Arc`.
pub struct Meta {
    pub db: metadata::Db,
    pub content: content::ContentStore,
    pub events: events::Exchange,
    pub gc: gc::Gc,
    /// The snapshotters by the name clients use (`overlayfs`, `native`).
    pub snapshotters: HashMap<String, Arc<dyn Snapshotter>>,
    /// Where the diff service mounts snapshots for a moment.
    pub tmpmounts: std::path::PathBuf,
}

impl Meta {
    pub fn open(root: &std::path::Path) -> error::Result<Arc<Meta>> {
        let db = metadata::Db::open(&root.join("metadata"))?;
        let content = content::ContentStore::open(&root.join("content"))?;
        let snapshotters = snapshotters::open_all(&root.join("snapshots"))?;
        Ok(Arc::new(Meta {
            db,
            content,
            events: events::Exchange::new(),
            gc: gc::Gc::default(),
            snapshotters,
            tmpmounts: root.join("tmpmounts"),
        }))
    }
}
