//! Which kernel namespaces a container gets: new ones (unshare) or existing ones joined by path (setns).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::error::{Context, Error, Result};

pub fn name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // nix 0.29 has no constant for CLONE_NEWTIME; the value is the kernel's.
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(0x80),
    }
}

/// The namespace plan of one container.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// Namespaces to create.
    pub new: Vec<LinuxNamespaceType>,
    /// Namespaces to join, with the path of an existing one (`/proc/PID/ns/net`, a bind-mounted nsfs).
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl Plan {
    pub fn from_spec(namespaces: &[LinuxNamespace]) -> Result<Plan> {
        let mut plan = Plan::default();
        for ns in namespaces {
            let t = ns.typ();
            if plan.is_private(t) {
                return Err(Error::invalid(format!(
                    "{} namespace listed more than once",
                    name(t)
                )));
            }
            if t == LinuxNamespaceType::Time
                && !std::path::Path::new("/proc/self/timens_offsets").exists()
            {
                return Err(Error::Unsupported(
                    "time namespaces aren't enabled in the kernel".into(),
                ));
            }
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    if t == LinuxNamespaceType::Mount {
                        return Err(Error::Unsupported(
                            "joining an existing mount namespace is not supported".into(),
                        ));
                    }
                    if !p.is_absolute() {
                        return Err(Error::invalid(format!(
                            "{} namespace path {p:?} is not absolute",
                            name(t)
                        )));
                    }
                    plan.join.push((t, p.clone()));
                }
                _ => plan.new.push(t),
            }
        }
        if !plan.is_new(LinuxNamespaceType::Mount) {
            return Err(Error::invalid(
                "a new mount namespace is required to set up the rootfs",
            ));
        }
        Ok(plan)
    }

    pub fn is_new(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(&t)
    }

    /// New or joined: either way not the runtime's own.
    pub fn is_private(&self, t: LinuxNamespaceType) -> bool {
        self.is_new(t) || self.join.iter().any(|(j, _)| *j == t)
    }

    /// The container runs in a user namespace of its own (new or joined), which changes how init is
    /// started (see `process::stage1`).
    pub fn has_user(&self) -> bool {
        self.is_private(LinuxNamespaceType::User)
    }

    /// Flags for the `unshare` the init process does itself: everything new except pid (the pid namespace
    /// is entered through fork), user (entered first, by stage 1), cgroup (unshared only after the
    /// parent placed init in its cgroups) and time (see [`enter_new_time`]).
    pub fn unshare_flags(&self) -> CloneFlags {
        self.new
            .iter()
            .filter(|t| {
                !matches!(
                    t,
                    LinuxNamespaceType::Pid
                        | LinuxNamespaceType::Cgroup
                        | LinuxNamespaceType::User
                        | LinuxNamespaceType::Time
                )
            })
            .fold(CloneFlags::empty(), |acc, t| acc | flag(*t))
    }

    /// Opens every namespace to join, in the runtime's own mount namespace where the paths make sense.
    pub fn open_joins(&self) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
        self.join
            .iter()
            .map(|(t, p)| {
                let fd = open(p, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                    .ctx(|| format!("open {} namespace {}", name(*t), p.display()))?;
                // SAFETY: `open` just returned this descriptor and nothing else owns it.
                let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                Ok((*t, fd))
            })
            .collect()
    }
}

/// Joins each opened namespace except pid and user (joined before the fork that creates init).
pub fn join_all(fds: &[(LinuxNamespaceType, OwnedFd)]) -> Result<()> {
    for (t, fd) in fds {
        if matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::User) {
            continue;
        }
        setns(fd, flag(*t)).ctx(|| format!("join {} namespace", name(*t)))?;
    }
    Ok(())
}

/// `linux.timeOffsets` as `/proc/self/timens_offsets` takes them; only the two clocks a time namespace
/// can shift are accepted.
pub fn time_offsets(
    offsets: &std::collections::HashMap<String, oci_spec::runtime::LinuxTimeOffset>,
) -> Result<String> {
    let mut clocks: Vec<_> = offsets.iter().collect();
    clocks.sort_by(|a, b| a.0.cmp(b.0));
    clocks
        .into_iter()
        .map(|(clock, o)| {
            if clock != "monotonic" && clock != "boottime" {
                return Err(Error::invalid(format!(
                    "linux.timeOffsets: clock {clock:?} is not monotonic or boottime"
                )));
            }
            let nanos = o.nanosecs().unwrap_or(0);
            if nanos >= 1_000_000_000 {
                return Err(Error::invalid(format!(
                    "linux.timeOffsets: {clock} nanosecs {nanos} is not below one second"
                )));
            }
            Ok(format!("{clock} {} {nanos}\n", o.secs().unwrap_or(0)))
        })
        .collect()
}

