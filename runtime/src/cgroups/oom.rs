//! Out-of-memory notification for a container's cgroup, as a pollable descriptor so the shim can put it
//! in its event loop and the `events` verb can wait on it between stats ticks.
//!
//! - cgroup v1: an eventfd registered on `memory.oom_control` through `cgroup.event_control`. The kernel
//!   signals it each time the cgroup hits its limit with nothing left to reclaim, and once more when the
//!   cgroup is removed (then `cgroup.event_control` is gone too, which tells the two apart).
//! - cgroup v2: inotify on `memory.events`, whose `oom` and `oom_kill` counters only grow; a change in
//!   either is an event. `cgroup.events` going to `populated 0` (or the directory going away) ends it.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Cgroup;
use crate::error::{Context, Error, Result};

/// What a wait on the watcher saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomEvent {
    /// The cgroup ran out of memory this many times since the last report.
    Oom(u64),
    /// The cgroup was removed (v1) or emptied (v2): no further events will come.
    Gone,
    /// Nothing happened within the timeout.
    Timeout,
}

enum Source {
    V1 {
        eventfd: OwnedFd,
        /// Keeps the registration's `memory.oom_control` open for as long as the eventfd is used.
        _oom_control: File,
        dir: PathBuf,
    },
    V2 {
        inotify: OwnedFd,
        dir: PathBuf,
        cgroup_wd: Option<i32>,
        oom: u64,
        oom_kill: u64,
    },
}

pub struct OomWatcher {
    source: Source,
    gone: bool,
}

fn last_os_error(what: impl FnOnce() -> String) -> Error {
    Error::Io {
        context: what(),
        source: std::io::Error::last_os_error(),
    }
}

/// `key value` lines of a cgroup v2 file (memory.events, cgroup.events); a missing key reads as 0.
fn keyed(dir: &Path, file: &str, key: &str) -> Result<u64> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).ctx(|| format!("read {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0))
}

impl OomWatcher {
    /// Watches the container's memory cgroup.
    pub fn new(cgroup: &Cgroup) -> Result<OomWatcher> {
        match cgroup {
            Cgroup::V1(m) => {
                let dir = m
                    .hierarchies
                    .iter()
                    .find(|h| h.controllers.iter().any(|c| c == "memory"))
                    .map(|h| h.dir.clone())
                    .ok_or_else(|| {
                        Error::Unsupported(
                            "oom notification needs the memory cgroup controller".into(),
                        )
                    })?;
                OomWatcher::v1(&dir)
            }
            Cgroup::V2(m) => OomWatcher::v2(&m.dir),
        }
    }

    /// Registers an eventfd for the v1 memory cgroup directory `dir`.
    pub fn v1(dir: &Path) -> Result<OomWatcher> {
        let control_path = dir.join("memory.oom_control");
        let oom_control = File::open(&control_path)
            .ctx(|| format!("open {} for oom notification", control_path.display()))?;
        // SAFETY: eventfd takes no pointers; the returned descriptor is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(last_os_error(|| {
                "create eventfd for oom notification".into()
            }));
        }
        // SAFETY: eventfd just returned this descriptor and nothing else owns it.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let registration = format!("{} {}", eventfd.as_raw_fd(), oom_control.as_raw_fd());
        super::write(dir, "cgroup.event_control", &registration)?;
        Ok(OomWatcher {
            source: Source::V1 {
                eventfd,
                _oom_control: oom_control,
                dir: dir.to_path_buf(),
            },
            gone: false,
        })
    }

    /// Watches `memory.events` of the v2 cgroup directory `dir`; OOMs before this call are not reported.
    pub fn v2(dir: &Path) -> Result<OomWatcher> {
        let events = dir.join("memory.events");
        if !events.exists() {
            return Err(Error::Unsupported(format!(
                "cgroup {} has no memory.events: the memory controller is not enabled for it",
                dir.display()
            )));
        }
        // SAFETY: inotify_init1 takes no pointers; the returned descriptor is checked before use.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(last_os_error(|| {
                "create inotify for oom notification".into()
            }));
        }
        // SAFETY: inotify_init1 just returned this descriptor and nothing else owns it.
        let inotify = unsafe { OwnedFd::from_raw_fd(fd) };
        let watch = |path: &Path| -> Result<i32> {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                .map_err(|_| Error::invalid(format!("path {} contains NUL", path.display())))?;
            // SAFETY: the path is a valid NUL-terminated string that outlives the call.
            let wd = unsafe {
                libc::inotify_add_watch(inotify.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY)
            };
            if wd < 0 {
                return Err(last_os_error(|| format!("watch {}", path.display())));
            }
            Ok(wd)
        };
        watch(&events)?;
        let cgroup_events = dir.join("cgroup.events");
        let cgroup_wd = cgroup_events
            .exists()
            .then(|| watch(&cgroup_events))
            .transpose()?;
        Ok(OomWatcher {
            source: Source::V2 {
                inotify,
                dir: dir.to_path_buf(),
                cgroup_wd,
                oom: keyed(dir, "memory.events", "oom")?,
                oom_kill: keyed(dir, "memory.events", "oom_kill")?,
            },
            gone: false,
        })
    }

    /// Waits up to `timeout` (forever with `None`) for the next OOM or the end of the cgroup.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<OomEvent> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if self.gone {
                return Ok(OomEvent::Gone);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if !self.readable(left)? {
                return Ok(OomEvent::Timeout);
            }
            match self.check()? {
                // A wakeup that changed nothing (another field of memory.events): keep waiting until
                // the deadline.
                OomEvent::Timeout => continue,
                other => return Ok(other),
            }
        }
    }

    /// Reports what is pending without blocking: the call to make when the descriptor polls readable.
    pub fn check(&mut self) -> Result<OomEvent> {
        if self.gone {
            return Ok(OomEvent::Gone);
        }
        match &mut self.source {
            Source::V1 { eventfd, dir, .. } => {
                let mut count = [0u8; 8];
                // SAFETY: reads at most 8 bytes into the buffer we own.
                let n = unsafe { libc::read(eventfd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::WouldBlock {
                        return Ok(OomEvent::Timeout);
                    }
                    return Err(e).ctx(|| "read oom eventfd");
                }
                if !dir.join("cgroup.event_control").exists() {
                    self.gone = true;
                    return Ok(OomEvent::Gone);
                }
                Ok(OomEvent::Oom(u64::from_ne_bytes(count)))
            }
            Source::V2 {
                inotify,
                dir,
                cgroup_wd,
                oom,
                oom_kill,
                ..
            } => {
                let mut emptied = false;
                let mut buf = [0u8; 4096];
                loop {
                    // SAFETY: reads at most buf.len() bytes into the buffer we own.
                    let n = unsafe {
                        libc::read(inotify.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                    };
                    if n <= 0 {
                        break;
                    }
                    let mut off = 0usize;
                    while off + std::mem::size_of::<libc::inotify_event>() <= n as usize {
                        // SAFETY: the kernel wrote whole events; read_unaligned copes with the byte buffer.
                        let ev: libc::inotify_event =
                            unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                        off += std::mem::size_of::<libc::inotify_event>() + ev.len as usize;
                        if ev.mask & libc::IN_IGNORED != 0 {
                            emptied = true;
                        } else if Some(ev.wd) == *cgroup_wd {
                            emptied |= keyed(dir, "cgroup.events", "populated").unwrap_or(0) == 0;
                        }
                    }
                }
                // The counters are read on every wakeup: an OOM kill that empties the cgroup may come
                // in the same batch as the populated change, and must not be lost to it.
                let now_oom = keyed(dir, "memory.events", "oom").unwrap_or(*oom);
                let now_kill = keyed(dir, "memory.events", "oom_kill").unwrap_or(*oom_kill);
                let new = now_oom
                    .saturating_sub(*oom)
                    .max(now_kill.saturating_sub(*oom_kill));
                *oom = now_oom.max(*oom);
                *oom_kill = now_kill.max(*oom_kill);
                if emptied {
                    self.gone = true;
                }
                if new > 0 {
                    return Ok(OomEvent::Oom(new));
                }
                Ok(if emptied {
                    OomEvent::Gone
                } else {
                    OomEvent::Timeout
                })
            }
        }
    }

    fn readable(&self, timeout: Option<Duration>) -> Result<bool> {
        let ms = timeout.map_or(-1, |t| {
            // Round up, so a wait never returns early and spins.
            t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
        });
        let mut pfd = libc::pollfd {
            fd: self.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one pollfd, owned by this frame, for the duration of the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc >= 0 {
                return Ok(rc > 0);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).ctx(|| "poll oom notification");
            }
        }
    }
}

