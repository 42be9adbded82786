//! The real containerd (Debian's 1.6 package) on private paths, for side-by-side comparisons and
//! for validating test images against the reference implementation.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use super::cleanup::remove_namespace_leftovers;
use super::daemon::{new_tempdir, Daemon};
use super::Ctr;

pub const CONTAINERD_BIN: &str = "/usr/bin/containerd";

/// Plugins turned off: CRI wants networking (CNI) and a kubelet; the other snapshotters only add
/// noise where their filesystems are missing.
const DISABLED_PLUGINS: &[&str] = &[
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
];

pub struct Containerd {
    pub root: PathBuf,
    pub state: PathBuf,
    /// The gRPC unix socket.
    pub address: PathBuf,
    /// The config.toml it runs with.
    pub config: PathBuf,
    daemon: Daemon,
    /// Namespaces handed to ctr clients, whose per-namespace dirs are removed at drop.
    namespaces: Mutex<BTreeSet<String>>,
}

/// TOML basic string: the paths here are ours, but quote them properly anyway.
fn toml_str(path: &Path) -> String {
    let raw = path.to_string_lossy();
    format!("\"{}\"", raw.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Containerd {
    /// Starts containerd with fresh root and state dirs inside a new temp dir.
    pub fn start() -> anyhow::Result<Containerd> {
        let tempdir = new_tempdir("containerd")?;
        let root = tempdir.path().join("root");
        let state = tempdir.path().join("state");
        Self::launch(tempdir, root, state)
    }

    /// Starts containerd on existing root and state dirs with its own socket, config and log in a
    /// new temp dir; the dirs' owner must outlive it.
    pub fn start_on(root: &Path, state: &Path) -> anyhow::Result<Containerd> {
        let tempdir = new_tempdir("containerd")?;
        Self::launch(tempdir, root.to_path_buf(), state.to_path_buf())
    }

    fn launch(
        tempdir: tempfile::TempDir,
        root: PathBuf,
        state: PathBuf,
    ) -> anyhow::Result<Containerd> {
        let dir = tempdir.path().to_path_buf();
        let address = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        let disabled: Vec<String> = DISABLED_PLUGINS
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect();
        let text = format!(
            "version = 2\n\
             root = {root}\n\
             state = {state}\n\
             disabled_plugins = [{disabled}]\n\
             \n\
             [grpc]\n  address = {grpc}\n\
             \n\
             [ttrpc]\n  address = {ttrpc}\n\
             \n\
             [debug]\n  address = {debug}\n  level = \"{level}\"\n\
             \n\
             [metrics]\n  address = \"\"\n\
             \n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt}\n",
            root = toml_str(&root),
            state = toml_str(&state),
            disabled = disabled.join(", "),
            grpc = toml_str(&address),
            ttrpc = toml_str(&dir.join("containerd.sock.ttrpc")),
            debug = toml_str(&dir.join("debug.sock")),
            level = super::log_level(),
            opt = toml_str(&dir.join("opt")),
        );
        std::fs::write(&config, text).with_context(|| format!("write {}", config.display()))?;
        let args: Vec<OsString> = vec!["--config".into(), config.clone().into()];
        let daemon = Daemon::start(
            "containerd",
            PathBuf::from(CONTAINERD_BIN),
            args,
            address.clone(),
            tempdir,
        )
        .context("start containerd")?;
        Ok(Containerd {
            root,
            state,
            address,
            config,
            daemon,
            namespaces: Mutex::new(BTreeSet::new()),
        })
    }

    /// Starts containerd again on the same dirs and socket; a running one is killed first.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.daemon.kill9();
        self.daemon.spawn().context("restart containerd")
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// SIGKILL containerd alone; its shims keep running until drop.
    pub fn kill9(&mut self) {
        self.daemon.kill9();
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    pub fn log(&self) -> String {
        self.daemon.log()
    }

    pub fn log_path(&self) -> &Path {
        self.daemon.log_path()
    }

    pub fn temp_dir(&self) -> &Path {
        self.daemon.temp_dir()
    }

    /// A ctr client for this containerd in `namespace`.
    pub fn ctr(&self, namespace: &str) -> Ctr {
        self.namespaces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(namespace.to_string());
        Ctr::new(&self.address, namespace)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.daemon.shutdown();
        let namespaces = self
            .namespaces
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for namespace in namespaces.iter() {
            remove_namespace_leftovers(namespace);
        }
    }
}
