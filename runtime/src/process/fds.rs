//! File descriptors: nothing of the runtime may reach the container (CVE-2024-21626, where a leaked
//! directory fd let `process.cwd = /proc/self/fd/N` land outside the rootfs), except the preserved and
//! socket-activation fds it is meant to get.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Descriptors a library caller hands to the container's process (init for `create`, the new process
/// for `exec`). The CLI needs none of this: its process simply inherits the runtime's stdio and its
/// fds 3.. (`preserve_fds`). A multithreaded caller such as the shim cannot rearrange its own fd table,
/// so it names the descriptors here; the runtime helper places them (see `helper`). Shared handles,
/// so the caller may drop its copies as soon as the call returns.
#[derive(Debug, Clone, Default)]
pub struct ProcessIo {
    /// The process's stdin; `None`: the caller's own fd 0.
    pub stdin: Option<Arc<OwnedFd>>,
    /// The process's stdout; `None`: the caller's own fd 1.
    pub stdout: Option<Arc<OwnedFd>>,
    /// The process's stderr; `None`: the caller's own fd 2.
    pub stderr: Option<Arc<OwnedFd>>,
    /// More descriptors, placed after the preserved ones (from `3 + listen_fds + preserve_fds` on).
    pub extra: Vec<Arc<OwnedFd>>,
}

impl ProcessIo {
    /// Nothing to place: the process gets exactly what the calling process has.
    pub fn is_inherited(&self) -> bool {
        self.stdin.is_none()
            && self.stdout.is_none()
            && self.stderr.is_none()
            && self.extra.is_empty()
    }

    pub fn stdio(&self) -> [Option<&Arc<OwnedFd>>; 3] {
        [
            self.stdin.as_ref(),
            self.stdout.as_ref(),
            self.stderr.as_ref(),
        ]
    }
}

/// Marks every descriptor from `3 + preserve` up as close-on-exec, so only stdio and the preserved fds
/// survive the exec; the runtime's own descriptors stay usable until then.
pub fn cloexec_from(preserve: u32) -> Result<()> {
    let first = 3 + preserve;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC; walk /proc/self/fd instead.
    let entries = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Error::Init(format!("list /proc/self/fd to close fds: {e}")))?;
    for fd in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        if fd >= first as i32 {
            // SAFETY: setting FD_CLOEXEC on a descriptor number; a stale number just fails with EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// After chdir into `process.cwd`, the kernel reports a cwd outside the process's root with an
/// "(unreachable)" prefix, which getcwd turns into ENOENT or a relative path: both mean breakout.
pub fn verify_cwd() -> Result<()> {
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(Error::Init(
            "current working directory is outside of container mount namespace root -- possible container breakout detected".into(),
        )),
    }
}

/// The sockets the runtime itself was handed by systemd socket activation (`LISTEN_PID` is this
/// process and `LISTEN_FDS` counts fds from 3): like runc, `create` and `run` pass them on to the
/// container's init ahead of any `--preserve-fds`, and tell it through its own `LISTEN_FDS`.
pub fn activation_fds() -> u32 {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    match (var("LISTEN_PID"), var("LISTEN_FDS")) {
        (Some(pid), Some(n)) if pid == std::process::id() => n,
        _ => 0,
    }
}

/// Fixes up the socket-activation variables of the container's init, which runs as `pid` in its own
/// pid namespace: `LISTEN_FDS=n` when the runtime passes `n` activation fds, and whenever the
/// environment has `LISTEN_FDS`, a `LISTEN_PID` naming the init itself (sd_listen_fds(3) ignores the fds
/// otherwise). runc writes a literal 1, which is the same in a new pid namespace; the real pid also holds
/// in the host's. Only init gets this: an `exec`'d process inherits the env but not the fds, and must not
/// take the variables as meant for it.
pub fn listen_env(env: &mut Vec<String>, activation: u32, pid: i32) {
    if activation > 0 {
        env.retain(|e| !e.starts_with("LISTEN_FDS="));
        env.push(format!("LISTEN_FDS={activation}"));
    }
    if env.iter().any(|e| e.starts_with("LISTEN_FDS=")) {
        env.retain(|e| !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_PID={pid}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn listen_pid_names_the_init() {
        let mut e = env(&["PATH=/bin", "LISTEN_FDS=2", "LISTEN_PID=4242"]);
        listen_env(&mut e, 0, 1);
        assert_eq!(e, env(&["PATH=/bin", "LISTEN_FDS=2", "LISTEN_PID=1"]));
        let mut e = env(&["PATH=/bin"]);
        listen_env(&mut e, 0, 1);
        assert_eq!(e, env(&["PATH=/bin"]), "no LISTEN_FDS, nothing added");
        let mut e = env(&["LISTEN_FDS=5"]);
        listen_env(&mut e, 1, 7);
        assert_eq!(e, env(&["LISTEN_FDS=1", "LISTEN_PID=7"]));
    }
}
