//! OCI hooks: programs the runtime runs at lifecycle points with the container's state on stdin.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};
use crate::state::OciState;

/// Runs each hook in order and stops at the first failure.
pub fn run_all(hooks: &[Hook], state: &OciState, stage: &str) -> Result<()> {
    for h in hooks {
        run(h, state).map_err(|e| Error::Init(format!("{stage} hook: {e}")))?;
    }
    Ok(())
}

fn run(hook: &Hook, state: &OciState) -> std::result::Result<(), String> {
    let path = hook.path();
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(path);
    if let Some(argv0) = args.first() {
        cmd.arg0(argv0);
    }
    // Its own process group, so that a timeout ends whatever the hook started too (std sets it up
    // through posix_spawn; no code of ours runs in the child).
    cmd.args(args.iter().skip(1))
        .process_group(0)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: start: {e}", path.display()))?;
    let input = serde_json::to_vec(state).expect("state serializes");
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is allowed; a broken pipe is not a failure.
        let _ = stdin.write_all(&input);
    }
    let mut stderr = StderrTail::new(child.stderr.take());
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        stderr.drain();
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(format!("{}: wait: {e}", path.display())),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // SAFETY: kill only sends a signal; the group is the hook's own (process_group above),
            // whose id is the hook's pid, which stays ours until the wait below reaps it.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            return Err(format!(
                "{}: timed out after {}s",
                path.display(),
                hook.timeout().unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if status.success() {
        return Ok(());
    }
    stderr.drain();
    let stderr = String::from_utf8_lossy(&stderr.kept).into_owned();
    Err(format!(
        "{}: {status}{}",
        path.display(),
        if stderr.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", stderr.trim())
        }
    ))
}

/// What a hook writes to stderr, read while it runs so that a chatty hook never blocks on a full pipe,
/// and never waited on to its end, which a background child of the hook may hold off: the last 4 KiB,
/// for the error message.
struct StderrTail {
    pipe: Option<std::process::ChildStderr>,
    kept: Vec<u8>,
}

impl StderrTail {
    const KEEP: usize = 4096;

    fn new(pipe: Option<std::process::ChildStderr>) -> StderrTail {
        if let Some(p) = &pipe {
            let fd = std::os::fd::AsRawFd::as_raw_fd(p);
            // SAFETY: F_GETFL/F_SETFL only change the flags of our own end of the pipe.
            unsafe {
                libc::fcntl(
                    fd,
                    libc::F_SETFL,
                    libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
                )
            };
        }
        StderrTail {
            pipe,
            kept: Vec::new(),
        }
    }

    /// Reads what is there now.
    fn drain(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match std::io::Read::read(pipe, &mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => {
                    self.kept.extend_from_slice(&buf[..n]);
                    let excess = self.kept.len().saturating_sub(Self::KEEP);
                    self.kept.drain(..excess);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ContainerStatus;

    fn state() -> OciState {
        OciState {
            oci_version: "1.2.0".into(),
            id: "h".into(),
            pid: 1,
            status: ContainerStatus::Creating,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: String::new(),
            owner: String::new(),
            annotations: Default::default(),
        }
    }

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).expect("hook")
    }

    #[test]
    fn hook_gets_state_on_stdin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {}"]}}"#,
            out.display()
        ));
        run_all(&[h], &state(), "prestart").expect("hook runs");
        let got: OciState =
            serde_json::from_slice(&std::fs::read(&out).expect("output")).expect("state json");
        assert_eq!(got, state());
    }

    #[test]
    fn failing_and_slow_hooks_are_errors() {
        let fail = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo nope >&2; exit 3"]}"#);
        let err = run_all(&[fail], &state(), "prestart")
            .expect_err("fails")
            .to_string();
        assert!(err.contains("nope") && err.contains("prestart"), "{err}");
        // A background child holding stderr does not keep the failure waiting; a hook writing more
        // than a pipe holds does not block; the message keeps the end of what it wrote.
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("bg.pid");
        let script = format!(
            "exec 3>&2; sleep 30 <&- >&- 2>&3 3>&- & echo $! > {}; head -c 200000 /dev/zero | tr '\\0' x >&2; echo last words >&2; exit 4",
            pid_file.display()
        );
        let held: Hook = serde_json::from_value(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", script],
        }))
        .expect("hook");
        let started = Instant::now();
        let err = run_all(&[held], &state(), "prestart")
            .expect_err("fails")
            .to_string();
        let elapsed = started.elapsed();
        let bg: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("pid");
        // SAFETY: kill only sends a signal, to the sleep this test started.
        unsafe { libc::kill(bg, libc::SIGKILL) };
        assert!(err.contains("last words"), "{err}");
        assert!(err.len() < 5000, "{} bytes", err.len());
        assert!(
            elapsed < Duration::from_secs(10),
            "waited for the background child"
        );
        let slow = hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 5"],"timeout":1}"#);
        let err = run_all(&[slow], &state(), "poststop")
            .expect_err("times out")
            .to_string();
        assert!(err.contains("timed out"), "{err}");
    }
}
