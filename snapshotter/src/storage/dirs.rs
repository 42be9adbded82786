//! Snapshot directories: building under a temp name, renaming into place, removing orphans.

use std::collections::HashSet;
use std::ffi::{CStr, OsStr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use nix::NixPath;

use super::records::EmptyDir;
use super::{lock, Store};
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

/// What a rebuildable snapshot directory holds: `Some` when it is only empty directories (so
/// they can be made again from the record), `None` when anything else is in it.
pub(super) fn empty_dirs(dir: &Path) -> Result<Option<Vec<EmptyDir>>> {
    let io = |what: &str, path: &Path, e: nix::Error| {
        Error::io(
            format_args!("{what} {}", path.display()),
            std::io::Error::from(e),
        )
    };
    let mut top = open_dir(None, dir)
        .map_err(|e| io("read", dir, e))?
        .into_iter();
    let fd = top.as_raw_fd();
    let mut out = Vec::new();
    for entry in top.by_ref() {
        let entry = entry.map_err(|e| io("read", dir, e))?;
        let name = entry.file_name();
        if is_dot(name) {
            continue;
        }
        let path = dir.join(OsStr::from_bytes(name.to_bytes()));
        let Ok(utf8) = name.to_str() else {
            return Ok(None);
        };
        let st = fstatat(Some(fd), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| io("stat", &path, e))?;
        if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFDIR.bits() {
            return Ok(None);
        }
        let mut inner = open_dir(Some(fd), name)
            .map_err(|e| io("read", &path, e))?
            .into_iter();
        for e in inner.by_ref() {
            if !is_dot(e.map_err(|e| io("read", &path, e))?.file_name()) {
                return Ok(None);
            }
        }
        out.push(EmptyDir {
            name: utf8.to_string(),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
        });
    }
    Ok(Some(out))
}

/// Opens a directory for listing without touching its access time: a fresh directory's first
/// listing would otherwise write its inode (relatime updates an atime not newer than the
/// mtime), a journal entry per directory on the prepare path.
fn open_dir(at: Option<RawFd>, name: &(impl NixPath + ?Sized)) -> nix::Result<Dir> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match Dir::openat(at, name, flags | OFlag::O_NOATIME, Mode::empty()) {
        // O_NOATIME needs ownership or CAP_FOWNER.
        Err(nix::Error::EPERM) => Dir::openat(at, name, flags, Mode::empty()),
        r => r,
    }
}

fn is_dot(name: &CStr) -> bool {
    matches!(name.to_bytes(), b"." | b"..")
}

/// Best-effort recursive removal; what is left is an orphan for cleanup.
pub fn remove_dir_logged(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("remove {}: {e} (left for cleanup)", dir.display()),
    }
}
