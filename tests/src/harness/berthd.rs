//! berthd under test, on private root/state dirs and a private socket.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::daemon::{new_tempdir, Daemon};
use super::Ctr;

pub struct Berthd {
    pub root: PathBuf,
    pub state: PathBuf,
    /// The gRPC unix socket.
    pub address: PathBuf,
    daemon: Daemon,
}

impl Berthd {
    /// `$BERTHD_BIN`, else `debug/berthd` in `$CARGO_TARGET_DIR` or the workspace's `target/`.
    pub fn binary() -> PathBuf {
        if let Some(bin) = std::env::var_os("BERTHD_BIN") {
            return PathBuf::from(bin);
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| super::workspace_dir().join("target"));
        target.join("debug").join("berthd")
    }

    /// Starts berthd with fresh root and state dirs inside a new temp dir.
    pub fn start() -> anyhow::Result<Berthd> {
        let tempdir = new_tempdir("berthd")?;
        let root = tempdir.path().join("root");
        let state = tempdir.path().join("state");
        Self::launch(tempdir, root, state)
    }

    /// Starts berthd on existing root and state dirs (to check what survives a restart), with its
    /// own socket and log in a new temp dir. The dirs are not this instance's: it neither unmounts
    /// nor removes them, and whoever owns them must outlive it.
    pub fn start_on(root: &Path, state: &Path) -> anyhow::Result<Berthd> {
        let tempdir = new_tempdir("berthd")?;
        Self::launch(tempdir, root.to_path_buf(), state.to_path_buf())
    }

    fn launch(tempdir: tempfile::TempDir, root: PathBuf, state: PathBuf) -> anyhow::Result<Berthd> {
        let address = tempdir.path().join("berthd.sock");
        let args: Vec<OsString> = vec![
            "--root".into(),
            root.clone().into(),
            "--state".into(),
            state.clone().into(),
            "--address".into(),
            address.clone().into(),
            "--log-level".into(),
            super::log_level().into(),
        ];
        let bin = Self::binary();
        anyhow::ensure!(
            bin.exists(),
            "berthd binary {} not found: build it with `cargo build -p berth-server` or set BERTHD_BIN",
            bin.display()
        );
        let daemon =
            Daemon::start("berthd", bin, args, address.clone(), tempdir).context("start berthd")?;
        Ok(Berthd {
            root,
            state,
            address,
            daemon,
        })
    }

    /// Starts berthd again on the same dirs and socket (after `kill9` or `stop`; a running one is
    /// killed first). The log keeps growing across restarts.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.daemon.kill9();
        self.daemon.spawn().context("restart berthd")
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// SIGKILL berthd alone, as a crash would.
    pub fn kill9(&mut self) {
        self.daemon.kill9();
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// Everything berthd wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    pub fn log_path(&self) -> &Path {
        self.daemon.log_path()
    }

    pub fn temp_dir(&self) -> &Path {
        self.daemon.temp_dir()
    }

    /// A ctr client for this daemon in `namespace`.
    pub fn ctr(&self, namespace: &str) -> Ctr {
        Ctr::new(&self.address, namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Harness self-check against a built berthd: `cargo test -p berth-tests -- --ignored`.
    #[test]
    #[ignore]
    fn starts_serves_restarts_and_cleans_up() {
        if let Some(reason) = super::super::skip_reason(&[super::super::CTR_BIN]) {
            eprintln!("skipping: {reason}");
            return;
        }
        let mut berthd = Berthd::start().expect("start berthd");
        let ctr = berthd.ctr("default");
        let version = ctr.ok(&["version"]);
        assert!(version.contains("Server:"), "{version}");
        berthd.kill9();
        ctr.fails(&["--connect-timeout", "1s", "version"]);
        berthd.restart().expect("restart berthd");
        ctr.ok(&["version"]);
        assert!(super::super::rss_kib(berthd.pid().expect("running")) > 0);
        let dir = berthd.temp_dir().to_path_buf();
        berthd.stop();
        drop(berthd);
        assert!(!dir.exists());
    }
}