/// Puts the calling process into a new time namespace with the given offsets. unshare(CLONE_NEWTIME)
/// only applies to children, and offsets can only be written before any process is inside, so: create
/// it for children, write the offsets, then join it through /proc/self/ns/time_for_children (allowed
/// for a single-threaded process, which the init is).
pub fn enter_new_time(offsets: &str) -> Result<()> {
    nix::sched::unshare(flag(LinuxNamespaceType::Time)).ctx(|| "create time namespace")?;
    if !offsets.is_empty() {
        std::fs::write("/proc/self/timens_offsets", offsets)
            .ctx(|| format!("write time namespace offsets {:?}", offsets.trim_end()))?;
    }
    let fd = open(
        "/proc/self/ns/time_for_children",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open the new time namespace")?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    setns(&fd, flag(LinuxNamespaceType::Time)).ctx(|| "enter the new time namespace")
}

/// Writes `/proc/PID/{uid_map,gid_map}` for a process that just entered a new user namespace. Only a
/// runtime without root in its own namespace must deny setgroups first (CVE-2014-8989); a privileged
/// one leaves it allowed so additional gids work.
pub fn write_id_maps(
    pid: i32,
    uids: &[oci_spec::runtime::LinuxIdMapping],
    gids: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<()> {
    let render = |maps: &[oci_spec::runtime::LinuxIdMapping]| {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    if !nix::unistd::geteuid().is_root() {
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
            .ctx(|| format!("deny setgroups for {pid}"))?;
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), render(uids))
        .ctx(|| format!("write uid_map of {pid}"))?;
    std::fs::write(format!("/proc/{pid}/gid_map"), render(gids))
        .ctx(|| format!("write gid_map of {pid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(json: &str) -> Vec<LinuxNamespace> {
        serde_json::from_str(json).expect("parse")
    }

    #[test]
    fn plan_splits_new_and_joined() {
        let plan = Plan::from_spec(&ns(
            r#"[{"type":"pid"},{"type":"mount"},{"type":"network","path":"/proc/1/ns/net"}]"#,
        ))
        .expect("plan");
        assert!(plan.is_new(LinuxNamespaceType::Pid));
        assert!(!plan.is_new(LinuxNamespaceType::Network));
        assert!(plan.is_private(LinuxNamespaceType::Network));
        assert_eq!(plan.unshare_flags(), CloneFlags::CLONE_NEWNS);
    }

    #[test]
    fn duplicates_and_missing_mount_ns_are_refused() {
        assert!(Plan::from_spec(&ns(r#"[{"type":"mount"},{"type":"mount"}]"#)).is_err());
        assert!(Plan::from_spec(&ns(r#"[{"type":"pid"}]"#)).is_err());
        assert!(Plan::from_spec(&ns(r#"[{"type":"mount"},{"type":"mount"}]"#)).is_err());
    }

    #[test]
    fn time_namespace_is_created_apart_and_offsets_render() {
        if std::path::Path::new("/proc/self/timens_offsets").exists() {
            let plan = Plan::from_spec(&ns(r#"[{"type":"mount"},{"type":"time"}]"#)).expect("plan");
            assert!(plan.is_new(LinuxNamespaceType::Time));
            assert_eq!(plan.unshare_flags(), CloneFlags::CLONE_NEWNS);
        }
        let offsets = serde_json::from_str(
            r#"{"monotonic":{"secs":86400},"boottime":{"secs":-5,"nanosecs":7}}"#,
        )
        .expect("offsets");
        assert_eq!(
            time_offsets(&offsets).expect("render"),
            "boottime -5 7\nmonotonic 86400 0\n"
        );
        let bad = serde_json::from_str(r#"{"realtime":{"secs":1}}"#).expect("offsets");
        assert!(time_offsets(&bad).is_err());
    }
}
