//! A container as the runtime sees it between commands: its state directory under the root, its
//! recorded state, and the live status derived from the init process.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod kill;
pub mod start;
pub mod update;

use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};
use crate::process::procfs;
use crate::state::{OciState, State, EXEC_FIFO};
use crate::status::ContainerStatus;
use crate::util::validate_id;

pub use create::{create, CreateOptions};
pub use exec::ExecOptions;

/// The default state root, as runc's is /run/runc.
pub const DEFAULT_ROOT: &str = "/run/berth-runtime";

#[derive(Debug)]
pub struct Container {
    /// `<root>/<id>`: state.json and, until start, exec.fifo.
    pub dir: PathBuf,
    pub state: State,
}

impl Container {
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = root.join(id);
        if !dir.join(crate::state::STATE_FILE).exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        let state = State::load(&dir)?;
        Ok(Container { dir, state })
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    pub fn init_alive(&self) -> bool {
        procfs::is_alive(self.state.pid, self.state.init_start_time)
    }

    /// The live status: stopped once init is gone, created while init still waits on the fifo, paused
    /// while frozen, running otherwise.
    pub fn status(&self) -> ContainerStatus {
        if !self.init_alive() {
            return ContainerStatus::Stopped;
        }
        if self.dir.join(EXEC_FIFO).exists() {
            return ContainerStatus::Created;
        }
        if self.state.cgroup.as_ref().is_some_and(|c| c.is_frozen()) {
            return ContainerStatus::Paused;
        }
        ContainerStatus::Running
    }

    pub fn oci_state(&self) -> OciState {
        self.state.oci(self.status())
    }

    pub fn save(&self) -> Result<()> {
        self.state.save(&self.dir)
    }

    /// Every pid in the container's cgroup, or just init when it has no cgroup.
    pub fn pids(&self) -> Result<Vec<i32>> {
        match &self.state.cgroup {
            Some(cg) => cg.pids(),
            None if self.init_alive() => Ok(vec![self.state.pid]),
            None => Ok(Vec::new()),
        }
    }

    pub fn pause(&mut self) -> Result<()> {
        let status = self.status();
        if !status.can_pause() {
            return Err(Error::precondition(
                self.id(),
                format!("cannot pause a {status} container"),
            ));
        }
        self.cgroup()?.set_frozen(true)?;
        self.state.status = ContainerStatus::Paused;
        self.save()
    }

    pub fn resume(&mut self) -> Result<()> {
        let status = self.status();
        if !status.can_resume() {
            return Err(Error::precondition(
                self.id(),
                format!("cannot resume a {status} container"),
            ));
        }
        self.cgroup()?.set_frozen(false)?;
        self.state.status = ContainerStatus::Running;
        self.save()
    }

    fn cgroup(&self) -> Result<&crate::cgroups::Cgroup> {
        self.state
            .cgroup
            .as_ref()
            .ok_or_else(|| Error::precondition(self.id(), "container has no cgroup"))
    }
}

/// Removes the directory of a container whose create died before writing its state (the runtime was
/// killed mid-way), so the id can be used again. Returns whether there was one.
pub fn remove_stale(root: &Path, id: &str) -> Result<bool> {
    validate_id(id)?;
    let dir = root.join(id);
    if !dir.is_dir() || dir.join(crate::state::STATE_FILE).exists() {
        return Ok(false);
    }
    std::fs::remove_dir_all(&dir).ctx(|| format!("remove stale state dir {}", dir.display()))?;
    Ok(true)
}

/// Every container under `root`, sorted by id; unreadable entries are skipped.
pub fn list(root: &Path) -> Result<Vec<Container>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| format!("read state root {}", root.display())),
    };
    let mut out: Vec<Container> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|id| Container::load(root, &id).ok())
        .collect();
    out.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(out)
}
