//! The runc-style lifecycle on a busybox bundle, checked from inside the container and from the host.
//! Needs root (as CI runs); skipped otherwise.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use common::shell::sh_ok;
use common::{host_mounts_mention, memory_cgroup, unique_id, wait_status, Bundle, Runtime};

#[test]
fn run_applies_identity_and_isolation() {
    require_root!();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "hostname; id; grep -E '^(CapBnd|CapEff|CapInh|NoNewPrivs)' /proc/self/status; ulimit -n; cat /proc/self/mountinfo",
    ]);
    let rt = Runtime::new();
    let id = unique_id("identity");
    let out = rt.ok(&["run", "--bundle", b.path().to_str().expect("utf-8"), &id]);
    assert!(out.starts_with("berth\n"), "hostname: {out}");
    assert!(out.contains("uid=0 gid=0"), "{out}");
    // The default spec's three capabilities: KILL (5), NET_BIND_SERVICE (10), AUDIT_WRITE (29).
    assert!(out.contains("CapBnd:\t0000000020000420"), "{out}");
    assert!(out.contains("CapInh:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("\n1024\n"), "nofile rlimit: {out}");
    assert!(out.contains(" / ro,"), "read-only root: {out}");
    assert!(
        out.contains(" /proc/keys ") && out.contains(" /proc/sys ro,"),
        "masked/readonly: {out}"
    );
    // The spec's `cgroup` mount (ro,nosuid,noexec,nodev): v1 is a tmpfs, read-only also as a
    // filesystem, holding a bind of the container's own directory per hierarchy, each with the mount's
    // options.
    if common::cgroup_v1() {
        let cgroup_mounts: Vec<&str> = out
            .lines()
            .filter(|l| l.contains(" /sys/fs/cgroup"))
            .collect();
        assert!(
            cgroup_mounts.len() > 1,
            "tmpfs and a bind per hierarchy: {out}"
        );
        for m in &cgroup_mounts {
            let mount_options = m.split(' ').nth(5).expect("mount options field");
            for o in ["ro", "nosuid", "nodev", "noexec"] {
                assert!(mount_options.split(',').any(|x| x == o), "{o}: {m}");
            }
        }
        let tmpfs = cgroup_mounts
            .iter()
            .find(|m| m.contains(" /sys/fs/cgroup ") && m.contains(" - tmpfs "))
            .unwrap_or_else(|| panic!("cgroup tmpfs: {out}"));
        assert!(tmpfs.ends_with(" ro,mode=755"), "{tmpfs}");
        assert!(
            cgroup_mounts
                .iter()
                .any(|m| m.contains(" /sys/fs/cgroup/memory ")
                    && m.contains(&format!("/berth-runtime/{id} "))),
            "the container's memory cgroup: {out}"
        );
    }
    assert!(!rt.state_dir(&id).exists(), "run must delete its state");
    assert!(!memory_cgroup(&id).exists(), "run must remove its cgroup");
    assert!(
        !host_mounts_mention(&b.rootfs()),
        "no mount of the rootfs is left on the host"
    );
}

/// Process `pid` is in container `id`'s cgroup in every v1 controller hierarchy.
fn assert_in_own_cgroups(pid: i64, id: &str) {
    if !common::cgroup_v1() {
        return;
    }
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let v1: Vec<&str> = cgroups
        .lines()
        .filter(|l| !l.starts_with("0::") && !l.contains(":name="))
        .collect();
    assert!(!v1.is_empty(), "{cgroups}");
    for l in v1 {
        assert!(l.ends_with(&format!(":/berth-runtime/{id}")), "{l}");
    }
}

#[test]
fn run_returns_the_exit_status() {
    require_root!();
    let b = Bundle::new(&["sh", "-c", "exit 7"]);
    let rt = Runtime::new();
    let out = rt.cmd(&[
        "run",
        "-b",
        b.path().to_str().expect("utf-8"),
        &unique_id("exit"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn create_start_kill_delete() {
    require_root!();
    let b = Bundle::new(&["sleep", "300"]);
    let rt = Runtime::new();
    let id = unique_id("lifecycle");
    rt.ok(&["create", "--bundle", b.path().to_str().expect("utf-8"), &id]);
    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    let pid = st["pid"].as_i64().expect("pid");
    assert!(pid > 0);
    for ns in ["pid", "mnt", "uts", "ipc", "net"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).expect("host ns");
        // The init's pid namespace is its own; /proc/PID/ns/pid shows the one it lives in.
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).expect("container ns");
        assert_ne!(host, theirs, "{ns} namespace is not private");
    }
    // Created means in its cgroups already (on v1 init moves itself).
    assert_in_own_cgroups(pid, &id);
    rt.ok(&["start", &id]);
    assert_eq!(rt.state(&id)["status"], "running");
    let err = rt.fails(&["start", &id]);
    assert!(err.contains("cannot start"), "{err}");
    let pids: Vec<i64> =
        serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).expect("ps json");
    assert_eq!(pids, vec![pid]);
    let err = rt.fails(&["delete", &id]);
    assert!(err.contains("not stopped"), "{err}");
    let list = rt.ok(&["list"]);
    assert!(list.contains(&id) && list.contains("running"), "{list}");
    rt.ok(&["kill", &id, "KILL"]);
    wait_status(&rt, &id, "stopped");
    rt.ok(&["delete", &id]);
    assert!(!rt.state_dir(&id).exists());
    assert!(!memory_cgroup(&id).exists());
    assert!(!host_mounts_mention(&b.rootfs()));
    let err = rt.fails(&["state", &id]);
    assert!(err.contains("does not exist"), "{err}");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn created_container_can_be_deleted_and_force_kills_running() {
    require_root!();
    let b = Bundle::new(&["sleep", "300"]);
    let rt = Runtime::new();
    let id = unique_id("force");
    rt.ok(&["create", "-b", b.path().to_str().expect("utf-8"), &id]);
    rt.ok(&["delete", &id]);
    assert!(!rt.state_dir(&id).exists());
    rt.ok(&[
        "run",
        "--detach",
        "-b",
        b.path().to_str().expect("utf-8"),
        &id,
    ]);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid");
    rt.ok(&["delete", "--force", &id]);
    assert!(!rt.state_dir(&id).exists());
    assert!(!memory_cgroup(&id).exists());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "init {pid} survived: {stat}"
    );
}

#[test]
fn user_groups_and_capabilities_follow_the_spec() {
    require_root!();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "id; grep -E '^Cap(Eff|Prm|Amb)' /proc/self/status",
    ]);
    b.edit(|c| {
        c["process"]["user"] =
            serde_json::json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20]});
        c["process"]["capabilities"] = serde_json::json!({
            "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
            "permitted": ["CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"]
        });
    });
    let rt = Runtime::new();
    let out = rt.ok(&[
        "run",
        "-b",
        b.path().to_str().expect("utf-8"),
        &unique_id("user"),
    ]);
    assert!(out.contains("uid=1000 gid=1001 groups=10,20"), "{out}");
    // Only NET_BIND_SERVICE (bit 10) survives exec, through the ambient set.
    assert!(out.contains("CapEff:\t0000000000000400"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000400"), "{out}");
}

#[test]
fn cgroup_limits_are_applied() {
    require_root!();
    require_cgroup_v1!();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max",
    ]);
    b.edit(|c| {
        c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 67108864});
        c["linux"]["resources"]["pids"] = serde_json::json!({"limit": 42});
        c["linux"]["resources"]["cpu"] = serde_json::json!({"shares": 256});
    });
    let rt = Runtime::new();
    let id = unique_id("cgroup");
    let out = rt.ok(&["run", "-b", b.path().to_str().expect("utf-8"), &id]);
    assert_eq!(out, "67108864\n42\n");
    assert!(!memory_cgroup(&id).exists());
}

