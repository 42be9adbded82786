//! The real `ctr`, timed from spawn to exit. Unlike the test harness's runner this one waits on
//! the child directly (no polling interval) so that short commands are timed to the microsecond;
//! ctr's own `--timeout` bounds a daemon that accepts but never answers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::harness::CTR_BIN;

/// Lines of the daemon's log quoted when a command fails.
const LOG_TAIL: usize = 15;

#[derive(Debug, Clone)]
pub struct TimedCtr {
    address: PathBuf,
    namespace: String,
    timeout: Duration,
    /// The daemon's log, quoted in errors.
    log: PathBuf,
}

impl TimedCtr {
    pub fn new(address: &Path, namespace: &str, timeout: Duration, log: PathBuf) -> TimedCtr {
        TimedCtr {
            address: address.to_path_buf(),
            namespace: namespace.to_string(),
            timeout,
            log,
        }
    }

    /// Runs `ctr -a SOCK -n NS --timeout T args...`; returns the wall time and stdout, or an error
    /// with ctr's stderr and the tail of the daemon's log.
    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> anyhow::Result<(Duration, String)> {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let mut cmd = Command::new(CTR_BIN);
        cmd.arg("-a")
            .arg(&self.address)
            .arg("-n")
            .arg(&self.namespace)
            .arg("--timeout")
            .arg(format!("{}s", self.timeout.as_secs().max(1)))
            .args(&args)
            // The developer's environment must not redirect the benchmark.
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .env_remove("CONTAINERD_SNAPSHOTTER")
            .stdin(Stdio::null());
        let start = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("run {CTR_BIN} {args:?}"))?;
        let elapsed = start.elapsed();
        // Ctrl-C reaches ctr and the daemons too: report the interrupt, not their failure.
        super::interrupt::check()?;
        if !out.status.success() {
            bail!(
                "ctr -n {} {} failed ({}): {}\ndaemon log ({}), last lines:\n{}",
                self.namespace,
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log.display(),
                log_tail(&self.log)
            );
        }
        Ok((elapsed, String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// Runs a command whose time does not count.
    pub fn ok<S: AsRef<str>>(&self, args: &[S]) -> anyhow::Result<String> {
        self.run(args).map(|(_, out)| out)
    }
}

/// The last lines of a daemon log, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read(path)
        .map(|raw| String::from_utf8_lossy(&raw).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
}
