//! A snapshotter's own metadata and directories, shared by both implementations.
//!
//! Layout under the root:
//!
//! ```text
//! <root>/metadata/            sled database (schema in records.rs)
//! <root>/snapshots/<id>/fs    the snapshot's files (overlay: its upper layer)
//! <root>/snapshots/<id>/work  overlay's work dir (active snapshots only)
//! <root>/snapshots/tmp-<n>    a snapshot being built, not yet visible
//! <root>/snapshots/rm-<name>  an orphan being deleted (a removed snapshot's `<id>` is an
//!                             orphan until cleanup)
//! <root>/snapshots/spare-<n>  empty directories made ahead for the next prepare (spares.rs)
//! ```
//!
//! Crash safety: the record is the truth, and [`Store::open`] makes the directories agree with
//! the records. A new snapshot is built under a temp name, renamed to `<id>` and only then
//! recorded, with one sled write; ids come from a stored high-water mark, advanced a block at a
//! time, so an id is never handed out twice, even after a crash left its directory behind.
//!
//! - `kill -9`: a finished rename is in the kernel, so every record has its directory. A kill
//!   before the record leaves an unrecorded directory (never visible: `stat` says NotFound);
//!   open removes those, temp dirs and `rm-` dirs, [`Store::cleanup`] any found while running.
//! - Power loss can keep a record and lose the rename before it: directories are not synced
//!   when a snapshot is only empty directories (every overlay prepare and view), as a directory
//!   sync would cost more than the rest of the prepare. Such a record says it is *rebuildable*
//!   and lists those directories with modes and owners; open makes them again, empty, with a
//!   warning. Files written into one before the power went were not synced either. (A
//!   journalling filesystem keeps metadata changes in order, so the renamed tree comes back
//!   whole or not at all: open only needs the listing of `snapshots/` to tell.)
//! - A snapshot that holds data syncs `snapshots/` before it is recorded: a native copy at
//!   create, an overlay layer at commit (so nothing is ever built on a layer that could vanish).
//!   A record whose directory is missing anyway is logged as an error at open and kept, so it
//!   can be seen and removed; mounts on it, and snapshots created on it, fail naming it.
//!
//! Removal deletes the record only; the directory is then an orphan, which cleanup (or the next
//! open) deletes, so a crash can leave an orphan, never a record without its files.
//!
//! Writers are serialised by one lock, which also guards the parent→children index (kept in
//! memory, rebuilt from the records at open); readers never take it.

mod dirs;
mod mutate;
mod open;
mod records;
mod spares;
pub mod usage;

pub use dirs::{make_empty_dir, remove_dir_logged, Contents};
pub use records::{EmptyDir, SnapshotRec};
pub use spares::DirSpec;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

use crate::{Error, Info, Kind, Result, Usage};
use records::*;

const SCHEMA_VERSION: u32 = 2;

/// How far the stored id high-water mark moves at a time: one metadata write per this many
/// snapshots (and per start), and as many ids skipped at most per restart.
const ID_BLOCK: u64 = 1024;

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
    writer: Mutex<Writer>,
    /// Temp directories being built right now; cleanup leaves them alone.
    inflight: Mutex<HashSet<String>>,
    temp_seq: AtomicU64,
    /// Snapshots recorded without their directory at open and not rebuildable: id → key.
    lost: HashMap<u64, String>,
    /// Empty snapshot directories made ahead of time, when the implementation asked for them.
    spares: Option<spares::Spares>,
}

/// What only writers use, under one lock.
struct Writer {
    /// Parent key → the ids of the snapshots made on it. Keys do the job of ids here: a
    /// committed snapshot keeps its key, and cannot be removed (freeing it) while it has
    /// children.
    children: HashMap<String, HashSet<u64>>,
    /// The id the next snapshot gets.
    next_id: u64,
    /// The stored high-water mark: `next_id` may not reach it before it is moved on.
    id_limit: u64,
}

fn not_found(key: &str) -> Error {
    Error::not_found(format!("snapshot {key:?}: not found"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave the database half-written (each write is
    // atomic) nor the index wrong (it changes only after the write succeeded), so a poisoned
    // lock is still safe to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Keeps a few spare directories holding `template` ready for [`Store::create_empty`].
    pub fn keep_spares(&mut self, template: Vec<DirSpec>) -> Result<()> {
        self.spares = Some(spares::Spares::start(&self.snapshots, template)?);
        Ok(())
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

    /// The snapshot with its ancestors' ids; fails when one of them lost its directory.
    pub fn snapshot(&self, key: &str) -> Result<Snapshot> {
        let rec = self.get(key)?;
        let snap = Snapshot {
            id: rec.id,
            kind: rec.kind(),
            parent_ids: self.parent_ids(key, &rec)?,
        };
        self.check_not_lost(key, Some(snap.id), &snap.parent_ids)?;
        Ok(snap)
    }

    /// Fails when snapshot `id` or one of `parent_ids` was found without its directory at open
    /// (see the module doc): better than a mount failing on a missing path.
    pub(super) fn check_not_lost(
        &self,
        key: &str,
        id: Option<u64>,
        parent_ids: &[u64],
    ) -> Result<()> {
        if self.lost.is_empty() {
            return Ok(());
        }
        for i in id.iter().chain(parent_ids) {
            if let Some(k) = self.lost.get(i) {
                let whose = if Some(*i) == id {
                    format!("snapshot {key:?}")
                } else {
                    format!("snapshot {key:?}: layer {k:?}")
                };
                return Err(Error::precondition(format!(
                    "{whose}: directory {} was lost (missing since a crash); remove the \
                     snapshot and make it again",
                    self.dir(*i).display()
                )));
            }
        }
        Ok(())
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

    /// Hands out an id, first moving the stored high-water mark on when it is reached: the
    /// mark is on disk before an id under it is handed out, so none is handed out twice.
    fn take_id(&self, w: &mut Writer) -> Result<u64> {
        if w.next_id >= w.id_limit {
            let limit = w.next_id.saturating_add(ID_BLOCK);
            self.db.insert(ID_LIMIT_KEY, &limit.to_be_bytes())?;
            self.db.flush()?;
            w.id_limit = limit;
        }
        let id = w.next_id;
        w.next_id += 1;
        Ok(id)
    }

    /// Writes one record. A lone insert is atomic by itself and costs sled one log write and
    /// one sync where a batch costs two (its manifest goes in an IO buffer of its own).
    fn put(&self, key: &str, rec: &SnapshotRec) -> Result<()> {
        self.db
            .insert(snapshot_key(key), prost::Message::encode_to_vec(rec))?;
        self.db.flush()?;
        Ok(())
    }

    fn apply(&self, batch: sled::Batch) -> Result<()> {
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