#[test]
fn runtime_fds_do_not_leak_into_the_container() {
    require_root!();
    let b = Bundle::new(&["ls", "/proc/self/fd"]);
    let rt = Runtime::new();
    // fd 7 is opened without close-on-exec by the caller, the way a careless parent leaks one.
    let script = format!(
        "exec 7</etc/hostname; exec {} --root {} run -b {} {}",
        common::BIN,
        rt.root.path().display(),
        b.path().display(),
        unique_id("fds")
    );
    let fds: Vec<String> = sh_ok(&script)
        .split_whitespace()
        .map(String::from)
        .collect();
    // ls itself holds one descriptor (3) for the directory it reads.
    assert_eq!(fds, ["0", "1", "2", "3"], "fds inside: {fds:?}");
}

#[test]
fn runtime_binary_is_a_sealed_copy_while_inside_the_container() {
    require_root!();
    let b = Bundle::new(&["true"]);
    let rt = Runtime::new();
    let id = unique_id("exeseal");
    let before = std::fs::read(common::BIN).expect("read binary");
    rt.ok(&["create", "-b", b.path().to_str().expect("utf-8"), &id]);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid");
    // Until start, the init is the runtime itself: its exe must not be the host file, and no way of
    // opening it for writing may work (a read-only detached mount or a sealed memfd).
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
    let host = std::fs::canonicalize(common::BIN).expect("binary path");
    assert_ne!(exe, host, "init runs the host binary directly");
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/exe"));
    let err = write.expect_err("the runtime image behind /proc/PID/exe is writable");
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::EROFS) | Some(libc::EPERM) | Some(libc::ETXTBSY)
        ),
        "{err}"
    );
    let path = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(format!("/proc/{pid}/exe"))
        .expect("O_PATH open");
    let reopen = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", path.as_raw_fd()));
    assert!(reopen.is_err(), "reopening the exe for writing worked");
    rt.ok(&["delete", &id]);
    assert_eq!(std::fs::read(common::BIN).expect("read binary"), before);
}

