//! Process harness for end-to-end tests: berthd and the real containerd on private temp dirs,
//! the real `ctr` against either, and the cleanup that leaves no process, mount or dir behind.

mod berthd;
mod cleanup;
mod containerd;
mod ctr;
mod daemon;

use std::path::{Path, PathBuf};

pub use berthd::Berthd;
pub use cleanup::{mounts_under, processes_under};
pub use containerd::{Containerd, CONTAINERD_BIN};
pub use ctr::{Ctr, CTR_BIN, CTR_TIMEOUT};

/// The cargo workspace root (the parent of this crate).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_path_buf()
}

/// Resident set size of `pid` in KiB (VmRSS), or 0 when the process is gone or has none.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Why an end-to-end test cannot run here (not root, or a needed binary missing), if it cannot.
/// Tests print the reason and return, so they pass where they cannot apply.
pub fn skip_reason(binaries: &[&str]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (mounts, namespaces, cgroups)".to_string());
    }
    binaries
        .iter()
        .find(|b| !Path::new(b).exists())
        .map(|b| format!("{b} is not installed"))
}

/// The log level both daemons run at: `$BERTH_TEST_LOG_LEVEL`, else debug (tests keep the
/// detail for failures; the benchmark runs both at info, their default).
pub fn log_level() -> String {
    std::env::var("BERTH_TEST_LOG_LEVEL").unwrap_or_else(|_| "debug".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_rss() {
        assert!(rss_kib(std::process::id()) > 0);
        assert_eq!(rss_kib(u32::MAX), 0);
    }
}
