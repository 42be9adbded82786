//! The OCI lifecycle of `/bin/true` in a busybox bundle, timed for berth-runtime, Debian's runc and crun in
//! the same run, next to the bare kernel cost of a namespaced fork + exec. Run as root, best through
//! `scripts/bench-runtime` (release build in target/bench); `cargo bench --bench lifecycle` works too.
//!
//! Measured per runtime, each run as a separate process the way containerd's shim runs them:
//! - full cycle: `create` + `start` + wait for the container to exit + `delete`;
//! - create → first instruction: from spawning `create` to the container's first instruction, which is
//!   the start of a `write` of one byte to a pipe the benchmark holds (a tiny static probe program run
//!   in place of /bin/true); `start` is spawned as soon as `create` returned;
//! - create + start: both commands run to completion.
//!
//! berth-runtime also runs as a library, as the shim uses it: from this process, made multithreaded
//! with idle threads, so create goes through the runtime helper; start and delete run in-process
//! (support/library.rs). Its create → first instruction is from calling create to the probe's byte. A
//! second library row has the helper started ahead of each create, as a shim that calls
//! `helper::prestart` gets it: the library starts the next spare, at the lowest priority, as each call
//! returns. Every iteration times all runtimes' full cycles first and then all their first
//! instructions, so other runtimes' turns pass between two creates of that row, as other work does
//! between a shim's containers, and the create finds its spare ready.
//!
//! The runtimes take turns within every iteration, so a noisy neighbour on a shared machine hits all of
//! them alike. Moving a process into v1 cgroups by pid waits for an RCU grace period (5-10 ms here)
//! unless another move happened within the last one: each timed operation is preceded by a move of an
//! idle process (`support::Primer`), so all find that wait gone, as on a host that keeps starting
//! containers; `--quiet-host` times them after 100 ms without one instead, and the report adds what the
//! move costs on a quiet host.
//!
//! crun refuses this host's hybrid cgroup layout, so everything runs in a private mount namespace with
//! /sys/fs/cgroup/unified unmounted, where all three see plain cgroup v1. State roots and bundles are on
//! a tmpfs there, as containerd keeps them under /run. The benchmark is a subreaper: each container's
//! init is reparented to it and waited for directly.

#[path = "support/mod.rs"]
mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WARMUP: usize = 3;
/// The rows of berth-runtime called as a library from a multithreaded process: a helper spawned per
/// create, and one started ahead of each create (`helper::prestart`).
const LIBRARY: &str = "berth-runtime library (threaded caller)";
const LIBRARY_WARM: &str = "berth-runtime library, helper prestarted";

struct Options {
    iterations: usize,
    berth: PathBuf,
    /// Only the runtimes named here (comma-separated `--only`); berth-runtime always runs.
    only: Option<Vec<String>>,
    /// `--quiet-host`: 100 ms without any cgroup move before each timed operation instead of a move
    /// (see `support::Primer`), so every start pays the wait of a first container on a quiet host.
    quiet: bool,
}

/// `--iterations N`, `--runtime PATH` (default: $BERTH_RUNTIME_BIN, else the binary cargo built),
/// `--only crun,runc` and `--quiet-host`; anything else (cargo passes `--bench`) is ignored.
fn options() -> Options {
    let mut o = Options {
        only: None,
        iterations: 50,
        quiet: false,
        berth: std::env::var_os("BERTH_RUNTIME_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth-runtime"))),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iterations" => {
                o.iterations = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .expect("--iterations takes a positive number")
            }
            "--runtime" => o.berth = args.next().expect("--runtime takes a path").into(),
            "--quiet-host" => o.quiet = true,
            "--only" => {
                o.only = Some(
                    args.next()
                        .expect("--only takes runtime names")
                        .split(',')
                        .map(str::to_string)
                        .collect(),
                )
            }
            _ => {}
        }
    }
    o
}

/// Runs a command to completion. Not `output()`: a created container's init inherits the pipes and
/// would keep them open.
fn run(cmd: &mut Command) {
    let status = cmd.stdin(Stdio::null()).status().expect("spawn");
    assert!(status.success(), "{cmd:?} failed");
}