#[test]
fn exec_joins_the_container() {
    require_root!();
    let b = Bundle::new(&["sleep", "300"]);
    let rt = Runtime::new();
    let id = unique_id("exec");
    rt.ok(&["run", "-d", "-b", b.path().to_str().expect("utf-8"), &id]);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid");
    let out = rt.cmd(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; readlink /proc/self/ns/mnt; id; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).expect("mnt ns");
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["berth", mnt.to_str().expect("utf-8"), "uid=0 gid=0"]
    );
    let out = rt.ok(&[
        "exec",
        "--user",
        "1000:1001",
        "--env",
        "X=y",
        &id,
        "sh",
        "-c",
        "id; echo $X",
    ]);
    assert_eq!(out, "uid=1000 gid=1001\ny\n");
    let err = rt.fails(&["exec", &id, "no-such-program"]);
    assert!(err.contains("executable file not found"), "{err}");
    // A detached exec writes its pid and lives in the container's cgroup.
    let pid_file = rt.root.path().join("exec.pid");
    rt.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        &id,
        "sleep",
        "300",
    ]);
    let epid: i64 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .parse()
        .expect("number");
    let pids: Vec<i64> = serde_json::from_str(&rt.ok(&["ps", "-f", "json", &id])).expect("ps json");
    assert!(pids.contains(&epid) && pids.contains(&pid), "{pids:?}");
    assert_in_own_cgroups(epid, &id);
    rt.ok(&["delete", "--force", &id]);
    let stat = std::fs::read_to_string(format!("/proc/{epid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "exec'd process survived: {stat}"
    );
}

#[test]
fn repeated_cycles_leave_nothing_behind() {
    require_root!();
    let b = Bundle::new(&["true"]);
    let rt = Runtime::new();
    for i in 0..30 {
        let id = format!("{}-{i}", unique_id("cycle"));
        rt.ok(&["create", "-b", b.path().to_str().expect("utf-8"), &id]);
        rt.ok(&["start", &id]);
        wait_status(&rt, &id, "stopped");
        rt.ok(&["delete", &id]);
        assert!(!memory_cgroup(&id).exists());
    }
    // Host-wide counters are not compared: other work on the machine mounts and opens files too.
    assert_eq!(
        std::fs::read_dir(rt.root.path()).expect("root").count(),
        0,
        "state left in the root"
    );
    assert!(
        !host_mounts_mention(b.path()),
        "a mount of the bundle reached the host"
    );
}
