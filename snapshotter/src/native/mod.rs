//! The native snapshotter (clients call it `native`): every active snapshot and view is a full
//! copy of its parent's tree, mounted with a bind mount. It works on any filesystem, which is
//! why the daemon falls back to it where overlay cannot mount. Committing keeps the copy.

mod copy;

pub use copy::copy_tree;

use std::path::{Path, PathBuf};

use crate::storage::{make_empty_dir, usage, Contents, Store};
use crate::{Error, Info, Kind, Labels, Mount, Result, Snapshotter, Usage};

pub const NAME: &str = "native";

pub struct Native {
    store: Store,
}

impl Native {
    pub fn open(root: &Path) -> Result<Native> {
        std::fs::create_dir_all(root)
            .map_err(|e| Error::io(format_args!("create {}", root.display()), e))?;
        // Mount sources are used by other processes: they must be absolute.
        let root = std::fs::canonicalize(root)
            .map_err(|e| Error::io(format_args!("resolve {}", root.display()), e))?;
        Ok(Native {
            store: Store::open(&root)?,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn fs(&self, id: u64) -> PathBuf {
        self.store.dir(id).join("fs")
    }

    fn create(
        &self,
        kind: Kind,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
    ) -> Result<Vec<Mount>> {
        let snap = self
            .store
            .create(kind, key, parent, labels, |dir, parents| {
                match parents.first() {
                    Some(p) => {
                        copy_tree(&self.fs(*p), &dir.join("fs"))?;
                        Ok(Contents::Data)
                    }
                    None => Ok(Contents::EmptyDirs(vec![make_empty_dir(dir, "fs", 0o755)?])),
                }
            })?;
        Ok(self.bind(snap.id, kind))
    }

    fn bind(&self, id: u64, kind: Kind) -> Vec<Mount> {
        let ro = if kind == Kind::View { "ro" } else { "rw" };
        vec![Mount {
            kind: "bind".into(),
            source: self.fs(id).display().to_string(),
            target: String::new(),
            options: vec![ro.into(), "rbind".into()],
        }]
    }
}

impl Snapshotter for Native {
    fn name(&self) -> &str {
        NAME
    }

    fn stat(&self, key: &str) -> Result<Info> {
        self.store.stat(key)
    }

    fn update(&self, key: &str, labels: Labels, paths: &[String]) -> Result<Info> {
        self.store.update(key, labels, paths)
    }

    fn usage(&self, key: &str) -> Result<Usage> {
        self.store.usage(key)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let rec = self.store.get(key)?;
        if rec.kind() == Kind::Committed {
            return Err(Error::precondition(format!(
                "snapshot {key:?}: committed, only active snapshots and views have mounts"
            )));
        }
        Ok(self.bind(rec.id, rec.kind()))
    }

    fn prepare(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>> {
        self.create(Kind::Active, key, parent, labels)
    }

    fn view(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>> {
        self.create(Kind::View, key, parent, labels)
    }

    fn commit(&self, name: &str, key: &str, labels: Labels) -> Result<()> {
        self.store
            .commit(name, key, labels, |s| usage::disk_usage(&self.fs(s.id)))
            .map(|_| ())
    }

    fn remove(&self, key: &str) -> Result<()> {
        self.store.remove(key).map(|_| ())
    }

    fn list(&self) -> Result<Vec<Info>> {
        self.store.list()
    }

    fn cleanup(&self) -> Result<()> {
        self.store.cleanup()
    }
}
