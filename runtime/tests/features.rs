//! Features beyond the basic lifecycle: pause/resume, joining namespaces by path, pid files, json logs.
//! Needs root; skipped otherwise.

mod common;

use common::shell::{run_detached_logged, sh_ok, wait_for_log};
use common::{
    read_until, receive_master, unified_cgroup2, unique_id, wait_status, Bundle, Runtime,
};
use serde_json::json;

#[test]
fn pause_and_resume_use_the_freezer() {
    require_root!();
    require_cgroup_v1!();
    let b = Bundle::new(&["sleep", "300"]);
    let rt = Runtime::new();
    let id = unique_id("pause");
    rt.ok(&["run", "-d", "-b", b.path().to_str().expect("utf-8"), &id]);
    let err = rt.fails(&["resume", &id]);
    assert!(err.contains("cannot resume a running container"), "{err}");
    rt.ok(&["pause", &id]);
    assert_eq!(rt.state(&id)["status"], "paused");
    let freezer = format!("/sys/fs/cgroup/freezer/berth-runtime/{id}/freezer.state");
    assert_eq!(
        std::fs::read_to_string(&freezer).expect("freezer").trim(),
        "FROZEN"
    );
    rt.ok(&["resume", &id]);
    assert_eq!(rt.state(&id)["status"], "running");
    rt.ok(&["pause", &id]);
    // A forced delete must thaw the container to kill it.
    rt.ok(&["delete", "--force", &id]);
    assert!(!rt.state_dir(&id).exists());
}

#[test]
fn namespaces_are_joined_by_path() {
    require_root!();
    let holder = Bundle::new(&["sleep", "300"]);
    let rt = Runtime::new();
    let hid = unique_id("nsholder");
    rt.ok(&[
        "run",
        "-d",
        "-b",
        holder.path().to_str().expect("utf-8"),
        &hid,
    ]);
    let hpid = rt.state(&hid)["pid"].as_i64().expect("pid");
    let b = Bundle::new(&[
        "sh",
        "-c",
        "readlink /proc/self/ns/net; readlink /proc/self/ns/uts; hostname",
    ]);
    b.edit(|c| {
        c["hostname"] = json!(null);
        let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
        for n in ns.iter_mut() {
            if n["type"] == "network" || n["type"] == "uts" {
                n["path"] = json!(format!(
                    "/proc/{hpid}/ns/{}",
                    if n["type"] == "network" { "net" } else { "uts" }
                ));
            }
        }
    });
    let out = rt.ok(&[
        "run",
        "-b",
        b.path().to_str().expect("utf-8"),
        &unique_id("nsjoiner"),
    ]);
    let want_net = std::fs::read_link(format!("/proc/{hpid}/ns/net")).expect("net ns");
    let want_uts = std::fs::read_link(format!("/proc/{hpid}/ns/uts")).expect("uts ns");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], want_net.to_str().expect("utf-8"));
    assert_eq!(lines[1], want_uts.to_str().expect("utf-8"));
    assert_eq!(
        lines[2], "berth",
        "the joined uts namespace keeps the holder's hostname"
    );
    rt.ok(&["kill", &hid, "KILL"]);
    wait_status(&rt, &hid, "stopped");
    rt.ok(&["delete", &hid]);
}

#[test]
fn pid_file_and_json_log() {
    require_root!();
    let b = Bundle::new(&["sleep", "300"]);
    let rt = Runtime::new();
    let id = unique_id("pidfile");
    let pid_file = rt.root.path().join("init.pid");
    rt.ok(&[
        "create",
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        "-b",
        b.path().to_str().expect("utf-8"),
        &id,
    ]);
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .parse()
        .expect("number");
    assert_eq!(rt.state(&id)["pid"].as_i64(), Some(pid));
    rt.ok(&["delete", &id]);

    let log = rt.root.path().join("log.json");
    b.edit(|c| c["linux"]["sysctl"] = json!({"vm.swappiness": "1"}));
    rt.fails(&[
        "--log",
        log.to_str().expect("utf-8"),
        "--log-format",
        "json",
        "create",
        "-b",
        b.path().to_str().expect("utf-8"),
        &id,
    ]);
    let line = std::fs::read_to_string(&log).expect("log");
    let entry: serde_json::Value =
        serde_json::from_str(line.lines().last().expect("a line")).expect("json line");
    assert_eq!(entry["level"], "error");
    assert!(
        entry["msg"]
            .as_str()
            .expect("msg")
            .contains("vm.swappiness"),
        "{entry}"
    );
}

