//! Snapshot directories: building under a temp name, renaming into place, removing orphans.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::{lock, Store};
use crate::{Error, Result};

impl Store {
    /// Removes every directory under `snapshots/` that no record names and no prepare is
    /// building. Orphans are renamed aside under the lock and deleted after it.
    pub fn cleanup(&self) -> Result<()> {
        let doomed = {
            let _w = lock(&self.wlock);
            let live: HashSet<String> = self
                .records()?
                .into_iter()
                .map(|(_, r)| r.id.to_string())
                .collect();
            let inflight = lock(&self.inflight).clone();
            let mut doomed = Vec::new();
            for name in self.entries()? {
                if live.contains(&name) || inflight.contains(&name) {
                    continue;
                }
                let from = self.snapshots.join(&name);
                if name.starts_with("rm-") {
                    doomed.push(from);
                    continue;
                }
                let to = self.snapshots.join(format!("rm-{name}"));
                match std::fs::rename(&from, &to) {
                    Ok(()) => doomed.push(to),
                    Err(e) => tracing::warn!("cleanup: rename {}: {e}", from.display()),
                }
            }
            doomed
        };
        for dir in doomed {
            remove_dir_logged(&dir);
        }
        Ok(())
    }

    /// At open nothing is in flight: temp dirs and ids at or past the counter are leftovers.
    pub(super) fn remove_crash_leftovers(&self) -> Result<()> {
        let next = self.next_id()?;
        for name in self.entries()? {
            let stale = name.starts_with("tmp-")
                || name.starts_with("rm-")
                || name.parse::<u64>().is_ok_and(|id| id >= next);
            if stale {
                remove_dir_logged(&self.snapshots.join(name));
            }
        }
        Ok(())
    }

    pub(super) fn entries(&self) -> Result<Vec<String>> {
        let rd = std::fs::read_dir(&self.snapshots)
            .map_err(|e| Error::io(format_args!("read {}", self.snapshots.display()), e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry
                .map_err(|e| Error::io(format_args!("read {}", self.snapshots.display()), e))?;
            if let Ok(name) = entry.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }

    pub(super) fn rename_into_place(&self, from: &Path, to: &Path) -> Result<()> {
        if let Err(e) = std::fs::rename(from, to) {
            // Only an unrecorded leftover (a crash between rename and record) can sit at an id
            // the counter has not handed out yet.
            if !matches!(
                e.raw_os_error(),
                Some(nix::libc::EEXIST | nix::libc::ENOTEMPTY)
            ) {
                return Err(Error::io(format_args!("rename to {}", to.display()), e));
            }
            tracing::warn!("removing unrecorded snapshot directory {}", to.display());
            std::fs::remove_dir_all(to)
                .map_err(|e| Error::io(format_args!("remove {}", to.display()), e))?;
            std::fs::rename(from, to)
                .map_err(|e| Error::io(format_args!("rename to {}", to.display()), e))?;
        }
        // The rename must be on disk before the record that points at it.
        let d = std::fs::File::open(&self.snapshots)
            .map_err(|e| Error::io(format_args!("open {}", self.snapshots.display()), e))?;
        d.sync_all()
            .map_err(|e| Error::io(format_args!("sync {}", self.snapshots.display()), e))
    }

    pub(super) fn temp_dir(&self) -> Result<TempDir<'_>> {
        loop {
            let name = format!("tmp-{}", self.temp_seq.fetch_add(1, Ordering::Relaxed));
            let path = self.snapshots.join(&name);
            lock(&self.inflight).insert(name.clone());
            let guard = TempDir {
                store: self,
                name,
                path,
                armed: false,
            };
            match std::fs::create_dir(&guard.path) {
                Ok(()) => {
                    let mut guard = guard;
                    guard.armed = true;
                    return Ok(guard);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::io(
                        format_args!("create {}", guard.path.display()),
                        e,
                    ))
                }
            }
        }
    }
}

/// A snapshot directory under construction: removed on drop unless it was renamed into place.
pub(super) struct TempDir<'a> {
    store: &'a Store,
    name: String,
    pub(super) path: PathBuf,
    armed: bool,
}

impl TempDir<'_> {
    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempDir<'_> {
    fn drop(&mut self) {
        if self.armed {
            remove_dir_logged(&self.path);
        }
        lock(&self.store.inflight).remove(&self.name);
    }
}

/// Best-effort recursive removal; what is left is an orphan for cleanup.
pub fn remove_dir_logged(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("remove {}: {e} (left for cleanup)", dir.display()),
    }
}
