//! Runs the real `ctr` (containerd 1.6's client) against a daemon's socket.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian's containerd package installs ctr here.
pub const CTR_BIN: &str = "/usr/bin/ctr";

/// Default limit for one ctr invocation.
pub const CTR_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Ctr {
    pub address: PathBuf,
    pub namespace: String,
    pub timeout: Duration,
}

impl Ctr {
    pub fn new(address: impl Into<PathBuf>, namespace: &str) -> Ctr {
        Ctr {
            address: address.into(),
            namespace: namespace.to_string(),
            timeout: CTR_TIMEOUT,
        }
    }

    /// The same daemon, another namespace.
    pub fn in_namespace(&self, namespace: &str) -> Ctr {
        Ctr {
            namespace: namespace.to_string(),
            ..self.clone()
        }
    }

    /// Runs `ctr -a SOCK -n NS args...`. A run past the timeout is killed; its output then ends
    /// with a note and its status is the kill signal.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(CTR_BIN);
        cmd.arg("-a")
            .arg(&self.address)
            .arg("-n")
            .arg(&self.namespace)
            .args(args)
            // Environment defaults from the developer's shell must not redirect the test.
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .env_remove("CONTAINERD_SNAPSHOTTER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {CTR_BIN}: {err}"));
        let stdout = drain(child.stdout.take().expect("stdout is piped"));
        let stderr = drain(child.stderr.take().expect("stderr is piped"));

        let deadline = Instant::now() + self.timeout;
        let (status, timed_out) = loop {
            match child.try_wait() {
                Ok(Some(status)) => break (status, false),
                Ok(None) if Instant::now() >= deadline => {
                    // Kill only the ctr we started.
                    let _ = child.kill();
                    let status = child
                        .wait()
                        .unwrap_or_else(|_| ExitStatus::from_raw(sigkill_wait_status()));
                    break (status, true);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(err) => panic!("wait for ctr: {err}"),
            }
        };
        let stdout = stdout.join().expect("stdout reader thread");
        let mut stderr = stderr.join().expect("stderr reader thread");
        if timed_out {
            stderr.extend_from_slice(
                format!(
                    "\n[berth-tests] ctr {args:?} killed after {:?}\n",
                    self.timeout
                )
                .as_bytes(),
            );
        }
        Output {
            status,
            stdout,
            stderr,
        }
    }

    /// Runs ctr and returns its stdout; panics with both streams if it failed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs ctr expecting failure and returns its stderr; panics if it succeeded.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "ctr {args:?} succeeded but should have failed:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Raw wait status of a process killed by SIGKILL.
fn sigkill_wait_status() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}