#[test]
fn umask_readonly_and_rlimits_inside() {
    require_root!();
    let b = Bundle::new(&["sh", "-c", "umask; ulimit -Sn; ulimit -Hn; touch /x 2>&1 || echo rofs; echo 1 > /proc/sys/kernel/hostname 2>&1 || echo roproc"]);
    b.edit(|c| {
        c["process"]["user"]["umask"] = json!(0o027);
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]);
    });
    let rt = Runtime::new();
    let out = rt.ok(&[
        "run",
        "-b",
        b.path().to_str().expect("utf-8"),
        &unique_id("umask"),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["0027", "100", "200"], "{out}");
    assert!(out.contains("rofs"), "root must be read-only: {out}");
    assert!(out.contains("roproc"), "/proc/sys must be read-only: {out}");
}

#[test]
fn terminal_goes_through_the_console_socket() {
    require_root!();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "tty; [ -t 0 ] && echo interactive; exec sleep 300",
    ]);
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 40, "width": 100});
    });
    let rt = Runtime::new();
    let id = unique_id("tty");
    let sock = rt.root.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind console socket");
    let receiver = std::thread::spawn(move || receive_master(listener));
    let err = rt.fails(&[
        "run",
        "-d",
        "-b",
        b.path().to_str().expect("utf-8"),
        &format!("{id}-nosock"),
    ]);
    assert!(err.contains("console-socket"), "{err}");
    rt.ok(&[
        "run",
        "-d",
        "--console-socket",
        sock.to_str().expect("utf-8"),
        "-b",
        b.path().to_str().expect("utf-8"),
        &id,
    ]);
    let master = receiver.join().expect("receiver thread");
    let out = read_until(master, "interactive");
    assert!(
        out.contains("/dev/pts/0") && out.contains("interactive"),
        "{out:?}"
    );

    // exec with a terminal gets its own pty from the container's devpts.
    let listener =
        std::os::unix::net::UnixListener::bind(rt.root.path().join("exec.sock")).expect("bind");
    let receiver = std::thread::spawn(move || receive_master(listener));
    let exec_sock = rt.root.path().join("exec.sock");
    rt.ok(&[
        "exec",
        "-d",
        "-t",
        "--console-socket",
        exec_sock.to_str().expect("utf-8"),
        &id,
        "sh",
        "-c",
        "tty; stty size; sleep 300",
    ]);
    let out = read_until(receiver.join().expect("receiver thread"), "/dev/pts/1");
    assert!(out.contains("/dev/pts/1"), "{out:?}");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn seccomp_filter_applies_to_init_and_exec() {
    require_root!();
    let b = Bundle::new(&["sh", "-c", "grep '^Seccomp:' /proc/self/status; mkdir /tmp/d 2>&1; chmod 777 /tmp/f 2>&1; chmod 755 /tmp/f && echo chmod-ok; exec sleep 300"]);
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["mounts"].as_array_mut().expect("mounts").push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        c["process"]["args"][2] = json!(format!("touch /tmp/f; {}", c["process"]["args"][2].as_str().expect("script")));
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"}]},
                {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 2, "value": 511, "op": "SCMP_CMP_EQ"}]},
                {"names": ["no_such_syscall"], "action": "SCMP_ACT_ERRNO"}
            ]
        });
    });
    let rt = Runtime::new();
    let id = unique_id("seccomp");
    let log = run_detached_logged(&rt, &b, &id);
    let out = wait_for_log(&log, "chmod-ok");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(
        out.contains("mkdir: can't create directory '/tmp/d': Operation not permitted"),
        "{out}"
    );
    assert!(
        out.contains("chmod: /tmp/f: Operation not permitted"),
        "{out}"
    );
    assert!(out.contains("chmod-ok"), "{out}");
    let out = rt.cmd(&[
        "exec",
        &id,
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status; mkdir /tmp/e",
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("Seccomp:\t2") && text.contains("Operation not permitted"),
        "{text}"
    );
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn update_changes_limits_and_events_report_usage() {
    require_root!();
    require_cgroup_v1!();
    let b = Bundle::new(&["sleep", "300"]);
    let rt = Runtime::new();
    let id = unique_id("update");
    rt.ok(&["run", "-d", "-b", b.path().to_str().expect("utf-8"), &id]);
    let res = rt.root.path().join("res.json");
    std::fs::write(&res, r#"{"memory":{"limit":33554432},"pids":{"limit":20}}"#)
        .expect("resources");
    rt.ok(&["update", "--resources", res.to_str().expect("utf-8"), &id]);
    let cg = |c: &str, f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{c}/berth-runtime/{id}/{f}"))
            .expect("cgroup file")
            .trim()
            .to_string()
    };
    assert_eq!(cg("memory", "memory.limit_in_bytes"), "33554432");
    assert_eq!(cg("pids", "pids.max"), "20");
    // containerd's shim sends the resources on stdin.
    let script = format!(
        "echo '{{\"pids\":{{\"limit\":30}}}}' | {} --root {} update -r - {}",
        common::BIN,
        rt.root.path().display(),
        id
    );
    assert!(std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .expect("sh")
        .success());
    assert_eq!(cg("pids", "pids.max"), "30");
    let ev: serde_json::Value =
        serde_json::from_str(rt.ok(&["events", "--stats", &id]).trim()).expect("event json");
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["data"]["pids"]["current"], 1);
    assert_eq!(ev["data"]["pids"]["limit"], 30);
    assert!(
        ev["data"]["memory"]["usage"]["usage"]
            .as_u64()
            .expect("usage")
            > 0,
        "{ev}"
    );
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], 33554432);
    assert!(
        ev["data"]["cpu"]["usage"]["total"].as_u64().is_some(),
        "{ev}"
    );
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn user_namespace_maps_root() {
    require_root!();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "id; cat /proc/self/uid_map; ls -ln /dev/null; exec sleep 300",
    ]);
    b.map_root_in_user_namespace();
    let rt = Runtime::new();
    let id = unique_id("userns");
    let log = run_detached_logged(&rt, &b, &id);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some("100000"),
        "{uid_line}"
    );
    let host_user = std::fs::read_link("/proc/self/ns/user").expect("own user ns");
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/user")).expect("user ns"),
        host_user
    );
    let out = wait_for_log(&log, "/dev/null");
    assert!(out.contains("uid=0 gid=0"), "{out}");
    assert!(
        out.split_whitespace()
            .collect::<Vec<_>>()
            .windows(3)
            .any(|w| w == ["0", "100000", "65536"]),
        "{out}"
    );
    let exec = rt.ok(&["exec", &id, "id"]);
    assert!(exec.starts_with("uid=0 gid=0"), "{exec}");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn preserved_fds_reach_the_container() {
    require_root!();
    let b = Bundle::new(&["sh", "-c", "ls /proc/self/fd | wc -l; cat /proc/self/fd/3"]);
    let rt = Runtime::new();
    let secret = rt.root.path().join("passed.txt");
    std::fs::write(&secret, "handed over\n").expect("file");
    let script = format!(
        "exec 3<{} 4</etc/hostname; exec {} --root {} run --preserve-fds 1 -b {} {}",
        secret.display(),
        common::BIN,
        rt.root.path().display(),
        b.path().display(),
        unique_id("preserve")
    );
    // 0, 1, 2, the preserved 3, and the directory fd ls itself holds; fd 4 was not preserved.
    assert_eq!(sh_ok(&script), "5\nhanded over\n");
}

