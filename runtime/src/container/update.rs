//! `update` and stats: the running container's cgroups.

use oci_spec::runtime::LinuxResources;

use super::Container;
use crate::error::{Error, Result};
use crate::status::ContainerStatus;

impl Container {
    /// Applies new limits and records them in the state, so a later read of the config agrees.
    pub fn update(&mut self, r: &LinuxResources) -> Result<()> {
        let status = self.status();
        if status == ContainerStatus::Stopped {
            return Err(Error::precondition(
                self.id(),
                "cannot update a stopped container",
            ));
        }
        let cg = self
            .state
            .cgroup
            .as_ref()
            .ok_or_else(|| Error::precondition(self.id(), "container has no cgroup"))?;
        cg.apply(r)?;
        if let Some(linux) = self.state.config.linux_mut() {
            linux.set_resources(Some(r.clone()));
        }
        self.save()
    }

    /// Resource usage in the shape of runc's stats event data.
    pub fn stats(&self) -> Result<serde_json::Value> {
        match &self.state.cgroup {
            Some(cg) => cg.stats(),
            None => Ok(serde_json::json!({})),
        }
    }
}
