//! Mounting containerd mount descriptions (what `Snapshots.Mounts` returns) on a temporary
//! directory, for the diff service to read or write a snapshot through them.

use std::path::{Path, PathBuf};

use berth_snapshotter::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};

/// Splits `mount(8)`-style options into flags and the data string passed to the filesystem.
fn parse_options(options: &[String]) -> (MsFlags, bool, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    let mut remount_ro = false;
    for o in options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "suid" | "dev" | "exec" | "async" | "defaults" => {}
            other => data.push(other.to_string()),
        }
    }
    if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
        // A bind mount ignores MS_RDONLY on the first call; it takes a remount.
        remount_ro = true;
    }
    (flags, remount_ro, data.join(","))
}

fn mount_one(m: &Mount, target: &Path) -> Result<()> {
    let (flags, remount_ro, data) = parse_options(&m.options);
    let fstype = if flags.contains(MsFlags::MS_BIND) {
        None
    } else {
        Some(m.kind.as_str())
    };
    let data = (!data.is_empty()).then_some(data.as_str());
    mount(Some(m.source.as_str()), target, fstype, flags, data).map_err(|e| {
        Error::internal(format!(
            "mount {} ({}) on {}: {e}",
            m.source,
            m.kind,
            target.display()
        ))
    })?;
    if remount_ro {
        let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(e) = mount(None::<&str>, target, None::<&str>, ro, None::<&str>) {
            let _ = umount2(target, MntFlags::MNT_DETACH);
            return Err(Error::internal(format!(
                "remount {} read-only: {e}",
                target.display()
            )));
        }
    }
    Ok(())
}

/// Mounts on a fresh directory under `parent`; unmounted and removed on drop.
pub struct TempMount {
    dir: PathBuf,
    mounted: usize,
}

impl TempMount {
    pub fn new(parent: &Path, mounts: &[Mount]) -> Result<TempMount> {
        std::fs::create_dir_all(parent)?;
        let dir = tempdir_in(parent)?;
        let mut tm = TempMount { dir, mounted: 0 };
        for m in mounts {
            mount_one(m, &tm.dir)?;
            tm.mounted += 1;
        }
        Ok(tm)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        for _ in 0..self.mounted {
            if let Err(e) = umount2(&self.dir, MntFlags::empty()) {
                tracing::warn!("unmount {}: {e}; detaching", self.dir.display());
                let _ = umount2(&self.dir, MntFlags::MNT_DETACH);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let o: Vec<String> = ["ro", "rbind", "lowerdir=/a:/b", "index=off"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, remount, data) = parse_options(&o);
        assert!(flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert!(remount);
        assert_eq!(data, "lowerdir=/a:/b,index=off");
    }
}
