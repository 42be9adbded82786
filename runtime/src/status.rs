//! The container lifecycle of the OCI runtime spec, with the transitions as explicit predicates.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// The runtime is still building the container; the init process is not yet waiting for `start`.
    Creating,
    /// The init process waits on the exec fifo for `start`.
    Created,
    /// The user's process runs.
    Running,
    /// Every process is frozen by the freezer cgroup.
    Paused,
    /// The init process has exited (or was never seen alive).
    Stopped,
}

impl ContainerStatus {
    pub fn can_start(self) -> bool {
        self == ContainerStatus::Created
    }

    /// runc lets `kill` signal a created container too: that is how a never-started container is torn down.
    pub fn can_kill(self) -> bool {
        matches!(
            self,
            ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused
        )
    }

    /// A created container may be deleted without `--force`: its init has not run user code yet, so runc
    /// kills it as part of the delete.
    pub fn can_delete(self) -> bool {
        matches!(self, ContainerStatus::Stopped | ContainerStatus::Created)
    }

    pub fn can_pause(self) -> bool {
        self == ContainerStatus::Running
    }

    pub fn can_resume(self) -> bool {
        self == ContainerStatus::Paused
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Creating => "creating",
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ContainerStatus::*;

    #[test]
    fn transitions_follow_the_spec() {
        assert!(Created.can_start());
        for s in [Creating, Running, Paused, Stopped] {
            assert!(!s.can_start(), "{s} must not start");
        }
        assert!(Stopped.can_delete() && Created.can_delete());
        assert!(!Running.can_delete() && !Paused.can_delete() && !Creating.can_delete());
        assert!(!Stopped.can_kill() && !Creating.can_kill());
        assert!(Running.can_pause() && !Paused.can_pause());
        assert!(Paused.can_resume() && !Running.can_resume());
        assert_eq!(
            serde_json::to_string(&Running).expect("serialize"),
            "\"running\""
        );
    }
}
