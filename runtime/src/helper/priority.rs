//! The priority of a spare helper. A spare is started in the background right after a call, while the
//! container that call created usually starts, and its start-up (an exec, a network namespace) would
//! compete with that container for the CPU. So a spare starts at nice 19, only taking idle CPU time,
//! and once its request arrives, before it forks anything, it goes back to the priority the thread
//! that started it had (passed as `NICE_ARG` after `HELPER_ARG`), which its children inherit as before.
//!
//! Only when the way back is open: raising a priority needs CAP_SYS_NICE (or a generous RLIMIT_NICE).
//! Whether the process has it is tried once, on a short-lived thread of its own; otherwise spares
//! start at the caller's priority.

use std::sync::OnceLock;

use crate::error::{Context, Result};

/// The argument, after `HELPER_ARG`, whose value is the nice value the helper is to run requests at.
pub const NICE_ARG: &str = "--nice";

const LOWEST: libc::c_int = 19;

/// The calling thread's nice value (Linux: PRIO_PROCESS with id 0 is the calling thread).
fn this_thread() -> Option<libc::c_int> {
    // SAFETY: errno is thread-local; getpriority returns -1 both as a value and as an error, told apart
    // by errno.
    unsafe {
        *libc::__errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS, 0);
        (n != -1 || *libc::__errno_location() == 0).then_some(n)
    }
}

fn set_this_thread(nice: libc::c_int) -> std::io::Result<()> {
    // SAFETY: setpriority only changes the calling thread's nice value.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a thread of this process may go down to nice 19 and back up again.
fn can_come_back() -> bool {
    static TRIED: OnceLock<bool> = OnceLock::new();
    *TRIED.get_or_init(|| {
        std::thread::Builder::new()
            .name("berth-nice-probe".into())
            .spawn(|| {
                let Some(own) = this_thread() else {
                    return false;
                };
                set_this_thread(LOWEST).is_ok() && set_this_thread(own).is_ok()
            })
            .ok()
            .and_then(|t| t.join().ok())
            .unwrap_or(false)
    })
}

/// On a thread that is about to start a spare and then end: lowers it to nice 19, which the spare
/// inherits, and returns the nice value to pass to the spare with `NICE_ARG`. `None`: left alone.
pub fn lower_for_spare() -> Option<libc::c_int> {
    let own = this_thread()?;
    if own >= LOWEST || !can_come_back() {
        return None;
    }
    set_this_thread(LOWEST).ok()?;
    Some(own)
}

/// In the helper, once a request arrived: the nice value given after `NICE_ARG`, if any.
pub fn restore(args: &[std::ffi::OsString]) -> Result<()> {
    let Some(nice) = args
        .windows(2)
        .find(|w| w[0] == NICE_ARG)
        .and_then(|w| w[1].to_str()?.parse::<libc::c_int>().ok())
    else {
        return Ok(());
    };
    set_this_thread(nice).ctx(|| format!("restore the runtime helper's priority (nice {nice})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_thread_comes_back() {
        let (lowered, after) = std::thread::spawn(|| {
            let before = this_thread().expect("nice");
            let lowered = lower_for_spare();
            let after = this_thread().expect("nice");
            if let Some(own) = lowered {
                assert_eq!(own, before);
                assert_eq!(after, LOWEST);
                restore(&["x".into(), NICE_ARG.into(), own.to_string().into()]).expect("restore");
                assert_eq!(this_thread(), Some(before));
            }
            (lowered, after)
        })
        .join()
        .expect("thread");
        if nix::unistd::geteuid().is_root() {
            assert!(
                lowered.is_some(),
                "root may lower and restore (nice {after})"
            );
        }
    }
}
