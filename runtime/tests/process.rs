//! The container process as the host hands it over: socket-activation fds and LISTEN_PID, security
//! labels on a host without the module, the time namespace, and the `exec` flags. Needs root; skipped
//! otherwise.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use common::{assert_nothing_left, unique_id, Bundle, Runtime};
use serde_json::json;

const PIPED: &str = "through the pipe";

/// A pipe already holding `PIPED` and closed for writing: the reader sees the text, then EOF.
fn filled_pipe() -> OwnedFd {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    nix::unistd::write(&w, format!("{PIPED}\n").as_bytes()).expect("write pipe");
    r
}

/// Runs `sh -c script` with a filled pipe as its fd 3 (the one fd the test hands down on purpose).
fn sh_with_fd3(script: &str) -> Output {
    let pipe = filled_pipe();
    let raw = pipe.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script);
    // SAFETY: between fork and exec the closure only calls dup2/fcntl, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("sh");
    drop(pipe);
    out
}

fn run_line(rt: &Runtime, b: &Bundle, id: &str, extra: &str) -> String {
    format!(
        "exec {} --root {} run {extra} -b {} {id}",
        common::BIN,
        rt.root.path().display(),
        b.path().display()
    )
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SHOW_LISTEN: &str =
    "echo pid=$$ listen_pid=$LISTEN_PID listen_fds=$LISTEN_FDS; cat <&3 2>/dev/null || echo no-fd3";

#[test]
fn listen_pid_names_the_init_that_gets_the_fds() {
    require_root!();
    let rt = Runtime::new();
    // The spec carries LISTEN_FDS (and a stale LISTEN_PID); the fd comes through --preserve-fds.
    let b = Bundle::new(&["sh", "-c", SHOW_LISTEN]);
    b.edit(|c| {
        let env = c["process"]["env"].as_array_mut().expect("env");
        env.push(json!("LISTEN_FDS=1"));
        env.push(json!("LISTEN_PID=4242"));
    });
    let out = sh_with_fd3(&run_line(&rt, &b, &unique_id("listen"), "--preserve-fds 1"));
    assert_eq!(
        stdout_ok(&out),
        format!("pid=1 listen_pid=1 listen_fds=1\n{PIPED}\n")
    );

    // Sharing the host's pid namespace, the init is not pid 1: LISTEN_PID is its real pid.
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
        ns.retain(|n| n["type"] != "pid");
    });
    let out = sh_with_fd3(&run_line(
        &rt,
        &b,
        &unique_id("listen-hostpid"),
        "--preserve-fds 1",
    ));
    let text = stdout_ok(&out);
    let first = text.lines().next().expect("a line");
    let pid = first
        .strip_prefix("pid=")
        .and_then(|r| r.split(' ').next())
        .expect("pid field");
    assert_ne!(pid, "1", "{text}");
    assert_eq!(
        text,
        format!("pid={pid} listen_pid={pid} listen_fds=1\n{PIPED}\n")
    );
}

#[test]
fn socket_activated_runtime_passes_its_fds_on() {
    require_root!();
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", SHOW_LISTEN]);
    // runc's rule: the runtime's own LISTEN_FDS counts when LISTEN_PID is the runtime ($$ survives exec).
    let run = run_line(&rt, &b, &unique_id("activated"), "");
    let out = sh_with_fd3(&format!("LISTEN_PID=$$ LISTEN_FDS=1 {run}"));
    assert_eq!(
        stdout_ok(&out),
        format!("pid=1 listen_pid=1 listen_fds=1\n{PIPED}\n")
    );
    // Variables meant for another process pass nothing: no env, and fd 3 is closed before exec.
    let run = run_line(&rt, &b, &unique_id("not-activated"), "");
    let out = sh_with_fd3(&format!("LISTEN_PID=1 LISTEN_FDS=1 {run}"));
    assert_eq!(stdout_ok(&out), "pid=1 listen_pid= listen_fds=\nno-fd3\n");
}

