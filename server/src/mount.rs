//! Mounting containerd mount descriptions (what `Snapshots.Mounts` returns) on a temporary
//! directory, for the diff service to read or write a snapshot through them.

use std::path::{Path, PathBuf};

use berth_snapshotter::mount::{mount_all, unmount_all};
use berth_snapshotter::Mount;

use crate::error::{Error, Result};

/// Mounts on a fresh directory under `parent`; unmounted and removed on drop.
pub struct TempMount {
    dir: PathBuf,
    mounted: bool,
}

impl TempMount {
    pub fn new(parent: &Path, mounts: &[Mount]) -> Result<TempMount> {
        std::fs::create_dir_all(parent)?;
        let dir = tempdir_in(parent)?;
        if let Err(e) = mount_all(mounts, &dir) {
            let _ = std::fs::remove_dir(&dir);
            return Err(e.into());
        }
        Ok(TempMount {
            dir,
            mounted: !mounts.is_empty(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = unmount_all(&self.dir) {
                tracing::warn!("unmount {}: {e}", self.dir.display());
            }
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            tracing::warn!("remove {}: {e}", self.dir.display());
        }
    }
}

fn tempdir_in(parent: &Path) -> Result<PathBuf> {
    for _ in 0..16 {
        let p = parent.join(format!("m-{}", uuid::Uuid::new_v4().simple()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::internal(format!(
        "no free temp dir name under {}",
        parent.display()
    )))
}
