//! The two daemons under comparison, started side by side on private temp paths, and the checks
//! that run before them (root, binaries) and after them (nothing left behind).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use super::ctr::TimedCtr;
use crate::harness::{
    mounts_under, processes_under, rss_kib, Berthd, Containerd, CONTAINERD_BIN, CTR_BIN,
};

/// Which daemon a figure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Berth,
    Containerd,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Berth, Side::Containerd];

    pub fn label(self) -> &'static str {
        match self {
            Side::Berth => "berthd",
            Side::Containerd => "containerd",
        }
    }

    /// Position in per-side arrays (`[berthd, containerd]`).
    pub fn index(self) -> usize {
        match self {
            Side::Berth => 0,
            Side::Containerd => 1,
        }
    }

    /// Both sides, the first one alternating with `round`, so that whatever the machine does in
    /// the background falls on both daemons alike.
    pub fn order(round: usize) -> [Side; 2] {
        let first = Side::BOTH[round % 2];
        [first, first.other()]
    }

    pub fn other(self) -> Side {
        match self {
            Side::Berth => Side::Containerd,
            Side::Containerd => Side::Berth,
        }
    }
}

/// Refuses to start when the benchmark cannot work here, saying what is missing.
pub fn preflight() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("must run as root: containerd needs root for its state and mounts (try sudo)");
    }
    for (bin, package) in [(CTR_BIN, "containerd"), (CONTAINERD_BIN, "containerd")] {
        if !Path::new(bin).exists() {
            bail!("{bin} is missing: install Debian's {package} package (apt-get install -y {package})");
        }
    }
    let berthd = Berthd::binary();
    if !berthd.exists() {
        bail!(
            "berthd binary {} is missing: build it (cargo build -p berth-server) or set BERTHD_BIN",
            berthd.display()
        );
    }
    Ok(())
}

pub struct Daemons {
    pub berthd: Berthd,
    pub containerd: Containerd,
}

impl Daemons {
    /// Starts both; each is serving its socket when this returns.
    pub fn start() -> anyhow::Result<Daemons> {
        let berthd = Berthd::start().context("start berthd")?;
        let containerd = Containerd::start().context("start containerd")?;
        Ok(Daemons { berthd, containerd })
    }

    pub fn address(&self, side: Side) -> &Path {
        match side {
            Side::Berth => &self.berthd.address,
            Side::Containerd => &self.containerd.address,
        }
    }

    pub fn temp_dir(&self, side: Side) -> &Path {
        match side {
            Side::Berth => self.berthd.temp_dir(),
            Side::Containerd => self.containerd.temp_dir(),
        }
    }

    pub fn pid(&self, side: Side) -> anyhow::Result<u32> {
        match side {
            Side::Berth => self.berthd.pid(),
            Side::Containerd => self.containerd.pid(),
        }
        .with_context(|| format!("{} is not running", side.label()))
    }

    /// VmRSS of the daemon process itself.
    pub fn rss_kib(&self, side: Side) -> anyhow::Result<u64> {
        let kib = rss_kib(self.pid(side)?);
        anyhow::ensure!(kib > 0, "{}: no VmRSS (did it exit?)", side.label());
        Ok(kib)
    }

    /// A timed ctr for `side` in `namespace`. The namespace is recorded with the containerd
    /// harness, whose cleanup removes what containerd keeps per namespace outside its dirs.
    pub fn ctr(&self, side: Side, namespace: &str, timeout: Duration) -> TimedCtr {
        if side == Side::Containerd {
            let _ = self.containerd.ctr(namespace);
        }
        TimedCtr::new(self.address(side), namespace, timeout, self.log_path(side))
    }

    fn log_path(&self, side: Side) -> PathBuf {
        match side {
            Side::Berth => self.berthd.log_path().to_path_buf(),
            Side::Containerd => self.containerd.log_path().to_path_buf(),
        }
    }

    /// Stops both daemons (SIGTERM, then SIGKILL), removes their temp dirs and checks that no
    /// process, mount or dir of theirs is left. Returns the dirs that were removed.
    pub fn shut_down(mut self) -> anyhow::Result<Vec<PathBuf>> {
        let dirs: Vec<PathBuf> = Side::BOTH
            .iter()
            .map(|side| self.temp_dir(*side).to_path_buf())
            .collect();
        self.berthd.stop();
        self.containerd.stop();
        drop(self);
        let mut problems = Vec::new();
        for dir in &dirs {
            let mounts = mounts_under(dir);
            if !mounts.is_empty() {
                problems.push(format!("mounts left under {}: {mounts:?}", dir.display()));
            }
            let procs = processes_under(dir);
            if !procs.is_empty() {
                problems.push(format!("processes left for {}: {procs:?}", dir.display()));
            }
            if dir.exists() && std::env::var_os("BERTH_KEEP_TEMP").is_none() {
                problems.push(format!("{} not removed", dir.display()));
            }
        }
        if !problems.is_empty() {
            bail!("cleanup incomplete: {}", problems.join("; "));
        }
        Ok(dirs)
    }
}