#[test]
fn security_labels_follow_what_the_host_runs() {
    require_root!();
    use berth_runtime::process::lsm;
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let bundle = b.path().to_str().expect("utf-8").to_string();

    b.edit(|c| c["process"]["apparmorProfile"] = json!("berth-no-such-profile"));
    let id = unique_id("apparmor");
    let err = rt.fails(&["create", "-b", &bundle, &id]);
    if lsm::apparmor_enabled() {
        // The profile is written for the exec and the kernel refuses an unknown one.
        assert!(err.contains("apply apparmor profile"), "{err}");
    } else {
        assert!(
            err.contains("apparmor profile \"berth-no-such-profile\" is specified in config, but apparmor is disabled"),
            "{err}"
        );
    }
    assert_nothing_left(&rt, &id);

    // Unconfined is what a host without AppArmor gives anyway.
    b.edit(|c| c["process"]["apparmorProfile"] = json!("unconfined"));
    rt.ok(&["run", "-b", &bundle, &unique_id("unconfined")]);
    b.edit(|c| {
        c["process"]
            .as_object_mut()
            .expect("process")
            .remove("apparmorProfile");
    });

    if lsm::selinux_enabled() {
        eprintln!("skipped the selinux refusals: this host runs SELinux");
        return;
    }
    b.edit(|c| c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0"));
    let id = unique_id("selinux");
    let err = rt.fails(&["create", "-b", &bundle, &id]);
    assert!(
        err.contains("selinux label \"system_u:system_r:container_t:s0\" is specified in config, but selinux is disabled"),
        "{err}"
    );
    assert_nothing_left(&rt, &id);
    b.edit(|c| {
        c["process"]
            .as_object_mut()
            .expect("process")
            .remove("selinuxLabel");
        c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    });
    let id = unique_id("mountlabel");
    let err = rt.fails(&["create", "-b", &bundle, &id]);
    assert!(err.contains("linux.mountLabel"), "{err}");
    assert_nothing_left(&rt, &id);
}

#[test]
fn time_namespace_shifts_the_clocks_for_init_and_exec() {
    require_root!();
    if !std::path::Path::new("/proc/self/timens_offsets").exists() {
        eprintln!("skipped: the kernel has no time namespaces");
        return;
    }
    const TEN_YEARS: u64 = 10 * 365 * 86400;
    let b = Bundle::new(&["sleep", "300"]);
    let rt = Runtime::new();
    let bundle = b.path().to_str().expect("utf-8").to_string();
    // Offsets need a new time namespace to go into.
    b.edit(|c| c["linux"]["timeOffsets"] = json!({"boottime": {"secs": TEN_YEARS}}));
    let id = unique_id("timens-bad");
    let err = rt.fails(&["create", "-b", &bundle, &id]);
    assert!(err.contains("time namespace offsets specified"), "{err}");
    assert_nothing_left(&rt, &id);

    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({
            "boottime": {"secs": TEN_YEARS},
            "monotonic": {"secs": 86400, "nanosecs": 5}
        });
    });
    let id = unique_id("timens");
    rt.ok(&["run", "-d", "-b", &bundle, &id]);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid");
    let init_ns = std::fs::read_link(format!("/proc/{pid}/ns/time")).expect("init time ns");
    let host_ns = std::fs::read_link("/proc/self/ns/time").expect("own time ns");
    assert_ne!(init_ns, host_ns, "init is in the host's time namespace");
    let offsets = std::fs::read_to_string(format!("/proc/{pid}/timens_offsets")).expect("offsets");
    let clocks: Vec<Vec<&str>> = offsets
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let ten_years = TEN_YEARS.to_string();
    assert!(
        clocks.contains(&vec!["boottime", ten_years.as_str(), "0"])
            && clocks.contains(&vec!["monotonic", "86400", "5"]),
        "{offsets}"
    );
    let out = rt.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "readlink /proc/self/ns/time; cat /proc/uptime",
    ]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next().expect("ns line"),
        init_ns.to_str().expect("utf-8"),
        "exec did not join the time namespace"
    );
    let uptime: f64 = lines
        .next()
        .and_then(|l| l.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("uptime");
    assert!(uptime >= TEN_YEARS as f64, "uptime {uptime} not shifted");
    rt.ok(&["delete", "--force", &id]);
    assert_nothing_left(&rt, &id);
}

