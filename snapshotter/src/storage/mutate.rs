//! The mutations: each checks under the writer lock, makes one atomic sled write (a single key
//! where it can) and flushes.

use std::path::Path;

use super::dirs::Contents;
use super::make_empty_dir;
use super::records::*;
use super::spares::DirSpec;
use super::{lock, remove_dir_logged, Snapshot, Store};
use crate::{Error, Info, Kind, Labels, Result, Usage};

impl Store {
    /// Creates an active snapshot or a view. `populate` fills the new snapshot's directory
    /// (still under a temp name) given the parents' ids, nearest first, and says what it made;
    /// only once it succeeded is the directory renamed to its id and the record written. What
    /// it made decides whether the rename is synced (see the module doc).
    pub fn create(
        &self,
        kind: Kind,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
        populate: impl FnOnce(&Path, &[u64]) -> Result<Contents>,
    ) -> Result<Snapshot> {
        self.create_in(kind, key, parent, labels, None, |dir, parents, _| {
            populate(dir, parents)
        })
    }

    /// Creates an active snapshot or a view that is only the empty directories `dirs`, made
    /// with their modes; the first (the snapshot's root, overlay's upper `fs`) is then given
    /// the owner `owner` returns for the parents' ids, when it returns one. A spare made ahead
    /// of time is used when there is one for exactly these directories (see spares.rs).
    pub fn create_empty(
        &self,
        kind: Kind,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
        dirs: &[DirSpec],
        owner: impl FnOnce(&[u64]) -> Result<Option<(u32, u32)>>,
    ) -> Result<Snapshot> {
        self.create_in(
            kind,
            key,
            parent,
            labels,
            Some(dirs),
            |dir, parents, spare| {
                let mut made = match spare {
                    Some(made) => made,
                    None => dirs
                        .iter()
                        .map(|d| make_empty_dir(dir, d.name, d.mode))
                        .collect::<Result<Vec<_>>>()?,
                };
                if let (Some((uid, gid)), Some(root)) = (owner(parents)?, made.first_mut()) {
                    if (root.uid, root.gid) != (uid, gid) {
                        let path = dir.join(&root.name);
                        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                            .map_err(|e| Error::io(format_args!("chown {}", path.display()), e))?;
                        (root.uid, root.gid) = (uid, gid);
                    }
                }
                Ok(Contents::EmptyDirs(made))
            },
        )
    }

    /// `create` and `create_empty`: `populate` gets the spare's directories when `spare_for`
    /// named a template the pool had one ready for.
    fn create_in(
        &self,
        kind: Kind,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
        spare_for: Option<&[DirSpec]>,
        populate: impl FnOnce(&Path, &[u64], Option<Vec<EmptyDir>>) -> Result<Contents>,
    ) -> Result<Snapshot> {
        if key.is_empty() {
            return Err(Error::invalid("snapshot key must not be empty"));
        }
        if kind == Kind::Committed {
            return Err(Error::invalid(format!(
                "snapshot {key:?}: only active snapshots and views can be created"
            )));
        }
        let parent = parent.filter(|p| !p.is_empty());
        // Checked before the (possibly long) populate so a taken key fails fast; checked again
        // under the lock, which is what decides.
        if self.db.contains_key(snapshot_key(key))? {
            return Err(Error::exists(format!("snapshot {key:?}: already exists")));
        }
        let (parent_id, parent_ids) = match parent {
            Some(p) => {
                let rec = self.parent_rec(p)?;
                let mut ids = vec![rec.id];
                ids.extend(self.parent_ids(p, &rec)?);
                (Some(rec.id), ids)
            }
            None => (None, Vec::new()),
        };
        self.check_not_lost(key, None, &parent_ids)?;

        let spare = spare_for.and_then(|d| self.spares.as_ref()?.take(d));
        let (mut temp, spare) = match spare {
            Some((path, made)) => (self.adopt(path), Some(made)),
            None => (self.temp_dir()?, None),
        };
        let empty = match populate(&temp.path, &parent_ids, spare)
            .map_err(|e| e.context(format_args!("snapshot {key:?}")))?
        {
            Contents::EmptyDirs(dirs) => Some(dirs),
            Contents::Data => None,
        };

        let mut w = lock(&self.writer);
        if self.db.contains_key(snapshot_key(key))? {
            return Err(Error::exists(format!("snapshot {key:?}: already exists")));
        }
        if let Some(p) = parent {
            if Some(self.parent_rec(p)?.id) != parent_id {
                return Err(Error::precondition(format!(
                    "parent snapshot {p:?}: replaced while snapshot {key:?} was prepared"
                )));
            }
        }
        let id = self.take_id(&mut w)?;
        let dir = self.dir(id);
        self.rename_into_place(&temp.path, &dir)?;
        temp.disarm();
        if empty.is_none() {
            // It holds data no record could rebuild: the rename goes on disk before the record.
            if let Err(e) = self.sync_snapshots() {
                remove_dir_logged(&dir);
                return Err(e);
            }
        }

        let now = now_nanos();
        let rec = SnapshotRec {
            id,
            kind: kind_to_i32(kind),
            parent: parent.unwrap_or_default().to_string(),
            labels,
            created: now,
            updated: now,
            size: 0,
            inodes: 0,
            rebuildable: empty.is_some(),
            empty_dirs: empty.unwrap_or_default(),
        };
        if let Err(e) = self.put(key, &rec) {
            remove_dir_logged(&dir);
            return Err(e);
        }
        if let Some(p) = parent {
            w.children.entry(p.to_string()).or_default().insert(id);
        }
        Ok(Snapshot {
            id,
            kind,
            parent_ids,
        })
    }

