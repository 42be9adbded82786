//! Test helpers: busybox bundles, a private state root per test, and cleanup that touches only what the
//! test made.
#![allow(dead_code)]

pub mod library;
pub mod shell;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");
const APPLETS: &[&str] = &[
    "sh", "cat", "hostname", "id", "grep", "sleep", "true", "ls", "readlink", "echo", "touch",
    "mkdir", "stat", "head", "wc",
];

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether the host runs cgroup v1 hierarchies (this machine: v1 plus a controller-less v2 mount).
pub fn cgroup_v1() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
}

/// Skips (passes) a test that reads cgroup v1 files when the host has none.
#[macro_export]
macro_rules! require_cgroup_v1 {
    () => {
        if !common::cgroup_v1() {
            eprintln!("skipped: needs cgroup v1 hierarchies");
            return;
        }
    };
}

/// Skips (passes) a test that needs root when not run as root, saying so.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

pub struct Bundle {
    pub dir: tempfile::TempDir,
}

impl Bundle {
    /// A bundle with Debian's static busybox and its applets as the rootfs, the runtime's default spec,
    /// and `args` as the process.
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("brt-bundle-")
            .tempdir()
            .expect("tempdir");
        let bin = dir.path().join("rootfs/bin");
        std::fs::create_dir_all(&bin).expect("rootfs/bin");
        std::fs::copy("/bin/busybox", bin.join("busybox"))
            .expect("copy busybox (install busybox-static)");
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(a)).expect("applet symlink");
        }
        let out = Command::new(BIN)
            .arg("spec")
            .arg("--bundle")
            .arg(dir.path())
            .output()
            .expect("spec");
        assert!(
            out.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let b = Bundle { dir };
        b.edit(|c| c["process"]["args"] = serde_json::json!(args));
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Puts the container in a new user namespace mapping its root to host uid/gid 100000 (65536 ids),
    /// and hands the rootfs to that user (as an image unpacked for it would be) with a bundle it can
    /// traverse.
    pub fn map_root_in_user_namespace(&self) {
        let st = Command::new("chown")
            .arg("-hR")
            .arg("100000:100000")
            .arg(self.rootfs())
            .status()
            .expect("chown");
        assert!(st.success());
        std::fs::set_permissions(
            self.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod bundle");
        self.edit(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces")
                .push(serde_json::json!({"type": "user"}));
            let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["uidMappings"] = map.clone();
            c["linux"]["gidMappings"] = map;
        });
    }

    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let path = self.dir.path().join("config.json");
        let mut v: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read config")).expect("json");
        f(&mut v);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).expect("serialize"))
            .expect("write config");
    }
}

/// A private state root; deleting every container in it (forced) on drop.
pub struct Runtime {
    pub root: tempfile::TempDir,
}

impl Runtime {
    pub fn new() -> Runtime {
        Runtime {
            root: tempfile::Builder::new()
                .prefix("brt-root-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    /// Runs the runtime with stdout and stderr in files rather than pipes: a created container's init
    /// inherits them and keeps them open, which would make a pipe reader wait for the container.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let mut out = tempfile::tempfile().expect("stdout file");
        let mut err = tempfile::tempfile().expect("stderr file");
        let status = Command::new(BIN)
            .arg("--root")
            .arg(self.root.path())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(err.try_clone().expect("clone"))
            .status()
            .expect("run berth-runtime");
        Output {
            status,
            stdout: read_all(&mut out),
            stderr: read_all(&mut err),
        }
    }

    /// Runs and insists on success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "berth-runtime {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and insists on failure, returning stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            !out.status.success(),
            "berth-runtime {args:?} unexpectedly succeeded"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state json")
    }

    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.path().join(id)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.root.path()) {
            for e in entries.flatten() {
                if let Some(id) = e.file_name().to_str() {
                    let _ = self.cmd(&["delete", "--force", id]);
                }
            }
        }
    }
}

fn read_all(f: &mut std::fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut v = Vec::new();
    f.seek(std::io::SeekFrom::Start(0)).expect("seek");
    f.read_to_end(&mut v).expect("read");
    v
}

/// A container id unique to this test process and name, so parallel tests never collide.
pub fn unique_id(name: &str) -> String {
    format!("brt-{name}-{}", std::process::id())
}

/// The controller-less cgroup2 mount beside the v1 hierarchies, or `None` (saying the test is skipped)
/// when the host has none.
pub fn unified_cgroup2() -> Option<&'static Path> {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.join("cgroup.procs").exists() {
        eprintln!("skipped: no cgroup2 mount at /sys/fs/cgroup/unified");
        return None;
    }
    Some(unified)
}

/// The container's memory cgroup directory on this (v1) host.
pub fn memory_cgroup(id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup/memory/berth-runtime").join(id)
}

pub fn wait_status(rt: &Runtime, id: &str, want: &str) {
    for _ in 0..500 {
        if rt.state(id)["status"] == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("container {id} never reached {want}: {}", rt.state(id));
}

/// A failed create (or a deleted container) must leave no state directory and no cgroup.
pub fn assert_nothing_left(rt: &Runtime, id: &str) {
    assert!(!rt.state_dir(id).exists(), "state dir of {id} left behind");
    assert!(!memory_cgroup(id).exists(), "cgroup of {id} left behind");
}

/// Whether any host mount still refers to `path`.
pub fn host_mounts_mention(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .contains(path.to_str().expect("utf-8 path"))
}

/// Accepts one connection on a console socket and returns the pty master it carries.
pub fn receive_master(listener: std::os::unix::net::UnixListener) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};
    let (conn, _) = listener.accept().expect("accept console connection");
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed this descriptor for us.
            return unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd in the console message");
}

/// Reads from the pty master until `want` appears or time runs out.
pub fn read_until(master: std::os::fd::OwnedFd, want: &str) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = std::io::Read::read(&mut f, &mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            let _ = tx.send(String::from_utf8_lossy(&seen).into_owned());
        }
    });
    let mut last = String::new();
    while let Ok(s) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
        last = s;
        if last.contains(want) {
            break;
        }
    }
    last
}
