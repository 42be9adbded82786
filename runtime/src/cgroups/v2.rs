//! cgroup v2: one directory in the unified hierarchy, limits written to its interface files.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::{read_pids, rmdir, write};
use crate::error::{Context, Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manager {
    pub dir: PathBuf,
}

/// cgroup v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), the conversion runc and crun agree on.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

impl Manager {
    pub fn new(dir: PathBuf) -> Manager {
        Manager { dir }
    }

    pub fn mkdirs(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).ctx(|| format!("create cgroup {}", self.dir.display()))
    }

    fn require(&self, file: &str) -> Result<()> {
        if self.dir.join(file).exists() {
            Ok(())
        } else {
            Err(Error::Unsupported(format!(
                "cgroup {} has no {file}: its controller is not enabled for this subtree",
                self.dir.display()
            )))
        }
    }

    fn set(&self, file: &str, value: &str) -> Result<()> {
        self.require(file)?;
        write(&self.dir, file, value)
    }

    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(mem) = r.memory() {
            if let Some(l) = mem.limit() {
                self.set("memory.max", &limit(l))?;
            }
            if let Some(res) = mem.reservation() {
                self.set("memory.low", &limit(res))?;
            }
            if let Some(swap) = mem.swap() {
                // The spec's swap is memory+swap (v1 semantics); v2's swap.max is swap alone.
                let value = match (swap, mem.limit()) {
                    (s, _) if s < 0 => "max".to_string(),
                    (s, Some(l)) if l >= 0 => (s - l).max(0).to_string(),
                    (s, _) => s.to_string(),
                };
                self.set("memory.swap.max", &value)?;
            }
        }
        if let Some(cpu) = r.cpu() {
            if let Some(shares) = cpu.shares() {
                self.set("cpu.weight", &shares_to_weight(shares).to_string())?;
            }
            if cpu.quota().is_some() || cpu.period().is_some() {
                let quota = cpu.quota().map_or("max".to_string(), limit);
                let period = cpu.period().unwrap_or(100_000);
                self.set("cpu.max", &format!("{quota} {period}"))?;
            }
            if let Some(cpus) = cpu.cpus().as_deref().filter(|c| !c.is_empty()) {
                self.set("cpuset.cpus", cpus)?;
            }
            if let Some(mems) = cpu.mems().as_deref().filter(|m| !m.is_empty()) {
                self.set("cpuset.mems", mems)?;
            }
        }
        if let Some(pids) = r.pids() {
            let l = pids.limit();
            self.set(
                "pids.max",
                &if l > 0 { l.to_string() } else { "max".into() },
            )?;
        }
        if let Some(blkio) = r.block_io() {
            if let Some(w) = blkio.weight() {
                // blkio weight 10..1000 maps onto io.weight 1..10000.
                let weight = 1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990;
                self.set("io.weight", &format!("default {weight}"))?;
            }
            let throttles = [
                ("rbps", blkio.throttle_read_bps_device()),
                ("wbps", blkio.throttle_write_bps_device()),
                ("riops", blkio.throttle_read_iops_device()),
                ("wiops", blkio.throttle_write_iops_device()),
            ];
            for (key, devs) in throttles {
                for d in devs.iter().flatten() {
                    self.set(
                        "io.max",
                        &format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                    )?;
                }
            }
        }
        for h in r.hugepage_limits().iter().flatten() {
            self.set(
                &format!("hugetlb.{}.max", h.page_size()),
                &h.limit().to_string(),
            )?;
        }
        if let Some(devices) = r.devices() {
            let mut rules = devices
                .iter()
                .map(super::ebpf::rule)
                .collect::<Result<Vec<_>>>()?;
            rules.extend(super::ebpf::default_rules());
            super::ebpf::attach(&self.dir, &rules)?;
        }
        Ok(())
    }

    pub fn add(&self, pid: i32) -> Result<()> {
        write(&self.dir, "cgroup.procs", &pid.to_string())
    }

    pub fn pids(&self) -> Result<Vec<i32>> {
        read_pids(&self.dir.join("cgroup.procs"))
    }

    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        self.set("cgroup.freeze", if frozen { "1" } else { "0" })
    }

    pub fn is_frozen(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
    }

    pub fn remove(&self) -> Result<()> {
        rmdir(&self.dir)
    }

    pub fn stats(&self) -> serde_json::Value {
        use super::{read_flat_keyed, read_u64};
        let cpu = read_flat_keyed(&self.dir, "cpu.stat");
        let get = |k: &str| cpu.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let max = |f: &str| {
            std::fs::read_to_string(self.dir.join(f))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        serde_json::json!({
            "cpu": {"usage": {"total": get("usage_usec") * 1000, "kernel": get("system_usec") * 1000,
                "user": get("user_usec") * 1000},
                "throttling": {"periods": get("nr_periods"), "throttledPeriods": get("nr_throttled"),
                "throttledTime": get("throttled_usec") * 1000}},
            "memory": {"usage": {"usage": read_u64(&self.dir, "memory.current"), "limit": max("memory.max")},
                "swap": {"usage": read_u64(&self.dir, "memory.swap.current"), "limit": max("memory.swap.max")},
                "raw": read_flat_keyed(&self.dir, "memory.stat")},
            "pids": {"current": read_u64(&self.dir, "pids.current"), "limit": max("pids.max")},
            "blkio": super::stats::v2_io(&self.dir),
            "hugetlb": super::stats::v2_hugetlb(&self.dir, &super::stats::huge_page_sizes()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(files: &[&str]) -> (tempfile::TempDir, Manager) {
        let tmp = tempfile::tempdir().expect("tempdir");
        for f in files {
            std::fs::write(tmp.path().join(f), "").expect("fixture file");
        }
        let m = Manager::new(tmp.path().to_path_buf());
        (tmp, m)
    }

    #[test]
    fn limits_land_in_v2_files() {
        let (tmp, m) = fixture(&[
            "memory.max",
            "memory.low",
            "memory.swap.max",
            "cpu.weight",
            "cpu.max",
            "pids.max",
            "cgroup.freeze",
        ]);
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":1048576,"reservation":524288,"swap":2097152},
                "cpu":{"shares":1024,"quota":20000},"pids":{"limit":32}}"#,
        )
        .expect("resources");
        m.apply(&r).expect("apply");
        let read = |f: &str| std::fs::read_to_string(tmp.path().join(f)).expect(f);
        assert_eq!(read("memory.max"), "1048576");
        assert_eq!(read("memory.low"), "524288");
        assert_eq!(read("memory.swap.max"), "1048576");
        assert_eq!(read("cpu.weight"), "39");
        assert_eq!(read("cpu.max"), "20000 100000");
        assert_eq!(read("pids.max"), "32");
        m.set_frozen(true).expect("freeze");
        assert!(m.is_frozen());
    }

    #[test]
    fn missing_controller_file_is_refused() {
        let (_tmp, m) = fixture(&[]);
        let r: LinuxResources = serde_json::from_str(r#"{"pids":{"limit":3}}"#).expect("resources");
        assert!(m
            .apply(&r)
            .expect_err("no pids.max")
            .to_string()
            .contains("pids.max"));
    }

    #[test]
    fn weight_conversion_matches_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
    }
}