fn private_cgroup_view() {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare mount namespace");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / private");
    let _ = umount2("/sys/fs/cgroup/unified", MntFlags::MNT_DETACH);
}

/// A busybox rootfs with the probe beside it, and two bundles on it: `/bin/true` and the probe.
fn bundles(dir: &Path, berth: &Path) -> (PathBuf, PathBuf, PathBuf, bool) {
    let rootfs = dir.join("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).expect("rootfs");
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is needed");
    for applet in ["true", "sh", "echo"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
    }
    let probe = support::first_write_probe();
    let probe_args = match &probe {
        Some(elf) => {
            std::fs::write(bin.join("first-write"), elf).expect("write probe");
            std::fs::set_permissions(
                bin.join("first-write"),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .expect("chmod probe");
            serde_json::json!(["/bin/first-write"])
        }
        None => serde_json::json!(["/bin/echo", "-n", "x"]),
    };
    let make = |name: &str, args: serde_json::Value| {
        let b = dir.join(name);
        std::fs::create_dir_all(&b).expect("bundle dir");
        run(Command::new(berth).arg("spec").arg("--bundle").arg(&b));
        let path = b.join("config.json");
        let mut c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("json");
        c["process"]["args"] = args;
        c["root"]["path"] = serde_json::json!(rootfs);
        // A spec all three accept: runc and crun expect 1.0.x versions they know.
        c["ociVersion"] = serde_json::json!("1.0.2");
        std::fs::write(&path, serde_json::to_vec(&c).expect("json")).expect("write config");
        b
    };
    let t = make("bundle-true", serde_json::json!(["/bin/true"]));
    let p = make("bundle-probe", probe_args);
    (t, p, bin.join("busybox"), probe.is_some())
}

struct Runtime {
    name: String,
    path: PathBuf,
    root: PathBuf,
    /// Set for the library row: the runtime is called in-process, `path` is its helper binary.
    library: Option<support::library::Library>,
    cycle: Vec<Duration>,
    create_start: Vec<Duration>,
    first: Vec<Duration>,
}

impl Runtime {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.path);
        c.arg("--root").arg(&self.root);
        c
    }

    fn create(&self, bundle: &Path, id: &str, stdout: Stdio) -> Command {
        let mut c = self.cmd();
        c.args(["create", "--bundle"])
            .arg(bundle)
            .arg("--pid-file")
            .arg(self.root.join(format!("{id}.pid")))
            .arg(id)
            .stdout(stdout);
        c
    }

    fn wait_and_delete(&self, id: &str) {
        let pid_file = self.root.join(format!("{id}.pid"));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        run(self.cmd().args(["delete", id]));
        let _ = std::fs::remove_file(pid_file);
    }

    /// One full cycle of `bundle`; returns (cycle, create + start).
    fn cycle(&self, bundle: &Path, id: &str) -> (Duration, Duration) {
        if let Some(lib) = &self.library {
            return lib.cycle(bundle, id);
        }
        let t0 = Instant::now();
        run(&mut self.create(bundle, id, Stdio::null()));
        run(self.cmd().args(["start", id]));
        let started = t0.elapsed();
        self.wait_and_delete(id);
        (t0.elapsed(), started)
    }

    /// create → the probe's first instruction, seen as its byte arriving on the pipe.
    fn first_instruction(&self, bundle: &Path, id: &str) -> Duration {
        if let Some(lib) = &self.library {
            return lib.first_instruction(bundle, id);
        }
        let (rx, tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let mut rx = std::fs::File::from(rx);
        let t0 = Instant::now();
        {
            // The command owns the write end; dropping it leaves the container the only writer.
            let mut create = self.create(bundle, id, Stdio::from(tx));
            run(&mut create);
        }
        let mut start = self
            .cmd()
            .args(["start", id])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn start");
        let mut byte = [0u8; 1];
        let n = rx.read(&mut byte).expect("read probe pipe");
        let first = t0.elapsed();
        assert_eq!(n, 1, "{}: the container wrote nothing", self.name);
        assert!(start.wait().expect("wait start").success(), "start failed");
        self.wait_and_delete(id);
        first
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn version(path: &Path) -> String {
    Command::new(path)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_default()
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("lifecycle benchmark skipped: needs root");
        return;
    }
    let opts = options();
    private_cgroup_view();
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let tmp = tempfile::Builder::new()
        .prefix("brt-bench-")
        .tempdir()
        .expect("tempdir");
    // Only in this mount namespace; unmounted before the directory is removed.
    nix::mount::mount(
        Some("tmpfs"),
        tmp.path(),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("mode=700"),
    )
    .expect("mount tmpfs for bundles and state");
    let (bundle_true, bundle_probe, busybox, exact_probe) = bundles(tmp.path(), &opts.berth);
    let mut runtimes: Vec<Runtime> = [
        ("berth-runtime", opts.berth.clone()),
        (LIBRARY, opts.berth.clone()),
        (LIBRARY_WARM, opts.berth.clone()),
        ("crun", PathBuf::from("/usr/bin/crun")),
        ("runc", PathBuf::from("/usr/sbin/runc")),
    ]
    .into_iter()
    .filter(|(_, p)| p.exists())
    .filter(|(name, _)| {
        name.starts_with("berth-runtime")
            || opts
                .only
                .as_ref()
                .is_none_or(|o| o.iter().any(|n| n == name))
    })
    .map(|(name, path)| {
        let root = tmp.path().join(format!("root-{name}"));
        std::fs::create_dir_all(&root).expect("state root");
        Runtime {
            name: name.into(),
            library: [LIBRARY, LIBRARY_WARM]
                .contains(&name)
                .then(|| support::library::Library::new(&path, &root, name == LIBRARY_WARM)),
            path,
            root,
            cycle: Vec::new(),
            create_start: Vec::new(),
            first: Vec::new(),
        }
    })
    .collect();

    let flags = libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWNS;
    let hierarchies = support::v1_hierarchies();
    let bare = support::Bare::new(&busybox, flags, &[]);
    let bare_cg = support::Bare::new(&busybox, flags, &hierarchies);
    let (mut bare_t, mut bare_cg_t) = (Vec::new(), Vec::new());

    // After the mount namespace is private (unshare(CLONE_NEWNS) applies to the calling thread only).
    let _threads = support::library::Threads::start(4);
    let load_before = loadavg();
    let primer = support::Primer::new(&hierarchies);
    let prime = || match &primer {
        _ if opts.quiet => std::thread::sleep(Duration::from_millis(100)),
        Some(p) => p.prime(),
        None => {}
    };
    for i in 0..WARMUP + opts.iterations {
        let keep = i >= WARMUP;
        for rt in runtimes.iter_mut() {
            prime();
            let (cycle, started) = rt.cycle(&bundle_true, &format!("c{i}"));
            if keep {
                rt.cycle.push(cycle);
                rt.create_start.push(started);
            }
        }
        for rt in runtimes.iter_mut() {
            prime();
            let first = rt.first_instruction(&bundle_probe, &format!("f{i}"));
            if keep {
                rt.first.push(first);
            }
        }
        prime();
        let b = bare.once();
        prime();
        let bc = bare_cg.once();
        if keep {
            bare_t.push(b);
            bare_cg_t.push(bc);
        }
    }
    drop(primer);
    // The cgroup move on a quiet host: after 100 ms without one, as for the first container in a while.
    let cold: Vec<Duration> = (0..if hierarchies.is_empty() || opts.quiet {
        0
    } else {
        10
    })
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            bare_cg.once()
        })
        .collect();
    let load_after = loadavg();
    drop((bare, bare_cg));
    nix::mount::umount2(tmp.path(), nix::mount::MntFlags::MNT_DETACH).expect("unmount tmpfs");
    let bare = BareTimes {
        plain: median(&bare_t),
        cgroups: median(&bare_cg_t),
        cgroups_quiet: (!cold.is_empty()).then(|| median(&cold)),
    };
    report(
        &runtimes,
        &bare,
        hierarchies.len(),
        exact_probe,
        &opts,
        (&load_before, &load_after),
    );
}

