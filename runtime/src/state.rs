//! A container's persisted state (`<root>/<id>/state.json`) and the OCI state document runc prints.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::status::ContainerStatus;

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// The OCI runtime-spec version this runtime implements, reported in state and hook input.
pub const OCI_VERSION: &str = "1.2.0";

/// Everything the runtime needs to find and tear down a container after the create process exited.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// The init process's start time (field 22 of /proc/PID/stat), so a recycled pid is not mistaken for
    /// the container.
    pub init_start_time: u64,
    /// The status recorded at the last transition; the live status is derived from the process and the
    /// exec fifo (see `Container::status`).
    pub status: ContainerStatus,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub owner: String,
    pub cgroup: Option<Cgroup>,
    pub config: Spec,
}

/// The state document as `runc state` prints it and hooks receive it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: ContainerStatus,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl State {
    pub fn load(dir: &Path) -> Result<State> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read(&path).ctx(|| format!("read {}", path.display()))?;
        serde_json::from_slice(&text).map_err(|e| Error::CorruptState {
            path,
            msg: e.to_string(),
        })
    }

    /// Replaces the state file atomically: `stage`, then `commit_staged`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.stage(dir)?;
        Self::commit_staged(dir)
    }

    /// The first half of `save`: writes the state beside the state file, for `commit_staged` to put
    /// in place. Lets create do the serialization while init is still busy.
    pub(crate) fn stage(&self, dir: &Path) -> Result<()> {
        let data = serde_json::to_vec(self).expect("state serializes: plain data");
        let tmp = dir.join(STATE_FILE).with_extension("tmp");
        std::fs::write(&tmp, data).ctx(|| format!("write {}", tmp.display()))
    }

    /// The second half of `save`: the staged state becomes the state file.
    pub(crate) fn commit_staged(dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        std::fs::rename(path.with_extension("tmp"), &path)
            .ctx(|| format!("rename {} into place", path.display()))
    }

    pub fn oci(&self, status: ContainerStatus) -> OciState {
        OciState {
            oci_version: OCI_VERSION.into(),
            id: self.id.clone(),
            // runc reports pid 0 once the container stopped.
            pid: if status == ContainerStatus::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.config.annotations().clone().unwrap_or_default(),
        }
    }
}
