//! `kill`: signal the container's init, or with `all` every process in its cgroup.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::Container;
use crate::error::{Context, Error, Result};
use crate::process::procfs;

/// A pidfd pins the process: once it is open and the start time still matches, the signal cannot hit a
/// recycled pid.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn pidfd_signal(fd: &OwnedFd, sig: Signal) -> std::io::Result<()> {
    // SAFETY: pidfd_send_signal with a valid pidfd, a signal number and no siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig as i32,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Container {
    pub fn kill(&self, sig: Signal, all: bool) -> Result<()> {
        let status = self.status();
        if !status.can_kill() {
            return Err(Error::precondition(self.id(), "container not running"));
        }
        if all {
            for pid in self.pids()? {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
            }
            return Ok(());
        }
        self.signal_init(sig)
    }

    fn signal_init(&self, sig: Signal) -> Result<()> {
        let fd = pidfd_open(self.pid())
            .filter(|_| self.init_alive())
            .ok_or_else(|| Error::precondition(self.id(), "container not running"))?;
        pidfd_signal(&fd, sig).ctx(|| format!("signal {sig} to init {}", self.pid()))
    }

    /// Waits until init is gone (exited or a zombie awaiting its parent), up to `timeout`.
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !procfs::is_alive(self.pid(), self.state.init_start_time) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }
}

/// Parses a signal as runc accepts it: `KILL`, `SIGKILL` or `9`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::invalid(format!("unknown signal {s:?}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse()
        .map_err(|_| Error::invalid(format!("unknown signal {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_runc() {
        assert_eq!(parse_signal("KILL").expect("KILL"), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").expect("sigterm"), Signal::SIGTERM);
        assert_eq!(parse_signal("9").expect("9"), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