    /// Turns active `key` into committed `name`, keeping its id and directory. `measure` gives
    /// the usage to store; it runs before the lock is taken.
    pub fn commit(
        &self,
        name: &str,
        key: &str,
        labels: Labels,
        measure: impl FnOnce(&Snapshot) -> Result<Usage>,
    ) -> Result<Snapshot> {
        if name.is_empty() {
            return Err(Error::invalid("snapshot name must not be empty"));
        }
        let check = |rec: &SnapshotRec| -> Result<()> {
            if self.db.contains_key(snapshot_key(name))? {
                return Err(Error::exists(format!("snapshot {name:?}: already exists")));
            }
            if rec.kind() != Kind::Active {
                return Err(Error::precondition(format!(
                    "snapshot {key:?}: not active, only active snapshots can be committed"
                )));
            }
            Ok(())
        };
        let rec = self.get(key)?;
        check(&rec)?;
        let snap = Snapshot {
            id: rec.id,
            kind: Kind::Committed,
            parent_ids: self.parent_ids(key, &rec)?,
        };
        let usage = measure(&snap)?;
        if rec.rebuildable {
            // From now on it holds data and may be built on: its directory must not vanish.
            self.sync_snapshots()?;
        }

        let _w = lock(&self.writer);
        let rec = self.get(key)?;
        check(&rec)?;
        if rec.id != snap.id {
            return Err(Error::precondition(format!(
                "snapshot {key:?}: replaced while it was committed"
            )));
        }
        let now = now_nanos();
        let committed = SnapshotRec {
            kind: kind_to_i32(Kind::Committed),
            labels,
            created: now,
            updated: now,
            size: usage.size,
            inodes: usage.inodes,
            rebuildable: false,
            empty_dirs: Vec::new(),
            ..rec
        };
        let mut batch = sled::Batch::default();
        batch.remove(snapshot_key(key));
        batch.insert(
            snapshot_key(name),
            prost::Message::encode_to_vec(&committed),
        );
        self.apply(batch)?;
        Ok(snap)
    }

    /// Deletes the record only: the directory, no longer named by any record, goes with the
    /// next [`Store::cleanup`] (or open), as containerd's collector removes snapshot
    /// directories after the record. So the caller is answered at once, however big the layer,
    /// and its id is never handed out again.
    pub fn remove(&self, key: &str) -> Result<Snapshot> {
        let rec = {
            let mut w = lock(&self.writer);
            let rec = self.get(key)?;
            if w.children.get(key).is_some_and(|c| !c.is_empty()) {
                return Err(Error::precondition(format!(
                    "snapshot {key:?}: cannot remove snapshot with child"
                )));
            }
            self.db.remove(snapshot_key(key))?;
            self.db.flush()?;
            w.children.remove(key);
            if let Some(p) = rec.parent() {
                if let Some(siblings) = w.children.get_mut(p) {
                    siblings.remove(&rec.id);
                    if siblings.is_empty() {
                        w.children.remove(p);
                    }
                }
            }
            rec
        };
        Ok(Snapshot {
            id: rec.id,
            kind: rec.kind(),
            parent_ids: Vec::new(),
        })
    }

    /// Changes labels only: `labels` replaces them all, `labels.<k>` sets or (when absent from
    /// `labels`) deletes one; no paths replaces them all.
    pub fn update(&self, key: &str, labels: Labels, paths: &[String]) -> Result<Info> {
        let _w = lock(&self.writer);
        let mut rec = self.get(key)?;
        if paths.is_empty() {
            rec.labels = labels;
        } else {
            let mut next = rec.labels.clone();
            for path in paths {
                if path == "labels" {
                    next = labels.clone();
                } else if let Some(k) = path.strip_prefix("labels.") {
                    match labels.get(k) {
                        Some(v) => next.insert(k.to_string(), v.clone()),
                        None => next.remove(k),
                    };
                } else {
                    return Err(Error::invalid(format!(
                        "snapshot {key:?}: cannot update field {path:?}"
                    )));
                }
            }
            rec.labels = next;
        }
        rec.updated = now_nanos();
        self.put(key, &rec)?;
        Ok(rec.info(key))
    }
}
