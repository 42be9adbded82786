//! Helpers that go through `sh`: the runtime started with descriptors or redirections a test sets up
//! the way a caller's shell would, and output collected from a file the container writes to.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Bundle, Runtime, BIN};

/// Runs `sh -c script`, insists on success (showing stderr otherwise) and returns stdout.
pub fn sh_ok(script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the container `id` detached with its output (and the runtime's) sent to a file rather than a
/// pipe, which the container would hold open; returns the file. Insists that `run -d` succeeded,
/// showing what was logged otherwise.
pub fn run_detached_logged(rt: &Runtime, b: &Bundle, id: &str) -> PathBuf {
    let log = rt.root.path().join("out.log");
    let script = format!(
        "exec {} --root {} run -d -b {} {} >{} 2>&1",
        BIN,
        rt.root.path().display(),
        b.path().display(),
        id,
        log.display()
    );
    let st = Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .expect("sh");
    assert!(
        st.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    log
}

/// Polls `log` for up to ten seconds until it contains `want`; returns what it holds by then, so the
/// caller's assertions show the output either way.
pub fn wait_for_log(log: &Path, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = String::new();
    while !out.contains(want) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        out = std::fs::read_to_string(log).unwrap_or_default();
    }
    out
}
