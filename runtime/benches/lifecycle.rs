//! Times the OCI lifecycle of `/bin/true` in a busybox bundle — create + start + wait + delete, and the
//! create + start part alone — for berth-runtime, runc and crun in the same run, and prints medians and
//! ratios. Run as root: `cargo bench --bench lifecycle` (add `--profile dev` for a quick look).
//!
//! crun refuses this host's hybrid cgroup layout, so the benchmark runs in a private mount namespace with
//! /sys/fs/cgroup/unified unmounted, where all three see plain cgroup v1. It is a subreaper, so each
//! container's init is reparented to it after `create` exits and can be waited for directly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ITERATIONS: usize = 50;
const WARMUP: usize = 3;

/// Runs a command to completion. Not `output()`: a created container's init inherits the pipes and
/// would keep them open.
fn sh(cmd: &mut Command) {
    let status = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("spawn");
    assert!(status.success(), "{cmd:?} failed");
}

fn private_cgroup_view() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare mount namespace");
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / private");
    let _ = nix::mount::umount2("/sys/fs/cgroup/unified", nix::mount::MntFlags::MNT_DETACH);
}

fn bundle(dir: &Path, berth: &Path) -> PathBuf {
    let bin = dir.join("rootfs/bin");
    std::fs::create_dir_all(&bin).expect("rootfs");
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is needed");
    std::os::unix::fs::symlink("busybox", bin.join("true")).expect("symlink");
    std::os::unix::fs::symlink("busybox", bin.join("sh")).expect("symlink");
    sh(Command::new(berth).arg("spec").arg("--bundle").arg(dir));
    let path = dir.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("json");
    c["process"]["args"] = serde_json::json!(["/bin/true"]);
    // A spec all three accept: runc and crun expect 1.0.x versions they know.
    c["ociVersion"] = serde_json::json!("1.0.2");
    std::fs::write(&path, serde_json::to_vec(&c).expect("json")).expect("write config");
    dir.to_path_buf()
}

struct Sample {
    cycle: Duration,
    start: Duration,
}

fn once(rt: &Path, root: &Path, bundle: &Path, id: &str) -> Sample {
    let pid_file = root.join(format!("{id}.pid"));
    let t0 = Instant::now();
    sh(Command::new(rt)
        .arg("--root")
        .arg(root)
        .arg("create")
        .arg("--bundle")
        .arg(bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(id)
        .stdout(Stdio::null()));
    sh(Command::new(rt)
        .arg("--root")
        .arg(root)
        .arg("start")
        .arg(id));
    let start = t0.elapsed();
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    sh(Command::new(rt)
        .arg("--root")
        .arg(root)
        .arg("delete")
        .arg(id));
    Sample {
        cycle: t0.elapsed(),
        start,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("lifecycle benchmark skipped: needs root");
        return;
    }
    let berth = PathBuf::from(env!("CARGO_BIN_EXE_berth-runtime"));
    private_cgroup_view();
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let tmp = tempfile::Builder::new()
        .prefix("brt-bench-")
        .tempdir()
        .expect("tempdir");
    let b = bundle(&tmp.path().join("bundle"), &berth);
    let mut runtimes = vec![("berth-runtime", berth.clone())];
    for (name, path) in [("runc", "/usr/sbin/runc"), ("crun", "/usr/bin/crun")] {
        if Path::new(path).exists() {
            runtimes.push((name, PathBuf::from(path)));
        }
    }
    let mut results = Vec::new();
    for (name, path) in &runtimes {
        let root = tmp.path().join(format!("root-{name}"));
        std::fs::create_dir_all(&root).expect("root");
        let mut cycles = Vec::new();
        let mut starts = Vec::new();
        for i in 0..WARMUP + ITERATIONS {
            let s = once(path, &root, &b, &format!("bench-{i}"));
            if i >= WARMUP {
                cycles.push(s.cycle);
                starts.push(s.start);
            }
        }
        results.push((name.to_string(), median(cycles), median(starts)));
    }
    println!(
        "{:<14} {:>12} {:>14}",
        "runtime", "cycle (ms)", "create+start"
    );
    for (name, cycle, start) in &results {
        println!(
            "{name:<14} {:>12.2} {:>14.2}",
            cycle.as_secs_f64() * 1e3,
            start.as_secs_f64() * 1e3
        );
    }
    let berth_cycle = results[0].1.as_secs_f64();
    for (name, cycle, _) in results.iter().skip(1) {
        println!(
            "{name} / berth-runtime: {:.2}x",
            cycle.as_secs_f64() / berth_cycle
        );
    }
}
