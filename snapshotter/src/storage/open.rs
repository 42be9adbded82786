//! Opening a store: the schema, the in-memory index, and making the directories agree with the
//! records after a crash (the rules are in the module doc).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use super::records::*;
use super::{remove_dir_logged, Store, Writer, SCHEMA_VERSION};
use crate::{Error, Kind, Result};

impl Store {
    /// Opens (creating if needed) the store under `root`, removes what a crash left that can
    /// never become visible and rebuilds, from their records, directories a power loss took.
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
        check_schema(&db, &meta)?;
        let limit = db
            .get(ID_LIMIT_KEY)?
            .and_then(|v| decode_u64(&v))
            .unwrap_or(1);
        let mut store = Store {
            snapshots,
            db,
            writer: Mutex::new(Writer {
                children: HashMap::new(),
                // Ids under the mark may name directories a crash left: start past it.
                next_id: limit,
                id_limit: limit,
            }),
            inflight: Mutex::new(HashSet::new()),
            temp_seq: AtomicU64::new(now_nanos() as u64),
            lost: HashMap::new(),
            spares: None,
        };
        let records = store.records()?;
        let present = store.remove_crash_leftovers(&records)?;
        store.lost = store.rebuild_missing(&records, &present);
        let keys: HashSet<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
        let w = store.writer.get_mut().unwrap_or_else(|e| e.into_inner());
        for (key, rec) in &records {
            if let Some(p) = rec.parent() {
                if !keys.contains(p) {
                    tracing::error!("snapshot {key:?}: parent {p:?} not found");
                }
                w.children.entry(p.to_string()).or_default().insert(rec.id);
            }
        }
        Ok(store)
    }

    /// At open nothing is in flight: temp dirs, `rm-` dirs, spares and every id no record names are
    /// leftovers. Returns the ids whose directories are there.
    fn remove_crash_leftovers(&self, records: &[(String, SnapshotRec)]) -> Result<HashSet<u64>> {
        let recorded: HashSet<u64> = records.iter().map(|(_, r)| r.id).collect();
        let mut present = HashSet::new();
        for name in self.entries()? {
            // Only the name `dir(id)` makes: not "+7" or "007".
            let id = name.parse::<u64>().ok().filter(|id| id.to_string() == name);
            let stale = match id {
                Some(id) if recorded.contains(&id) => {
                    present.insert(id);
                    false
                }
                Some(_) => true,
                None => {
                    name.starts_with("tmp-")
                        || name.starts_with("rm-")
                        || name.starts_with(super::spares::PREFIX)
                }
            };
            if stale {
                remove_dir_logged(&self.snapshots.join(name));
            }
        }
        Ok(present)
    }

    /// Rebuilds the missing directories of rebuildable records; returns the others, by id.
    fn rebuild_missing(
        &self,
        records: &[(String, SnapshotRec)],
        present: &HashSet<u64>,
    ) -> HashMap<u64, String> {
        let mut lost = HashMap::new();
        for (key, rec) in records.iter().filter(|(_, r)| !present.contains(&r.id)) {
            let dir = self.dir(rec.id);
            if rec.rebuildable && rec.kind() != Kind::Committed {
                match self.rebuild(rec) {
                    Ok(()) => {
                        tracing::warn!(
                            "snapshot {key:?}: directory {} was lost (power loss?); made it \
                             again, empty",
                            dir.display()
                        );
                        continue;
                    }
                    Err(e) => tracing::error!("snapshot {key:?}: rebuild lost directory: {e}"),
                }
            }
            tracing::error!(
                "snapshot {key:?}: directory {} is missing and cannot be rebuilt; its mounts \
                 will fail until it is removed",
                dir.display()
            );
            lost.insert(rec.id, key.clone());
        }
        lost
    }

    /// Makes a rebuildable snapshot's directories again, under a temp name and renamed into
    /// place as create does, so a crash here leaves a leftover rather than half a directory.
    fn rebuild(&self, rec: &SnapshotRec) -> Result<()> {
        let mut temp = self.temp_dir()?;
        for d in &rec.empty_dirs {
            if d.name.is_empty() || d.name.contains('/') || d.name == "." || d.name == ".." {
                return Err(Error::internal(format!(
                    "corrupt record: directory name {:?}",
                    d.name
                )));
            }
            let path = temp.path.join(&d.name);
            std::fs::create_dir(&path)
                .map_err(|e| Error::io(format_args!("create {}", path.display()), e))?;
            // Explicitly, as the umask cut the mode mkdir was given.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(d.mode & 0o7777))
                .map_err(|e| Error::io(format_args!("chmod {}", path.display()), e))?;
            std::os::unix::fs::lchown(&path, Some(d.uid), Some(d.gid))
                .map_err(|e| Error::io(format_args!("chown {}", path.display()), e))?;
        }
        self.rename_into_place(&temp.path, &self.dir(rec.id))?;
        temp.disarm();
        Ok(())
    }
}

/// A new database gets the current version; a schema 1 one loses its children index (now in
/// memory; see records.rs).
fn check_schema(db: &sled::Db, meta: &Path) -> Result<()> {
    let current = SCHEMA_VERSION.to_be_bytes();
    match db.get(VERSION_KEY)? {
        Some(v) if v.as_ref() == current => return Ok(()),
        None => {
            db.insert(VERSION_KEY, &current)?;
        }
        Some(v) if v.as_ref() == 1u32.to_be_bytes() => {
            let mut batch = sled::Batch::default();
            for kv in db.scan_prefix(V1_CHILD_PREFIX) {
                batch.remove(kv?.0);
            }
            batch.insert(VERSION_KEY, &current);
            db.apply_batch(batch)?;
        }
        Some(v) => {
            return Err(Error::internal(format!(
                "snapshot metadata at {}: unknown schema version {v:?}",
                meta.display()
            )))
        }
    }
    db.flush()?;
    Ok(())
}
