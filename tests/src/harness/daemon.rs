//! One daemon process (berthd or containerd) and the temp dir it runs in: start, wait until its
//! socket accepts connections, SIGTERM/SIGKILL, and the cleanup that runs on drop.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use super::cleanup;

/// How long a daemon gets to open its socket.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `stop` waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Daemon {
    label: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    socket: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    /// Owned temp dir; `None` only after drop has cleaned it.
    tempdir: Option<TempDir>,
}

/// A fresh temp dir for one daemon, short enough for unix socket paths (108 bytes).
pub fn new_tempdir(label: &str) -> anyhow::Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("berth-{label}-"))
        .tempdir_in("/tmp")
        .context("create daemon temp dir")
}

impl Daemon {
    /// Starts `program args` with output going to `<tempdir>/<label>.log` and waits for `socket`.
    pub fn start(
        label: &'static str,
        program: PathBuf,
        args: Vec<OsString>,
        socket: PathBuf,
        tempdir: TempDir,
    ) -> anyhow::Result<Daemon> {
        let log_path = tempdir.path().join(format!("{label}.log"));
        let mut daemon = Daemon {
            label,
            program,
            args,
            socket,
            log_path,
            child: None,
            tempdir: Some(tempdir),
        };
        daemon.spawn()?;
        Ok(daemon)
    }

    pub fn temp_dir(&self) -> &Path {
        self.tempdir
            .as_ref()
            .expect("temp dir lives until shutdown")
            .path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process again with the same arguments (after `kill9` or `stop`).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{}: already running", self.label);
        anyhow::ensure!(
            self.program.exists(),
            "{}: binary {} not found",
            self.label,
            self.program.display()
        );
        // A socket file left by a killed daemon would make the readiness probe lie.
        let _ = std::fs::remove_file(&self.socket);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("open {}", self.log_path.display()))?;
        let log_err = log.try_clone().context("clone log file handle")?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .with_context(|| format!("spawn {}", self.program.display()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("spawned above");
            if let Some(status) = child.try_wait().context("poll daemon")? {
                self.child = None;
                anyhow::bail!(
                    "{} exited before serving ({status}); log:\n{}",
                    self.label,
                    self.log()
                );
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill9();
                anyhow::bail!(
                    "{}: socket {} not accepting after {:?}; log:\n{}",
                    self.label,
                    self.socket.display(),
                    READY_TIMEOUT,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: Signal) {
        if let Some(child) = &self.child {
            let pid = Pid::from_raw(i32::try_from(child.id()).expect("pids fit in i32"));
            // ESRCH means it already died; waiting below reaps it either way.
            let _ = kill(pid, signal);
        }
    }

    /// SIGKILL, as a crash would: its shims and containers are left running.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited after 10 s.
    pub fn stop(&mut self) {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while let Some(child) = self.child.as_mut() {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => {
                    self.child = None;
                    return;
                }
                Ok(None) if Instant::now() >= deadline => {
                    eprintln!(
                        "berth-tests: {} ignored SIGTERM for {STOP_TIMEOUT:?}",
                        self.label
                    );
                    self.kill9();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|raw| String::from_utf8_lossy(&raw).into_owned())
            .unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Kills the daemon and what it left running, detaches its mounts and removes its temp dir.
    /// Idempotent; drop calls it too.
    pub fn shutdown(&mut self) {
        self.kill9();
        if let Some(dir) = self.tempdir.take() {
            // Cleanup decides itself whether removal is safe, so TempDir must not delete on drop.
            let path = dir.keep();
            cleanup::clean_dir(&path);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}