#[test]
fn exec_flags_shape_the_process() {
    require_root!();
    let b = Bundle::new(&["sleep", "300"]);
    b.edit(|c| {
        // The init's socket-activation variables must not be taken by exec'd processes as theirs.
        let env = c["process"]["env"].as_array_mut().expect("env");
        env.push(json!("LISTEN_FDS=1"));
    });
    let rt = Runtime::new();
    let id = unique_id("exec-flags");
    rt.ok(&["run", "-d", "-b", b.path().to_str().expect("utf-8"), &id]);

    assert_eq!(
        rt.ok(&["exec", "--cwd", "/bin", &id, "sh", "-c", "pwd"]),
        "/bin\n"
    );
    let err = rt.fails(&["exec", "--cwd", "bin", &id, "true"]);
    assert!(err.contains("not an absolute path"), "{err}");

    let process = rt.root.path().join("process.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "id; pwd; echo $FOO; umask"],
            "env": ["PATH=/bin", "FOO=from-process-file"],
            "cwd": "/bin",
            "user": {"uid": 1234, "gid": 5678, "umask": 63}
        }))
        .expect("json"),
    )
    .expect("process file");
    assert_eq!(
        rt.ok(&["exec", "--process", process.to_str().expect("utf-8"), &id]),
        "uid=1234 gid=5678\n/bin\nfrom-process-file\n0077\n"
    );

    let out = rt.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo $$; echo $LISTEN_FDS; echo $LISTEN_PID",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[1], "1", "the env is the container's: {out}");
    assert_ne!(
        lines[0], lines[2],
        "exec'd process was told the fds are its own: {out}"
    );

    // --preserve-fds hands the caller's fd 3 to the exec'd process too.
    let script = format!(
        "exec {} --root {} exec --preserve-fds 1 {id} sh -c 'cat <&3'",
        common::BIN,
        rt.root.path().display()
    );
    assert_eq!(stdout_ok(&sh_with_fd3(&script)), format!("{PIPED}\n"));
    rt.ok(&["delete", "--force", &id]);
    assert_nothing_left(&rt, &id);
}

#[test]
fn time_namespace_inside_a_user_namespace_with_a_foreground_run() {
    require_root!();
    if !std::path::Path::new("/proc/self/timens_offsets").exists() {
        eprintln!("skipped: the kernel has no time namespaces");
        return;
    }
    let b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map; cat /proc/uptime; exit 7",
    ]);
    b.map_root_in_user_namespace();
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1_000_000_000}});
    });
    let rt = Runtime::new();
    let id = unique_id("timens-userns");
    // In the foreground: the init is forked by stage 1, and run must still wait for it.
    let out = rt.cmd(&["run", "-b", b.path().to_str().expect("utf-8"), &id]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines();
    let map: Vec<&str> = lines.next().expect("uid_map").split_whitespace().collect();
    assert_eq!(map, ["0", "100000", "65536"]);
    let uptime: f64 = lines
        .next()
        .and_then(|l| l.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("uptime");
    assert!(uptime >= 1e9, "uptime {uptime} not shifted");
    assert_nothing_left(&rt, &id);
}

/// `Cpus_allowed_list` of the process whose /proc/PID/status this is.
fn cpus_allowed(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in {status:?}"))
}

/// The CPUs a container's process may use, run by a thread pinned to `pin` (none: unpinned).
fn container_cpus(pin: Option<usize>, cpuset: Option<&str>) -> String {
    let b = Bundle::new(&["cat", "/proc/self/status"]);
    if let Some(cpus) = cpuset {
        b.edit(|c| c["linux"]["resources"]["cpu"] = json!({ "cpus": cpus }));
    }
    let id = unique_id("cpus");
    let status = std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(cpu) = pin {
                let mut one = nix::sched::CpuSet::new();
                one.set(cpu).expect("cpu number");
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &one)
                    .expect("pin the thread that runs the runtime");
            }
            let rt = Runtime::new();
            rt.ok(&["run", "-b", b.path().to_str().expect("utf-8"), &id])
        })
        .join()
        .expect("runtime thread")
    });
    cpus_allowed(&status)
}

/// Create moves a new init off the runtime's CPU until it is in its cgroups (process::placement); the
/// container still ends up with exactly the CPUs it would otherwise have: the runtime's, those of a
/// pinned runtime, or its cpuset's.
#[test]
fn the_container_gets_the_runtimes_cpus_or_its_cpuset() {
    require_root!();
    let own = cpus_allowed(&std::fs::read_to_string("/proc/self/status").expect("status"));
    assert_eq!(container_cpus(None, None), own);
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    if online < 2 {
        return;
    }
    assert_eq!(container_cpus(Some(1), None), "1");
    if common::cgroup_v1() {
        assert_eq!(container_cpus(None, Some("1")), "1");
        assert_eq!(container_cpus(None, Some("0")), "0");
    }
}
