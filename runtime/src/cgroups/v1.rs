//! cgroup v1: one directory per mounted hierarchy, each with its controllers' files.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};
use serde::{Deserialize, Serialize};

use super::{read_pids, rmdir, write};
use crate::error::{Context, Error, Result};

const CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hierarchy {
    /// The mount point's last component (`memory`, `cpu,cpuacct`), used as the name inside the container.
    pub name: String,
    pub controllers: Vec<String>,
    /// The container's directory in this hierarchy.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manager {
    pub hierarchies: Vec<Hierarchy>,
}

/// The v1 hierarchies mounted on the host: (mount point, controllers), from mountinfo.
pub fn host_hierarchies(mountinfo: &str) -> Vec<(PathBuf, Vec<String>)> {
    let mut out: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        if post.next() != Some("cgroup") {
            continue;
        }
        let super_opts = post.nth(1).unwrap_or_default();
        let controllers: Vec<String> = super_opts
            .split(',')
            .filter(|o| CONTROLLERS.contains(o))
            .map(str::to_string)
            .collect();
        let Some(mount_point) = pre.split(' ').nth(4) else {
            continue;
        };
        if controllers.is_empty() || out.iter().any(|(_, c)| *c == controllers) {
            continue;
        }
        out.push((PathBuf::from(mount_point), controllers));
    }
    out
}

