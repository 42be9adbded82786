//! A snapshotter's own metadata and directories, shared by both implementations.
//!
//! Layout under the root:
//!
//! ```text
//! <root>/metadata/            sled database (schema in records.rs)
//! <root>/snapshots/<id>/fs    the snapshot's files (overlay: its upper layer)
//! <root>/snapshots/<id>/work  overlay's work dir (active snapshots only)
//! <root>/snapshots/tmp-<n>    a snapshot being built, not yet visible
//! <root>/snapshots/rm-<name>  an orphan being deleted
//! ```
//!
//! Crash safety: a new snapshot is built under a temp name, renamed to `<id>` and only then
//! recorded, in one sled batch that also advances the id counter. A crash before the record
//! leaves an unrecorded directory (never visible: `stat` says NotFound); [`Store::open`] removes
//! temp dirs and ids the counter has not reached, [`Store::cleanup`] every unrecorded directory.
//! Removal deletes the record first and the directory after, so a crash leaves an orphan, never a
//! record without its files. Writers are serialised by one lock; readers never take it.

mod dirs;
mod mutate;
mod records;
pub mod usage;

pub use dirs::remove_dir_logged;
pub use records::SnapshotRec;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

use crate::{Error, Info, Kind, Result, Usage};
use records::*;

const SCHEMA_VERSION: u32 = 1;

/// What an implementation needs to know of a snapshot to build its mounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub id: u64,
    pub kind: Kind,
    /// The committed ancestors' ids, nearest first.
    pub parent_ids: Vec<u64>,
}

pub struct Store {
    snapshots: PathBuf,
    db: sled::Db,
    wlock: Mutex<()>,
    /// Temp directories being built right now; cleanup leaves them alone.
    inflight: Mutex<HashSet<String>>,
    temp_seq: AtomicU64,
}

fn not_found(key: &str) -> Error {
    Error::not_found(format!("snapshot {key:?}: not found"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the database half-written (batches are
    // atomic), so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Opens (creating if needed) the store under `root` and removes what a crash left behind
    /// that can never become visible.
    pub fn open(root: &Path) -> Result<Store> {
        let snapshots = root.join("snapshots");
        for dir in [root, snapshots.as_path()] {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format_args!("create {}", dir.display()), e))?;
            // Layers hold setuid binaries and device nodes of images: only root may walk in.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(format_args!("chmod {}", dir.display()), e))?;
        }
        let meta = root.join("metadata");
        let db = sled::Config::new()
            .path(&meta)
            .cache_capacity(4 << 20)
            // Every mutation flushes before it answers; sled's timer would only wake an idle
            // daemon twice a second to sync nothing.
            .flush_every_ms(None)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|e| {
                Error::internal(format!("open snapshot metadata at {}: {e}", meta.display()))
            })?;
        match db.get(VERSION_KEY)? {
            None => {
                db.insert(VERSION_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(v) if v.as_ref() == SCHEMA_VERSION.to_be_bytes() => {}
            Some(v) => {
                return Err(Error::internal(format!(
                    "snapshot metadata at {}: unknown schema version {v:?}",
                    meta.display()
                )))
            }
        }
        let store = Store {
            snapshots,
            db,
            wlock: Mutex::new(()),
            inflight: Mutex::new(HashSet::new()),
            temp_seq: AtomicU64::new(records::now_nanos() as u64),
        };
        store.remove_crash_leftovers()?;
        Ok(store)
    }

    /// The directory of snapshot `id` (holding `fs/` and, for overlay, `work/`).
    pub fn dir(&self, id: u64) -> PathBuf {
        self.snapshots.join(id.to_string())
    }

    /// `<root>/snapshots`, the parent of every snapshot directory.
    pub fn snapshots_dir(&self) -> &Path {
        &self.snapshots
    }

    pub fn get(&self, key: &str) -> Result<SnapshotRec> {
        let v = self
            .db
            .get(snapshot_key(key))?
            .ok_or_else(|| not_found(key))?;
        prost::Message::decode(v.as_ref())
            .map_err(|e| Error::internal(format!("snapshot {key:?}: corrupt record: {e}")))
    }

    pub fn stat(&self, key: &str) -> Result<Info> {
        Ok(self.get(key)?.info(key))
    }

    /// The snapshot with its ancestors' ids.
    pub fn snapshot(&self, key: &str) -> Result<Snapshot> {
        let rec = self.get(key)?;
        Ok(Snapshot {
            id: rec.id,
            kind: rec.kind(),
            parent_ids: self.parent_ids(key, &rec)?,
        })
    }

    pub(super) fn parent_ids(&self, key: &str, rec: &SnapshotRec) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        let mut next = rec.parent.clone();
        while !next.is_empty() {
            let p = self.get(&next).map_err(|e| {
                if e.is(crate::ErrorKind::NotFound) {
                    Error::not_found(format!("snapshot {key:?}: parent {next:?} not found"))
                } else {
                    e
                }
            })?;
            if ids.len() > 1 << 16 || ids.contains(&p.id) {
                return Err(Error::internal(format!(
                    "snapshot {key:?}: parent chain loops"
                )));
            }
            ids.push(p.id);
            next = p.parent;
        }
        Ok(ids)
    }

    /// The committed snapshot `parent`, checked to be usable as a parent.
    pub(super) fn parent_rec(&self, parent: &str) -> Result<SnapshotRec> {
        let rec = self.get(parent).map_err(|e| {
            if e.is(crate::ErrorKind::NotFound) {
                Error::not_found(format!("parent snapshot {parent:?}: not found"))
            } else {
                e
            }
        })?;
        if rec.kind() != Kind::Committed {
            return Err(Error::invalid(format!(
                "parent snapshot {parent:?}: not committed"
            )));
        }
        Ok(rec)
    }

    pub fn list(&self) -> Result<Vec<Info>> {
        Ok(self
            .records()?
            .into_iter()
            .map(|(key, rec)| rec.info(&key))
            .collect())
    }

    /// Usage of the snapshot's own `fs/`: measured now for an active snapshot, as stored at
    /// commit otherwise (views own nothing, as in containerd).
    pub fn usage(&self, key: &str) -> Result<Usage> {
        let rec = self.get(key)?;
        match rec.kind() {
            Kind::Active => usage::disk_usage(&self.dir(rec.id).join("fs"))
                .map_err(|e| e.context(format_args!("snapshot {key:?}"))),
            _ => Ok(rec.usage()),
        }
    }

    /// Every record with its key.
    pub fn records(&self) -> Result<Vec<(String, SnapshotRec)>> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(SNAPSHOT_PREFIX) {
            let (k, v) = kv?;
            let Some(key) = user_key(&k) else { continue };
            let rec: SnapshotRec = prost::Message::decode(v.as_ref())
                .map_err(|e| Error::internal(format!("snapshot {key:?}: corrupt record: {e}")))?;
            out.push((key, rec));
        }
        Ok(out)
    }

    pub(super) fn next_id(&self) -> Result<u64> {
        Ok(self
            .db
            .get(NEXT_ID_KEY)?
            .and_then(|v| decode_u64(&v))
            .unwrap_or(1))
    }

    pub(super) fn apply(&self, batch: sled::Batch) -> Result<()> {
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}
