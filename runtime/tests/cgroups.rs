//! Cgroup events and updates: OOM notification through `events` and the library watcher, and a v2
//! device-rule update replacing the eBPF program. Needs root; skipped otherwise.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_runtime::cgroups::oom::OomEvent;
use common::shell::sh_ok;
use common::{memory_cgroup, unified_cgroup2, unique_id, wait_status, Bundle, Runtime};
use serde_json::json;

/// A container limited to 16 MiB whose shell doubles a string until the kernel OOM-kills it (a pipe
/// through `cat` would never hold more than a buffer; this really allocates).
fn oom_bundle() -> Bundle {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "a=0123456789abcdef; while true; do a=\"$a$a\"; done",
    ]);
    b.edit(|c| {
        let mut memory = json!({"limit": 16 << 20});
        // On a host with swap the shell would be swapped out instead: cap memory+swap too.
        if std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
            memory["swap"] = json!(16 << 20);
        }
        c["linux"]["resources"] = json!({"memory": memory});
    });
    b
}

#[test]
fn oom_kill_is_reported_by_events() {
    require_root!();
    require_cgroup_v1!();
    let b = oom_bundle();
    let rt = Runtime::new();
    let id = unique_id("oom-events");
    rt.ok(&["create", "-b", b.path().to_str().expect("utf-8"), &id]);
    let mut events = Command::new(common::BIN)
        .arg("--root")
        .arg(rt.root.path())
        .args(["events", "--interval", "100ms", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn events");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = events.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The watcher is armed before the first stats event: start only once one arrived.
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a first stats event");
    assert!(first.contains("\"type\":\"stats\""), "{first}");
    rt.ok(&["start", &id]);
    let mut lines = vec![first];
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => lines.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // events ends by itself once the container stopped; kill it (by pid) only if it did not.
    let exited = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        events.try_wait().expect("try_wait").is_some()
    });
    if !exited {
        let _ = events.kill();
        let _ = events.wait();
    }
    reader.join().expect("reader thread");
    let oom: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("event json"))
        .filter(|e| e["type"] == "oom")
        .collect();
    assert!(exited, "events did not end after the container stopped");
    assert!(!oom.is_empty(), "no oom event in {lines:?}");
    assert_eq!(oom[0], json!({"type": "oom", "id": id}));
    wait_status(&rt, &id, "stopped");
    let control = std::fs::read_to_string(memory_cgroup(&id).join("memory.oom_control"))
        .expect("oom_control");
    assert!(!control.contains("oom_kill 0"), "{control}");
    rt.ok(&["delete", &id]);
    assert!(!memory_cgroup(&id).exists());
}

#[test]
fn oom_watcher_reports_kills_and_the_cgroup_going_away() {
    require_root!();
    require_cgroup_v1!();
    let b = oom_bundle();
    let rt = Runtime::new();
    let id = unique_id("oom-lib");
    rt.ok(&["create", "-b", b.path().to_str().expect("utf-8"), &id]);
    let c = berth_runtime::Container::load(rt.root.path(), &id).expect("load");
    let mut watcher = c.oom_watcher().expect("oom watcher");
    assert_eq!(
        watcher.wait(Some(Duration::from_millis(50))).expect("wait"),
        OomEvent::Timeout
    );
    rt.ok(&["start", &id]);
    match watcher.wait(Some(Duration::from_secs(30))).expect("wait") {
        OomEvent::Oom(n) => assert!(n >= 1),
        other => panic!("expected an oom, got {other:?}"),
    }
    wait_status(&rt, &id, "stopped");
    rt.ok(&["delete", &id]);
    // Removing the cgroup ends the stream.
    let end = Instant::now() + Duration::from_secs(10);
    let mut last = OomEvent::Timeout;
    while Instant::now() < end && last != OomEvent::Gone {
        last = watcher
            .wait(Some(Duration::from_millis(500)))
            .expect("wait");
    }
    assert_eq!(last, OomEvent::Gone);
}

/// Runs a shell in the v2 cgroup `dir` and reports which opens of /dev/kmsg (c 1:11) the device
/// program allows.
fn kmsg_access(dir: &std::path::Path) -> String {
    let script = format!(
        "echo $$ > {}/cgroup.procs || exit 9; \
         (: </dev/kmsg) 2>/dev/null && echo read-ok || echo read-denied; \
         (: >/dev/kmsg) 2>/dev/null && echo write-ok || echo write-denied",
        dir.display()
    );
    sh_ok(&script)
}

#[test]
fn cgroup_v2_device_update_replaces_the_program() {
    require_root!();
    let Some(unified) = unified_cgroup2() else {
        return;
    };
    let dir = unified.join(unique_id("devices-update"));
    /// Removes the test cgroup however the test ends.
    struct Removed(berth_runtime::cgroups::v2::Manager);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = self.0.remove();
        }
    }
    let m = Removed(berth_runtime::cgroups::v2::Manager::new(dir.clone()));
    m.0.mkdirs().expect("mkdir");
    let rules = |access: &str| -> oci_spec::runtime::LinuxResources {
        serde_json::from_value(json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": access}
        ]}))
        .expect("resources")
    };
    m.0.apply(&rules("w")).expect("first program");
    let first = kmsg_access(&dir);
    let ids_first = berth_runtime::cgroups::ebpf::attached(&dir).expect("query");
    // An update widening access only works if the old, narrower program is gone.
    m.0.apply(&rules("rw")).expect("second program");
    let second = kmsg_access(&dir);
    let ids_second = berth_runtime::cgroups::ebpf::attached(&dir).expect("query");
    m.0.apply(&rules("r")).expect("third program");
    let third = kmsg_access(&dir);
    drop(m);
    assert!(!dir.exists(), "test cgroup left behind");
    assert_eq!(first, "read-denied\nwrite-ok\n");
    assert_eq!(second, "read-ok\nwrite-ok\n");
    assert_eq!(third, "read-ok\nwrite-denied\n");
    assert_eq!(ids_first.len(), 1, "{ids_first:?}");
    assert_eq!(ids_second.len(), 1, "{ids_second:?}");
    assert_ne!(ids_first, ids_second, "the program was not replaced");
}

#[test]
fn stats_carry_block_io_in_runc_shape() {
    require_root!();
    require_cgroup_v1!();
    if !std::path::Path::new("/sys/fs/cgroup/blkio").is_dir() {
        eprintln!("skipped: no blkio hierarchy");
        return;
    }
    let b = Bundle::new(&["sleep", "300"]);
    let rt = Runtime::new();
    let id = unique_id("blkio-stats");
    rt.ok(&["run", "-d", "-b", b.path().to_str().expect("utf-8"), &id]);
    let ev: serde_json::Value =
        serde_json::from_str(rt.ok(&["events", "--stats", &id]).trim()).expect("event json");
    let blkio = &ev["data"]["blkio"];
    assert!(
        blkio["ioServiceBytesRecursive"].is_array() && blkio["ioServicedRecursive"].is_array(),
        "{ev}"
    );
    rt.ok(&["delete", "--force", &id]);
    assert!(!memory_cgroup(&id).exists());
}