/// The bare kernel cost: without and with the cgroup move, and with it on a quiet host.
struct BareTimes {
    plain: Duration,
    cgroups: Duration,
    cgroups_quiet: Option<Duration>,
}

fn report(
    runtimes: &[Runtime],
    bare_times: &BareTimes,
    hierarchies: usize,
    exact_probe: bool,
    opts: &Options,
    load: (&str, &str),
) {
    let (bare, bare_cg) = (bare_times.plain, bare_times.cgroups);
    println!(
        "OCI lifecycle of /bin/true in a busybox bundle (bundles and state on tmpfs, cgroup v1): median of {} (after {WARMUP} warm-up), runtimes taking turns, {}",
        opts.iterations,
        if opts.quiet {
            "each after 100 ms without a cgroup move (--quiet-host: the first container on a quiet host)"
        } else {
            "each right after a cgroup move (a host that keeps starting containers; --quiet-host for a quiet one)"
        }
    );
    for rt in runtimes {
        println!(
            "  {}: {} ({}, {})",
            rt.name,
            rt.path.display(),
            version(&rt.path),
            support::linking(&rt.path)
        );
    }
    println!("  load average before: {}, after: {}", load.0, load.1);
    println!();
    println!("| runtime | full cycle | create → first instruction | create + start | full cycle vs berth-runtime | first instruction vs berth-runtime |");
    println!("|---|---|---|---|---|---|");
    let (b_cycle, b_first) = (median(&runtimes[0].cycle), median(&runtimes[0].first));
    for rt in runtimes {
        let (cycle, first) = (median(&rt.cycle), median(&rt.first));
        println!(
            "| {} | {} | {} | {} | {:.2}x | {:.2}x |",
            rt.name,
            ms(cycle),
            ms(first),
            ms(median(&rt.create_start)),
            cycle.as_secs_f64() / b_cycle.as_secs_f64(),
            first.as_secs_f64() / b_first.as_secs_f64(),
        );
    }
    println!();
    println!("bare kernel cost, no runtime (clone with the bundle's namespaces pid, net, ipc, uts, mount + exec of the bundle's busybox true, waited):");
    println!("  namespaced fork+exec: {}", ms(bare));
    println!(
        "  the same, moved into new cgroups in the {hierarchies} v1 hierarchies before the exec: {}",
        ms(bare_cg)
    );
    if let Some(cold) = bare_times.cgroups_quiet {
        println!(
            "  the same after 100 ms without any cgroup move (the first container on a quiet host: what a runtime that moves its init by pid pays; berth-runtime's init moves itself on v1): {}",
            ms(cold)
        );
    }
    if !exact_probe {
        println!("  (no probe program for this architecture: the first instruction is busybox echo's write)");
    }
    println!();
    println!("targets (issue 4):");
    for rt in runtimes
        .iter()
        .filter(|r| r.name.starts_with("berth-runtime"))
    {
        let (cycle, first) = (median(&rt.cycle), median(&rt.first));
        println!("  {}:", rt.name);
        if let Some(crun) = runtimes.iter().find(|r| r.name == "crun") {
            let ratio = median(&crun.cycle).as_secs_f64() / cycle.as_secs_f64();
            println!(
                "    full cycle at least 1.5x faster than crun: {} (crun {} / {} = {ratio:.2}x)",
                if ratio >= 1.5 { "met" } else { "not met" },
                ms(median(&crun.cycle)),
                ms(cycle)
            );
        }
        // "Close" taken as: the whole container start through the runtime (the runtime's processes,
        // the cgroup move, the rootfs) within twice the kernel's clone + exec of the same namespaces.
        let ratio = first.as_secs_f64() / bare.as_secs_f64();
        println!(
            "    container start close to the bare namespaced fork+exec (create → first instruction within 2x of it): {} ({} = {ratio:.2}x of {}; {:.2}x of {} with the cgroup move)",
            if ratio <= 2.0 { "met" } else { "not met" },
            ms(first),
            ms(bare),
            first.as_secs_f64() / bare_cg.as_secs_f64(),
            ms(bare_cg)
        );
    }
}
