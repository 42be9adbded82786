//! What a container reports while it runs: OOM notification from its memory cgroup, for the `events`
//! verb and for the shim (which polls the watcher's descriptor in its own event loop).

use super::Container;
use crate::cgroups::oom::{OomEvents, OomWatcher};
use crate::error::{Error, Result};

impl Container {
    /// A watcher on the container's memory cgroup. Register it before the container can run out of
    /// memory (between create and start) to see every OOM; earlier ones are not reported.
    pub fn oom_watcher(&self) -> Result<OomWatcher> {
        let cg = self
            .state
            .cgroup
            .as_ref()
            .ok_or_else(|| Error::precondition(self.id(), "container has no cgroup"))?;
        OomWatcher::new(cg)
    }

    /// OOM counts as a blocking iterator that ends when the cgroup is removed (v1) or emptied (v2).
    pub fn oom_events(&self) -> Result<OomEvents> {
        Ok(OomEvents::new(self.oom_watcher()?))
    }
}
