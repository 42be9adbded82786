//! `delete`: remove a stopped (or, forced, a live) container: its processes, cgroups and state.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::Container;
use crate::error::{Error, Result};
use crate::hooks;
use crate::status::ContainerStatus;

impl Container {
    /// Removes the container. Cleanup is best-effort past the first step so a retry can finish it; the
    /// first failure is returned.
    pub fn delete(self, force: bool) -> Result<()> {
        let status = self.status();
        if !status.can_delete() && !force {
            return Err(Error::precondition(
                self.id(),
                format!("cannot delete container that is not stopped: {status}"),
            ));
        }
        if status != ContainerStatus::Stopped {
            if let Some(cg) = &self.state.cgroup {
                if status == ContainerStatus::Paused {
                    let _ = cg.set_frozen(false);
                }
            }
            let _ = self.kill(Signal::SIGKILL, true);
            let _ = self.kill(Signal::SIGKILL, false);
            if !self.wait_stopped(Duration::from_secs(10)) {
                return Err(Error::precondition(
                    self.id(),
                    "init did not exit after SIGKILL",
                ));
            }
        }
        let mut first_err = None;
        if let Some(cg) = &self.state.cgroup {
            // Stray processes (a forked child that outlived init in a shared pid namespace) hold the
            // cgroup busy; kill them before removing it.
            for pid in cg.pids().unwrap_or_default() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
            }
            if let Err(e) = cg.remove() {
                first_err.get_or_insert(e);
            }
        }
        if let Some(hs) = self
            .state
            .config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().clone())
        {
            let mut st = self.state.oci(ContainerStatus::Stopped);
            st.pid = self.state.pid;
            if let Err(e) = hooks::run_all(&hs, &st, "poststop") {
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                first_err.get_or_insert(Error::Io {
                    context: format!("remove state dir {}", self.dir.display()),
                    source: e,
                });
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
