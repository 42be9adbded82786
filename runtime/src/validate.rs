//! Checks a spec before the runtime touches the system, so a bad bundle fails with a clear error and
//! leaves nothing behind.

use std::collections::HashSet;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::capabilities::CapSets;
use crate::error::{Error, Result};
use crate::namespaces;

pub fn validate(spec: &Spec) -> Result<()> {
    if !spec.version().starts_with("1.") {
        return Err(Error::invalid(format!(
            "unsupported ociVersion {:?}",
            spec.version()
        )));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::invalid("process is required"))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::invalid("process.args must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::invalid(format!(
            "process.cwd {:?} is not an absolute path",
            process.cwd()
        )));
    }
    if let Some(caps) = process.capabilities() {
        CapSets::from_spec(caps)?;
    }
    for rl in process.rlimits().iter().flatten() {
        if rl.soft() > rl.hard() {
            return Err(Error::invalid(format!(
                "rlimit {:?}: soft limit {} exceeds hard limit {}",
                rl.typ(),
                rl.soft(),
                rl.hard()
            )));
        }
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::invalid("linux section is required"))?;
    crate::process::lsm::check(process, linux.mount_label().as_deref())?;
    let plan = namespaces::Plan::from_spec(linux.namespaces().as_deref().unwrap_or_default())?;

    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !plan.is_new(LinuxNamespaceType::Uts)
    {
        return Err(Error::invalid("hostname requires a private uts namespace"));
    }
    if let Some(offsets) = linux.time_offsets().as_ref().filter(|o| !o.is_empty()) {
        if !plan.is_new(LinuxNamespaceType::Time) {
            return Err(Error::invalid(
                "time namespace offsets specified, but no new time namespace is in the config",
            ));
        }
        namespaces::time_offsets(offsets)?;
    }
    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        check_sysctl(key, &plan)?;
    }
    if let Some(s) = linux.seccomp() {
        crate::seccomp::compile(s)?;
    }
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_maps && !plan.is_new(LinuxNamespaceType::User) {
        return Err(Error::invalid("uid/gid mappings need a new user namespace"));
    }
    if plan.is_new(LinuxNamespaceType::User) {
        let maps_zero = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
            m.iter()
                .flatten()
                .any(|e| e.container_id() == 0 && e.size() > 0)
        };
        if !maps_zero(linux.uid_mappings()) || !maps_zero(linux.gid_mappings()) {
            return Err(Error::invalid(
                "a new user namespace needs uid and gid mappings that include container id 0",
            ));
        }
    }

    for m in spec.mounts().iter().flatten() {
        if m.destination().as_os_str().is_empty() {
            return Err(Error::invalid("mount destination must not be empty"));
        }
        if m.typ().as_deref() == Some("cgroup") || m.typ().as_deref() == Some("cgroup2") {
            // Handled by the rootfs module; nothing to check beyond the destination.
            continue;
        }
    }
    let mut seen = HashSet::new();
    for p in linux
        .masked_paths()
        .iter()
        .flatten()
        .chain(linux.readonly_paths().iter().flatten())
    {
        if !p.starts_with('/') {
            return Err(Error::invalid(format!(
                "masked or readonly path {p:?} is not absolute"
            )));
        }
        seen.insert(p);
    }
    for d in linux.devices().iter().flatten() {
        if !d.path().starts_with("/dev/") {
            return Err(Error::invalid(format!(
                "device path {:?} is not under /dev",
                d.path()
            )));
        }
    }
    Ok(())
}

/// Only sysctls that live in a namespace the container owns may be set: anything else would change the
/// host (`kernel.panic`, `vm.*`).
fn check_sysctl(key: &str, plan: &namespaces::Plan) -> Result<()> {
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let ns = if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    };
    match ns {
        Some(ns) if plan.is_private(ns) => Ok(()),
        Some(ns) => Err(Error::invalid(format!(
            "sysctl {key:?} requires a private {} namespace",
            namespaces::name(ns)
        ))),
        None => Err(Error::invalid(format!(
            "sysctl {key:?} is not in a separate kernel namespace"
        ))),
    }
}