impl AsFd for OomWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.source {
            Source::V1 { eventfd, .. } => eventfd.as_fd(),
            Source::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}

/// OOM counts until the cgroup goes away; each item is the number of OOMs since the previous one.
pub struct OomEvents {
    watcher: OomWatcher,
    failed: bool,
}

impl OomEvents {
    pub fn new(watcher: OomWatcher) -> OomEvents {
        OomEvents {
            watcher,
            failed: false,
        }
    }
}

impl Iterator for OomEvents {
    type Item = Result<u64>;

    fn next(&mut self) -> Option<Result<u64>> {
        if self.failed {
            return None;
        }
        loop {
            match self.watcher.wait(None) {
                Ok(OomEvent::Oom(n)) => return Some(Ok(n)),
                Ok(OomEvent::Gone) => return None,
                Ok(OomEvent::Timeout) => continue,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_counters_changes_are_events() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let events = |oom: u64, kill: u64| {
            std::fs::write(
                dir.join("memory.events"),
                format!("low 0\nhigh 0\nmax 3\noom {oom}\noom_kill {kill}\noom_group_kill 0\n"),
            )
            .expect("memory.events")
        };
        events(1, 1);
        std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n")
            .expect("cgroup.events");
        let mut w = OomWatcher::v2(dir).expect("watch");
        assert_eq!(
            w.wait(Some(Duration::from_millis(20))).expect("wait"),
            OomEvent::Timeout,
            "earlier OOMs are not reported"
        );
        events(1, 1);
        assert_eq!(
            w.wait(Some(Duration::from_millis(50))).expect("wait"),
            OomEvent::Timeout,
            "a rewrite without a new OOM is not an event"
        );
        events(3, 2);
        assert_eq!(
            w.wait(Some(Duration::from_secs(5))).expect("wait"),
            OomEvent::Oom(2)
        );
        events(3, 3);
        std::fs::write(dir.join("cgroup.events"), "populated 0\nfrozen 0\n")
            .expect("cgroup.events");
        assert_eq!(
            w.wait(Some(Duration::from_secs(5))).expect("wait"),
            OomEvent::Oom(1),
            "the last kill is reported before the end"
        );
        assert_eq!(w.wait(None).expect("wait"), OomEvent::Gone);
        let mut it = OomEvents::new(w);
        assert!(it.next().is_none());
    }

    #[test]
    fn v2_without_memory_controller_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = OomWatcher::v2(tmp.path()).err().expect("no memory.events");
        assert!(err.to_string().contains("memory.events"), "{err}");
    }
}
