//! Control groups: v1 (one directory per hierarchy) and v2 (one directory in the unified tree). The
//! runtime detects which the host offers: a host whose /sys/fs/cgroup is a cgroup2 mount is v2; a hybrid
//! host (v1 hierarchies plus a controller-less cgroup2 at /sys/fs/cgroup/unified, like this one) is v1.

pub mod ebpf;
pub mod oom;
pub mod stats;
pub mod v1;
pub mod v2;

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A container's cgroups as recorded in its state, so delete and kill need no rediscovery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "version", rename_all = "lowercase")]
pub enum Cgroup {
    V1(v1::Manager),
    V2(v2::Manager),
}

pub fn host_is_v2() -> bool {
    nix::sys::statfs::statfs(CGROUP_ROOT)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// The cgroup path for a container: the spec's `cgroupsPath`, or `/berth-runtime/<id>`. Either way it is
/// taken relative to each hierarchy's root and may not climb out of it.
pub fn container_path(spec_path: Option<&Path>, id: &str) -> Result<PathBuf> {
    let p = match spec_path {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => Path::new("/berth-runtime").join(id),
    };
    if p.to_string_lossy().contains(':') {
        return Err(Error::Unsupported(format!(
            "systemd cgroup path {} is not supported",
            p.display()
        )));
    }
    let rel: PathBuf = p
        .components()
        .filter(|c| !matches!(c, std::path::Component::RootDir))
        .collect();
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
        || rel.as_os_str().is_empty()
    {
        return Err(Error::invalid(format!(
            "cgroupsPath {} must name a cgroup below the hierarchy root",
            p.display()
        )));
    }
    Ok(rel)
}

impl Cgroup {
    /// Creates the container's cgroup directories and applies the resources.
    pub fn create(rel: &Path, resources: Option<&LinuxResources>) -> Result<Cgroup> {
        let cg = Cgroup::locate(rel)?;
        cg.setup(resources)?;
        Ok(cg)
    }

    /// Where the container's cgroups are on this host, without creating anything.
    pub fn locate(rel: &Path) -> Result<Cgroup> {
        Ok(if host_is_v2() {
            Cgroup::V2(v2::Manager::new(Path::new(CGROUP_ROOT).join(rel)))
        } else {
            Cgroup::V1(v1::Manager::discover(rel)?)
        })
    }

    /// Creates the directories and applies the resources; on failure removes what it created.
    pub fn setup(&self, resources: Option<&LinuxResources>) -> Result<()> {
        self.mkdirs()?;
        if let Some(r) = resources {
            if let Err(e) = self.apply(r) {
                let _ = self.remove();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Creates the directories (seeding a new cpuset's cpus and mems from its parent, so it can take
    /// tasks); no limits yet.
    pub fn mkdirs(&self) -> Result<()> {
        match self {
            Cgroup::V1(m) => m.mkdirs(),
            Cgroup::V2(m) => m.mkdirs(),
        }
    }

    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        match self {
            Cgroup::V1(m) => m.apply(r),
            Cgroup::V2(m) => m.apply(r),
        }
    }

    pub fn add(&self, pid: i32) -> Result<()> {
        match self {
            Cgroup::V1(m) => m.add(pid),
            Cgroup::V2(m) => m.add(pid),
        }
    }

    /// The files through which a single-threaded process moves itself into these cgroups with
    /// `enter_self`; `None` on v2, where the runtime moves it with `add`.
    pub fn self_entry(&self) -> Option<Vec<PathBuf>> {
        match self {
            Cgroup::V1(m) => Some(m.self_entry()),
            Cgroup::V2(_) => None,
        }
    }

    pub fn pids(&self) -> Result<Vec<i32>> {
        match self {
            Cgroup::V1(m) => m.pids(),
            Cgroup::V2(m) => m.pids(),
        }
    }

    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        match self {
            Cgroup::V1(m) => m.set_frozen(frozen),
            Cgroup::V2(m) => m.set_frozen(frozen),
        }
    }

    pub fn is_frozen(&self) -> bool {
        match self {
            Cgroup::V1(m) => m.is_frozen(),
            Cgroup::V2(m) => m.is_frozen(),
        }
    }

    /// Usage counters in the shape of runc's stats (cpu, memory, pids, blkio, hugetlb).
    pub fn stats(&self) -> Result<serde_json::Value> {
        match self {
            Cgroup::V1(m) => Ok(m.stats()),
            Cgroup::V2(m) => Ok(m.stats()),
        }
    }

    /// Removes the directories; missing ones are not an error, so delete can be retried.
    pub fn remove(&self) -> Result<()> {
        match self {
            Cgroup::V1(m) => m.remove(),
            Cgroup::V2(m) => m.remove(),
        }
    }

    /// The container's own directory in each hierarchy, named for a `cgroup` mount inside the container.
    pub fn mount_dirs(&self) -> Vec<(String, PathBuf)> {
        match self {
            Cgroup::V1(m) => m.mount_dirs(),
            Cgroup::V2(m) => vec![(String::new(), m.dir.clone())],
        }
    }
}

/// Moves the calling thread, which must be its process's only one, into the cgroups whose `tasks`
/// files these are (`Cgroup::self_entry`). On cgroup v1 that is much cheaper than `add`: writing
/// another process's pid into cgroup.procs takes the kernel's global threadgroup lock for writing,
/// which waits for an RCU grace period unless another move happened within the last one (5-15 ms on
/// a quiet host here, for 8 hierarchies); a thread writing "0" (itself) into `tasks` takes no such
/// lock (0.4 ms for the 8).
pub fn enter_self(tasks_files: &[PathBuf]) -> Result<()> {
    for f in tasks_files {
        std::fs::write(f, "0").ctx(|| format!("join cgroup {}", f.display()))?;
    }
    Ok(())
}

pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, value).ctx(|| format!("write {value:?} to {}", path.display()))
}

pub(crate) fn read_pids(file: &Path) -> Result<Vec<i32>> {
    match std::fs::read_to_string(file) {
        Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).ctx(|| format!("read {}", file.display())),
    }
}

/// A number from a one-value cgroup file; missing or unparsable files read as 0 (a controller the
/// host lacks reports nothing rather than failing the whole stats call).
pub(crate) fn read_u64(dir: &Path, file: &str) -> u64 {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat) as a JSON object.
pub(crate) fn read_flat_keyed(
    dir: &Path,
    file: &str,
) -> serde_json::Map<String, serde_json::Value> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((
                k.to_string(),
                serde_json::Value::from(v.trim().parse::<u64>().ok()?),
            ))
        })
        .collect()
}

/// rmdir that tolerates a directory already gone and retries briefly while the kernel finishes
/// releasing exited tasks (EBUSY).
pub(crate) fn rmdir(dir: &Path) -> Result<()> {
    for attempt in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 49 => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => return Err(e).ctx(|| format!("remove cgroup {}", dir.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_stay_below_the_root() {
        assert_eq!(
            container_path(None, "web").expect("default"),
            PathBuf::from("berth-runtime/web")
        );
        assert_eq!(
            container_path(Some(Path::new("/a/b")), "x").expect("abs"),
            PathBuf::from("a/b")
        );
        assert!(container_path(Some(Path::new("/a/../../etc")), "x").is_err());
        assert!(container_path(Some(Path::new("/")), "x").is_err());
        assert!(container_path(Some(Path::new("system.slice:berth:x")), "x").is_err());
    }
}
