//! berthd as a process: what `ctr version` and `ctr plugins ls` report, the UUID kept in the root,
//! the modes of its dirs and socket, and the lock that keeps a second daemon off its root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::e2e;
use berth_tests::harness::{Berthd, Ctr};

/// The `UUID:` line of `ctr version`'s server part.
fn server_uuid(ctr: &Ctr) -> String {
    let out = ctr.ok(&["version"]);
    let uuid = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("UUID:"))
        .unwrap_or_else(|| panic!("no UUID in ctr version:\n{out}"))
        .trim()
        .to_string();
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "not a UUID: {uuid}");
    assert!(
        uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
        "not a UUID: {uuid}"
    );
    uuid
}

#[test]
fn version_names_berth_and_uuid_survives_restart() {
    let Some(mut berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("default");
    let out = ctr.ok(&["version"]);
    let server = out
        .split_once("Server:")
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no server part:\n{out}"));
    let version = server
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))
        .expect("server version line")
        .trim();
    assert!(version.contains("berth"), "server version: {version}");

    let uuid = server_uuid(&ctr);
    // A crash, then a clean stop: the UUID lives in the root, not in the process.
    berthd.kill9();
    berthd.restart().expect("restart after kill -9");
    assert_eq!(server_uuid(&ctr), uuid, "UUID changed across a crash");
    berthd.stop();
    berthd.restart().expect("restart after stop");
    assert_eq!(server_uuid(&ctr), uuid, "UUID changed across a restart");

    // Another root is another server.
    let other = Berthd::start().expect("start a second berthd");
    assert_ne!(server_uuid(&other.ctr("default")), uuid);
}

#[test]
fn plugins_ls_lists_what_is_served() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("default");
    let table = ctr.ok(&["plugins", "ls"]);
    let served = [
        ("io.containerd.content.v1", "content"),
        ("io.containerd.metadata.v1", "sled"),
        ("io.containerd.grpc.v1", "containers"),
        ("io.containerd.grpc.v1", "content"),
        ("io.containerd.grpc.v1", "events"),
        ("io.containerd.grpc.v1", "healthcheck"),
        ("io.containerd.grpc.v1", "images"),
        ("io.containerd.grpc.v1", "introspection"),
        ("io.containerd.grpc.v1", "leases"),
        ("io.containerd.grpc.v1", "namespaces"),
        ("io.containerd.grpc.v1", "version"),
    ];
    for (kind, id) in served {
        let found = table.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.first() == Some(&kind) && cols.get(1) == Some(&id) && cols.last() == Some(&"ok")
        });
        assert!(found, "plugin {kind} {id} not listed as ok:\n{table}");
    }

    // ctr passes its arguments as filters: the daemon's answer is the matching rows, no more.
    let grpc_rows = |table: &str| -> Vec<Vec<String>> {
        table
            .lines()
            .filter(|l| l.starts_with("io.containerd.grpc.v1 "))
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    };
    let grpc_only = ctr.ok(&["plugins", "ls", "type==io.containerd.grpc.v1"]);
    assert_eq!(grpc_only.lines().count(), grpc_rows(&table).len() + 1);
    assert_eq!(grpc_rows(&grpc_only), grpc_rows(&table));
    let content = ctr.ok(&["plugins", "ls", "id==content"]);
    let ids: Vec<&str> = content
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        ["io.containerd.content.v1", "io.containerd.grpc.v1"],
        "{content}"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn socket_and_dirs_have_private_modes() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    assert_eq!(mode(&berthd.address), 0o660, "socket mode");
    assert_eq!(mode(&berthd.root), 0o700, "root mode");
    assert_eq!(mode(&berthd.state), 0o711, "state mode");
}

#[test]
fn second_berthd_on_the_same_root_refuses_to_start() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("default");
    ctr.ok(&["ns", "create", "kept"]);

    // Own state and socket: only the root is shared, so the lock is what must stop it.
    let other = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(Berthd::binary())
        .arg("--root")
        .arg(&berthd.root)
        .arg("--state")
        .arg(other.path().join("state"))
        .arg("--address")
        .arg(other.path().join("second.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a second berthd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("poll second berthd").is_none() {
        if Instant::now() >= deadline {
            // Only the process this test started.
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second berthd on the same root kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("second berthd output");
    assert!(!out.status.success(), "second berthd exited with success");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let root = berthd.root.to_string_lossy();
    assert!(
        stderr.contains("lock") && stderr.contains(root.as_ref()),
        "error does not name the lock and the root:\n{stderr}"
    );
    assert!(
        !other.path().join("second.sock").exists(),
        "the refused daemon left a socket"
    );

    // The first one never noticed.
    let listing = ctr.ok(&["ns", "ls", "-q"]);
    assert!(listing.lines().any(|l| l == "kept"), "{listing}");
}