impl Manager {
    pub fn discover(rel: &Path) -> Result<Manager> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read mountinfo")?;
        let hierarchies: Vec<Hierarchy> = host_hierarchies(&info)
            .into_iter()
            .map(|(mp, controllers)| Hierarchy {
                name: mp
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                controllers,
                dir: mp.join(rel),
            })
            .collect();
        if hierarchies.is_empty() {
            return Err(Error::Unsupported(
                "no cgroup v1 hierarchy is mounted".into(),
            ));
        }
        Ok(Manager { hierarchies })
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.dir.as_path())
    }

    fn require(&self, controller: &str) -> Result<&Path> {
        self.dir(controller).ok_or_else(|| {
            Error::Unsupported(format!(
                "the spec sets {controller} limits but the host has no {controller} cgroup controller"
            ))
        })
    }

    pub fn mkdirs(&self) -> Result<()> {
        for h in &self.hierarchies {
            let is_cpuset = h.controllers.iter().any(|c| c == "cpuset");
            create_dir_chain(&h.dir, is_cpuset)?;
        }
        Ok(())
    }

    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(mem) = r.memory() {
            let dir = self.require("memory")?;
            if let Some(limit) = mem.limit() {
                write(dir, "memory.limit_in_bytes", &limit.to_string())?;
            }
            if let Some(res) = mem.reservation() {
                write(dir, "memory.soft_limit_in_bytes", &res.to_string())?;
            }
            if let Some(swap) = mem.swap() {
                if !dir.join("memory.memsw.limit_in_bytes").exists() {
                    return Err(Error::Unsupported(
                        "the spec sets a swap limit but the host has no swap accounting".into(),
                    ));
                }
                write(dir, "memory.memsw.limit_in_bytes", &swap.to_string())?;
            }
            if let Some(sw) = mem.swappiness() {
                write(dir, "memory.swappiness", &sw.to_string())?;
            }
            if mem.disable_oom_killer() == Some(true) {
                write(dir, "memory.oom_control", "1")?;
            }
        }
        if let Some(cpu) = r.cpu() {
            if cpu.shares().is_some() || cpu.quota().is_some() || cpu.period().is_some() {
                let dir = self.require("cpu")?;
                if let Some(shares) = cpu.shares() {
                    write(dir, "cpu.shares", &shares.to_string())?;
                }
                if let Some(period) = cpu.period() {
                    write(dir, "cpu.cfs_period_us", &period.to_string())?;
                }
                if let Some(quota) = cpu.quota() {
                    write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
                }
            }
            if let Some(cpus) = cpu.cpus().as_deref().filter(|c| !c.is_empty()) {
                write(self.require("cpuset")?, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = cpu.mems().as_deref().filter(|m| !m.is_empty()) {
                write(self.require("cpuset")?, "cpuset.mems", mems)?;
            }
        }
        if let Some(pids) = r.pids() {
            let limit = pids.limit();
            let value = if limit > 0 {
                limit.to_string()
            } else {
                "max".into()
            };
            write(self.require("pids")?, "pids.max", &value)?;
        }
        if let Some(rules) = r.devices() {
            if let Some(dir) = self.dir("devices") {
                apply_devices(dir, rules)?;
            }
        }
        if let Some(blkio) = r.block_io() {
            let dir = self.require("blkio")?;
            if let Some(w) = blkio.weight() {
                write(dir, "blkio.weight", &w.to_string())?;
            }
            let throttles = [
                (
                    "blkio.throttle.read_bps_device",
                    blkio.throttle_read_bps_device(),
                ),
                (
                    "blkio.throttle.write_bps_device",
                    blkio.throttle_write_bps_device(),
                ),
                (
                    "blkio.throttle.read_iops_device",
                    blkio.throttle_read_iops_device(),
                ),
                (
                    "blkio.throttle.write_iops_device",
                    blkio.throttle_write_iops_device(),
                ),
            ];
            for (file, devs) in throttles {
                for d in devs.iter().flatten() {
                    write(
                        dir,
                        file,
                        &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                    )?;
                }
            }
        }
        for h in r.hugepage_limits().iter().flatten() {
            let file = format!("hugetlb.{}.limit_in_bytes", h.page_size());
            write(self.require("hugetlb")?, &file, &h.limit().to_string())?;
        }
        Ok(())
    }

    pub fn add(&self, pid: i32) -> Result<()> {
        for h in &self.hierarchies {
            write(&h.dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Each hierarchy's `tasks` file (see `cgroups::enter_self`).
    pub fn self_entry(&self) -> Vec<PathBuf> {
        self.hierarchies
            .iter()
            .map(|h| h.dir.join("tasks"))
            .collect()
    }

    pub fn pids(&self) -> Result<Vec<i32>> {
        let dir = ["pids", "freezer", "memory"]
            .iter()
            .find_map(|c| self.dir(c))
            .or_else(|| self.hierarchies.first().map(|h| h.dir.as_path()));
        match dir {
            Some(d) => read_pids(&d.join("cgroup.procs")),
            None => Ok(Vec::new()),
        }
    }

    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        let dir = self.require("freezer")?;
        let want = if frozen { "FROZEN" } else { "THAWED" };
        for _ in 0..1000 {
            write(dir, "freezer.state", want)?;
            let now = std::fs::read_to_string(dir.join("freezer.state"))
                .ctx(|| format!("read {}/freezer.state", dir.display()))?;
            if now.trim() == want {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(Error::Init(format!(
            "cgroup {} did not reach {want}",
            dir.display()
        )))
    }

    pub fn is_frozen(&self) -> bool {
        self.dir("freezer")
            .and_then(|d| std::fs::read_to_string(d.join("freezer.state")).ok())
            .is_some_and(|s| s.trim() == "FROZEN")
    }

    pub fn remove(&self) -> Result<()> {
        for h in &self.hierarchies {
            rmdir(&h.dir)?;
        }
        Ok(())
    }

    pub fn stats(&self) -> serde_json::Value {
        use super::{read_flat_keyed, read_u64};
        let mut out = serde_json::Map::new();
        if let Some(d) = self.dir("cpuacct") {
            let percpu: Vec<u64> = std::fs::read_to_string(d.join("cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let ticks = read_flat_keyed(d, "cpuacct.stat");
            // cpuacct.stat counts USER_HZ ticks (100 per second); runc reports nanoseconds.
            let ns = |k: &str| ticks.get(k).and_then(|v| v.as_u64()).unwrap_or(0) * 10_000_000;
            let mut cpu = serde_json::json!({"usage": {"total": read_u64(d, "cpuacct.usage"),
                "percpu": percpu, "kernel": ns("system"), "user": ns("user")}});
            if let Some(c) = self.dir("cpu") {
                let t = read_flat_keyed(c, "cpu.stat");
                let get = |k: &str| t.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                cpu["throttling"] = serde_json::json!({"periods": get("nr_periods"),
                    "throttledPeriods": get("nr_throttled"), "throttledTime": get("throttled_time")});
            }
            out.insert("cpu".into(), cpu);
        }
        if let Some(d) = self.dir("memory") {
            let entry = |prefix: &str| {
                serde_json::json!({
                    "limit": read_u64(d, &format!("{prefix}limit_in_bytes")),
                    "usage": read_u64(d, &format!("{prefix}usage_in_bytes")),
                    "max": read_u64(d, &format!("{prefix}max_usage_in_bytes")),
                    "failcnt": read_u64(d, &format!("{prefix}failcnt")),
                })
            };
            out.insert("memory".into(), serde_json::json!({
                "usage": entry("memory."), "swap": entry("memory.memsw."), "kernel": entry("memory.kmem."),
                "raw": read_flat_keyed(d, "memory.stat"),
            }));
        }
        if let Some(d) = self.dir("pids") {
            let limit = std::fs::read_to_string(d.join("pids.max"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            out.insert("pids".into(), serde_json::json!({"current": read_u64(d, "pids.current"), "limit": limit.unwrap_or(0)}));
        }
        if let Some(d) = self.dir("blkio") {
            out.insert("blkio".into(), super::stats::v1_blkio(d));
        }
        if let Some(d) = self.dir("hugetlb") {
            let sizes = super::stats::huge_page_sizes();
            out.insert("hugetlb".into(), super::stats::v1_hugetlb(d, &sizes));
        }
        serde_json::Value::Object(out)
    }

    pub fn mount_dirs(&self) -> Vec<(String, PathBuf)> {
        self.hierarchies
            .iter()
            .map(|h| (h.name.clone(), h.dir.clone()))
            .collect()
    }
}

/// Creates `dir` and missing parents. In the cpuset hierarchy a new cgroup starts with empty cpus and
/// mems, which refuses tasks, so each new level inherits its parent's values.
fn create_dir_chain(dir: &Path, cpuset: bool) -> Result<()> {
    // mkdir first: the container's own directory is new and its parents exist, almost always.
    let made = match std::fs::create_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match dir.parent() {
            Some(parent) => {
                create_dir_chain(parent, cpuset)?;
                std::fs::create_dir(dir)
            }
            None => Err(e),
        },
        other => other,
    };
    match made {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("create cgroup {}", dir.display())),
    }
    if cpuset {
        let parent = dir.parent().expect("a created cgroup has a parent");
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let value = std::fs::read_to_string(parent.join(file))
                .ctx(|| format!("read {}/{file}", parent.display()))?;
            write(dir, file, value.trim())?;
        }
    }
    Ok(())
}

/// The devices the runtime creates in every container, allowed after the spec's own rules so a
/// deny-all spec still leaves the container its /dev/null.
fn default_allows() -> Vec<&'static str> {
    vec![
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:1 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
        "c 10:200 rwm",
    ]
}

pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let typ = match d.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        Some(LinuxDeviceType::B) => "b",
        Some(LinuxDeviceType::P) => "p",
        Some(LinuxDeviceType::A) | None => "a",
    };
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = d
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    format!("{typ} {}:{} {access}", num(d.major()), num(d.minor()))
}

fn apply_devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    for d in rules {
        let file = if d.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write(dir, file, &device_rule(d))?;
    }
    // One open for all of them: each write is one rule.
    let path = dir.join("devices.allow");
    let mut allow = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .ctx(|| format!("open {}", path.display()))?;
    for rule in default_allows() {
        std::io::Write::write_all(&mut allow, rule.as_bytes())
            .ctx(|| format!("write {rule:?} to {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_yields_controller_hierarchies() {
        let info = "\
30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
32 25 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
33 25 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
34 25 0:26 / /mnt/again rw - cgroup cgroup rw,memory";
        let h = host_hierarchies(info);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h[1].0, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h[1].1, vec!["cpu".to_string(), "cpuacct".to_string()]);
    }

    #[test]
    fn resources_are_written_to_the_controller_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mk = |name: &str| {
            let dir = tmp.path().join(name);
            std::fs::create_dir(&dir).expect("mkdir");
            Hierarchy {
                name: name.into(),
                controllers: vec![name.into()],
                dir,
            }
        };
        let m = Manager {
            hierarchies: vec![mk("memory"), mk("cpu"), mk("pids"), mk("devices")],
        };
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":67108864,"reservation":33554432},
                "cpu":{"shares":512,"quota":50000,"period":100000},
                "pids":{"limit":-1},
                "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":4,"minor":-1,"access":"rw"}]}"#,
        )
        .expect("resources");
        m.apply(&r).expect("apply");
        let read = |p: &str| std::fs::read_to_string(tmp.path().join(p)).expect(p);
        assert_eq!(read("memory/memory.limit_in_bytes"), "67108864");
        assert_eq!(read("memory/memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(read("cpu/cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu/cpu.shares"), "512");
        assert_eq!(read("pids/pids.max"), "max");
        // A plain file keeps only the last write; the rule format is what matters here.
        assert_eq!(read("devices/devices.deny"), "a *:* rwm");
    }

    #[test]
    fn missing_controller_is_a_clear_error() {
        let m = Manager {
            hierarchies: vec![],
        };
        let r: LinuxResources =
            serde_json::from_str(r#"{"pids":{"limit":10}}"#).expect("resources");
        let err = m.apply(&r).expect_err("no pids controller").to_string();
        assert!(err.contains("pids"), "{err}");
    }
}