#[test]
fn hooks_run_in_lifecycle_order() {
    require_root!();
    let b = Bundle::new(&["true"]);
    let rt = Runtime::new();
    let trace = rt.root.path().join("hooks.log");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read -r s; echo {name} >> {}", trace.display())]});
    b.edit(|c| {
        c["hooks"] = json!({
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "createContainer": [hook("createContainer")],
            "startContainer": [hook("startContainer")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")]
        });
        // startContainer runs inside the container after pivot_root: give it the host's /bin/sh and
        // a view of the log.
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        mounts.push(json!({"destination": rt.root.path(), "type": "bind", "source": rt.root.path(), "options": ["rbind"]}));
    });
    let id = unique_id("hooks");
    rt.ok(&["create", "-b", b.path().to_str().expect("utf-8"), &id]);
    rt.ok(&["start", &id]);
    wait_status(&rt, &id, "stopped");
    rt.ok(&["delete", &id]);
    let got = std::fs::read_to_string(&trace).expect("trace");
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
}

#[test]
fn cgroup_v2_device_program_filters_devices() {
    require_root!();
    // The controller-less cgroup2 mount beside v1 is enough: device control on v2 is a BPF program.
    let Some(unified) = unified_cgroup2() else {
        return;
    };
    let dir = unified.join(unique_id("devices"));
    let m = berth_runtime::cgroups::v2::Manager::new(dir.clone());
    m.mkdirs().expect("mkdir");
    let r: oci_spec::runtime::LinuxResources = serde_json::from_value(json!({
        "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}]
    }))
    .expect("resources");
    m.apply(&r).expect("attach device program");
    let script = format!(
        "echo $$ > {}/cgroup.procs || exit 9; \
         head -c1 /dev/zero >/dev/null && echo zero-ok; \
         head -c1 /dev/kmsg >/dev/null 2>&1 || echo kmsg-read-denied; \
         echo x > /dev/kmsg && echo kmsg-write-ok",
        dir.display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("sh");
    let text = String::from_utf8_lossy(&out.stdout);
    m.remove().expect("remove cgroup");
    assert_eq!(
        text,
        "zero-ok\nkmsg-read-denied\nkmsg-write-ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
