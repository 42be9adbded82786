//! Hostile and invalid bundles: each gets a clear error or stays contained, and a failed create leaves
//! nothing behind. Needs root; skipped otherwise.

mod common;

use common::{assert_nothing_left, unique_id, Bundle, Runtime};
use serde_json::json;

fn create_fails(b: &Bundle, name: &str) -> String {
    let rt = Runtime::new();
    let id = unique_id(name);
    let err = rt.fails(&["create", "-b", b.path().to_str().expect("utf-8"), &id]);
    assert_nothing_left(&rt, &id);
    err
}

#[test]
fn mount_destination_with_dotdot_stays_in_the_rootfs() {
    require_root!();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "touch /etc/marker && grep ' /etc ' /proc/self/mountinfo",
    ]);
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "../../etc", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]
        }));
    });
    let rt = Runtime::new();
    let out = rt.ok(&[
        "run",
        "-b",
        b.path().to_str().expect("utf-8"),
        &unique_id("dotdot"),
    ]);
    assert!(out.contains(" /etc ") && out.contains("tmpfs"), "{out}");
    assert!(
        b.rootfs().join("etc").is_dir(),
        "mount point created inside the rootfs"
    );
    assert!(
        !std::path::Path::new("/etc/marker").exists(),
        "host /etc was reached"
    );
}

#[test]
fn proc_symlink_in_rootfs_is_refused() {
    require_root!();
    let b = Bundle::new(&["true"]);
    std::os::unix::fs::symlink("/", b.rootfs().join("proc")).expect("symlink");
    let err = create_fails(&b, "procsym");
    assert!(
        err.contains("must be mounted on ordinary directory"),
        "{err}"
    );
}

#[test]
fn dev_null_symlink_to_host_file_is_refused() {
    require_root!();
    let b = Bundle::new(&["true"]);
    // Without a tmpfs on /dev the rootfs's own /dev is used; its null points at a host file.
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        mounts.retain(|m| !m["destination"].as_str().expect("dest").starts_with("/dev"));
    });
    std::fs::create_dir(b.rootfs().join("dev")).expect("dev");
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", b.rootfs().join("dev/null"))
        .expect("symlink");
    let before = std::fs::read("/proc/sys/kernel/core_pattern").expect("core_pattern");
    let err = create_fails(&b, "devnull");
    assert!(err.contains("/dev/null"), "{err}");
    assert_eq!(
        std::fs::read("/proc/sys/kernel/core_pattern").expect("core_pattern"),
        before
    );
}

#[test]
fn unknown_capability_is_a_clear_error() {
    require_root!();
    let b = Bundle::new(&["true"]);
    b.edit(|c| c["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_TELEPORT"]));
    let err = create_fails(&b, "badcap");
    assert!(err.contains("unknown capability \"CAP_TELEPORT\""), "{err}");
}

#[test]
fn non_namespaced_sysctl_is_refused() {
    require_root!();
    let b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["sysctl"] = json!({"kernel.panic": "1"}));
    let err = create_fails(&b, "sysctl");
    assert!(
        err.contains("kernel.panic") && err.contains("not in a separate kernel namespace"),
        "{err}"
    );
}

#[test]
fn namespaced_sysctl_is_applied() {
    require_root!();
    let b = Bundle::new(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    b.edit(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"}));
    let rt = Runtime::new();
    let out = rt.ok(&[
        "run",
        "-b",
        b.path().to_str().expect("utf-8"),
        &unique_id("netsysctl"),
    ]);
    assert_eq!(out.trim(), "1");
}

#[test]
fn cwd_through_a_leaked_fd_is_detected() {
    require_root!();
    let b = Bundle::new(&["true"]);
    b.edit(|c| c["process"]["cwd"] = json!("/proc/self/fd/7"));
    let rt = Runtime::new();
    let id = unique_id("cwdfd");
    // fd 7 is a host directory leaked by the caller; chdir through it would land outside the rootfs.
    let script = format!(
        "exec 7</tmp; exec {} --root {} create -b {} {}",
        common::BIN,
        rt.root.path().display(),
        b.path().display(),
        id
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(std::process::Stdio::null())
        .output()
        .expect("sh");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "create succeeded");
    assert!(err.contains("possible container breakout"), "{err}");
    assert_nothing_left(&rt, &id);
}

#[test]
fn failing_prestart_hook_leaves_nothing() {
    require_root!();
    let b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook refused >&2; exit 1"]}]})
    });
    let err = create_fails(&b, "hook");
    assert!(
        err.contains("prestart hook") && err.contains("hook refused"),
        "{err}"
    );
}

#[test]
fn prestart_hook_timeout_ends_the_hook_and_what_it_started() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("sleeper.pid");
    let b = Bundle::new(&["true"]);
    let script = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
    b.edit(|c| {
        c["hooks"] =
            json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 1}]})
    });
    let err = create_fails(&b, "hooktime");
    assert!(
        err.contains("prestart hook") && err.contains("timed out after 1s"),
        "{err}"
    );
    let sleeper: i32 = std::fs::read_to_string(&pid_file)
        .expect("the hook ran")
        .trim()
        .parse()
        .expect("pid");
    // Killed with the hook's process group (reaped by whoever inherited it, so poll).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            break;
        }
        if std::time::Instant::now() >= deadline {
            // Not left running for the other tests' sake.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(sleeper),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("the hook's child survived the timeout: {stat}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn seccomp_with_an_unknown_architecture_is_refused() {
    require_root!();
    let b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_NOPE"],
            "syscalls": [{"names": ["mknod"], "action": "SCMP_ACT_ERRNO"}]
        })
    });
    let err = create_fails(&b, "seccomp-arch");
    assert!(
        err.contains("invalid config") && err.contains("SCMP_ARCH_NOPE"),
        "{err}"
    );
}

#[test]
fn missing_executable_fails_at_create() {
    require_root!();
    let b = Bundle::new(&["no-such-program"]);
    let err = create_fails(&b, "noexec");
    assert!(err.contains("executable file not found in $PATH"), "{err}");
}

#[test]
fn invalid_ids_and_duplicates_are_refused() {
    require_root!();
    let b = Bundle::new(&["sleep", "300"]);
    let rt = Runtime::new();
    for bad in ["../x", "a/b", ".."] {
        let err = rt.fails(&["create", "-b", b.path().to_str().expect("utf-8"), bad]);
        assert!(err.contains("invalid container id"), "{err}");
    }
    let id = unique_id("dup");
    rt.ok(&["create", "-b", b.path().to_str().expect("utf-8"), &id]);
    let err = rt.fails(&["create", "-b", b.path().to_str().expect("utf-8"), &id]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        rt.state(&id)["status"],
        "created",
        "the original is untouched"
    );
    rt.ok(&["delete", &id]);
}

#[test]
fn half_created_container_is_removed_by_forced_delete() {
    require_root!();
    let rt = Runtime::new();
    let id = unique_id("stale");
    // What a runtime killed between mkdir and the state write leaves behind.
    std::fs::create_dir(rt.state_dir(&id)).expect("stale dir");
    let err = rt.fails(&["delete", &id]);
    assert!(err.contains("does not exist"), "{err}");
    rt.ok(&["delete", "--force", &id]);
    assert!(!rt.state_dir(&id).exists());
}
