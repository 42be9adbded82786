//! Snapshot directories: building under a temp name, renaming into place, removing orphans.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::records::EmptyDir;
use super::{lock, spares, Store};
use crate::{Error, Result};

impl Store {
    /// Removes every directory under `snapshots/` that no record names and no prepare is
    /// building. Orphans are renamed aside under the lock and deleted after it.
    pub fn cleanup(&self) -> Result<()> {
        let doomed = {
            // Nothing is recorded while the lock is held, and a temp dir is in `inflight` before
            // it is made: so whatever the listing shows is in the records or in `inflight`
            // read after it, unless it is an orphan.
            let _w = lock(&self.writer);
            let live: HashSet<String> = self
                .records()?
                .into_iter()
                .map(|(_, r)| r.id.to_string())
                .collect();
            let entries = self.entries()?;
            let inflight = lock(&self.inflight).clone();
            let mut doomed = Vec::new();
            for name in entries {
                if live.contains(&name)
                    || inflight.contains(&name)
                    || name.starts_with(spares::PREFIX)
                {
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
        Ok(())
    }

    /// Puts the renames into `snapshots/` on disk (on ext4 and xfs, with everything made
    /// inside the directories before them): for a snapshot whose directory could not be rebuilt
    /// from its record.
    pub(super) fn sync_snapshots(&self) -> Result<()> {
        let d = std::fs::File::open(&self.snapshots)
            .map_err(|e| Error::io(format_args!("open {}", self.snapshots.display()), e))?;
        d.sync_all()
            .map_err(|e| Error::io(format_args!("sync {}", self.snapshots.display()), e))
    }

    /// Takes charge of a directory made elsewhere (a spare): removed on drop unless renamed
    /// into place.
    pub(super) fn adopt(&self, path: PathBuf) -> TempDir<'_> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        TempDir {
            store: self,
            name,
            path,
            armed: true,
        }
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

/// What a snapshot's `populate` step made, as it declares it: only empty directories (which a
/// record can describe and open can make again, so creating the snapshot needs no directory
/// sync), or data.
pub enum Contents {
    EmptyDirs(Vec<EmptyDir>),
    Data,
}

/// Makes the empty directory `name` under `dir` with `mode` (cut by the umask, as mkdir does);
/// returns its description for the record, read back from the directory so it is what was made.
pub fn make_empty_dir(dir: &Path, name: &str, mode: u32) -> Result<EmptyDir> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let path = dir.join(name);
    std::fs::DirBuilder::new()
        .mode(mode)
        .create(&path)
        .map_err(|e| Error::io(format_args!("create {}", path.display()), e))?;
    let md = std::fs::symlink_metadata(&path)
        .map_err(|e| Error::io(format_args!("stat {}", path.display()), e))?;
    Ok(EmptyDir {
        name: name.to_string(),
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
    })
}

/// Best-effort recursive removal; what is left is an orphan for cleanup.
pub fn remove_dir_logged(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("remove {}: {e} (left for cleanup)", dir.display()),
    }
}
