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
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
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
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
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
        let slow = hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 5"],"timeout":1}"#);
        let err = run_all(&[slow], &state(), "poststop")
            .expect_err("times out")
            .to_string();
        assert!(err.contains("timed out"), "{err}");
    }
}
