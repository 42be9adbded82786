//! Interop with the real stack: Debian's containerd 1.6 and its containerd-shim-runc-v2 drive
//! berth-runtime as their runc binary (`ctr run --runc-binary`). Needs root, containerd and ctr; skipped
//! otherwise. The daemon is private to the test (own root, state and socket) and stopped at the end.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const IMAGE: &str = "docker.io/library/berth-busybox:test";

fn have(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string()
}

/// Writes `data` as a blob of the OCI layout and returns its descriptor fields.
fn put_blob(layout: &Path, data: &[u8]) -> (String, usize) {
    let tmp = layout.join("blob.tmp");
    std::fs::write(&tmp, data).expect("write blob");
    let digest = sha256(&tmp);
    std::fs::rename(&tmp, layout.join("blobs/sha256").join(&digest)).expect("place blob");
    (format!("sha256:{digest}"), data.len())
}

/// An OCI image archive with the busybox rootfs, built with tar(1) and sha256sum(1).
fn build_image(dir: &Path) -> PathBuf {
    let b = common::Bundle::new(&["true"]);
    for d in ["etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(b.rootfs().join(d)).expect("rootfs dir");
    }
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("layout");
    let layer = dir.join("layer.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(b.rootfs())
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let (ldig, lsize) = put_blob(&layout, &std::fs::read(&layer).expect("layer"));
    let config = json!({"architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [ldig]}});
    let (cdig, csize) = put_blob(&layout, config.to_string().as_bytes());
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": csize},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ldig, "size": lsize}]});
    let (mdig, msize) = put_blob(&layout, manifest.to_string().as_bytes());
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig, "size": msize,
        "annotations": {"io.containerd.image.name": IMAGE, "org.opencontainers.image.ref.name": "test"}}]});
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index");
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let archive = dir.join("image.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    archive
}

struct Daemon {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("brt-ctrd-")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
        )
        .expect("config");
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--address")
            .arg(dir.path().join("c.sock"))
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let d = Daemon { dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !d.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("-a")
            .arg(self.dir.path().join("c.sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn task_status(&self, id: &str) -> String {
        self.ok(&["tasks", "ls"])
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
            .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        // Anything containerd left mounted under its private root goes before the temp dir is removed.
        let root = self.dir.path().to_string_lossy().into_owned();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&root))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for m in points {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn containerd_runs_containers_with_berth_runtime() {
    require_root!();
    require_cgroup_v1!();
    if !have("containerd") || !have("ctr") || !have("containerd-shim-runc-v2") {
        eprintln!("skipped: containerd, ctr or containerd-shim-runc-v2 missing");
        return;
    }
    let d = Daemon::start();
    let image = build_image(d.dir.path());
    d.ok(&["images", "import", image.to_str().expect("utf-8")]);
    let rb = common::BIN;
    let id = common::unique_id("ctr");

    let out = d.ok(&[
        "run",
        "--runc-binary",
        rb,
        "--rm",
        IMAGE,
        &format!("{id}-echo"),
        "echo",
        "hi",
    ]);
    assert_eq!(out, "hi\n");

    // containerd's default seccomp profile compiles and binds the container.
    let out = d.ok(&[
        "run",
        "--runc-binary",
        rb,
        "--seccomp",
        "--rm",
        IMAGE,
        &format!("{id}-sc"),
        "grep",
        "^Seccomp:",
        "/proc/self/status",
    ]);
    assert_eq!(out, "Seccomp:\t2\n");

    // A terminal: ctr needs one itself, so it runs under script(1).
    if have("script") {
        let cmd = format!(
            "ctr -a {} run -t --runc-binary {rb} --rm {IMAGE} {id}-tty sh -c 'tty; echo tty-ok'",
            d.dir.path().join("c.sock").display()
        );
        let out = Command::new("script")
            .arg("-qec")
            .arg(&cmd)
            .arg("/dev/null")
            .stdin(Stdio::null())
            .output()
            .expect("script");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("/dev/pts/0") && text.contains("tty-ok"),
            "{text}"
        );
    }

    d.ok(&["run", "--runc-binary", rb, "-d", IMAGE, &id, "sleep", "300"]);
    assert_eq!(d.task_status(&id), "RUNNING");
    let out = d.ok(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo from-exec; id -u",
    ]);
    assert_eq!(out, "from-exec\n0\n");
    d.ok(&["tasks", "pause", &id]);
    assert_eq!(d.task_status(&id), "PAUSED");
    d.ok(&["tasks", "resume", &id]);
    assert_eq!(d.task_status(&id), "RUNNING");
    let metrics = d.ok(&["tasks", "metrics", &id]);
    assert!(
        metrics.contains("memory.usage_in_bytes") && metrics.contains("pids.current"),
        "{metrics}"
    );
    d.ok(&["tasks", "kill", "-s", "KILL", &id]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.task_status(&id) != "STOPPED" {
        assert!(Instant::now() < deadline, "task never stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.ok(&["tasks", "delete", &id]);
    d.ok(&["containers", "delete", &id]);
    assert!(
        !Path::new("/sys/fs/cgroup/memory/default")
            .join(&id)
            .exists(),
        "cgroup left behind"
    );
}
