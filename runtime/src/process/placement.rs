//! Which CPU init starts on while the runtime finishes its side of create.
//!
//! A forked child is queued on its parent's CPU. Right after forking init the runtime goes on working
//! (cgroups, state) while init sets itself up, and the kernel often leaves init waiting behind the
//! runtime for the rest of its time slice while another CPU idles: on 2 CPUs, init's first step came a
//! median 0.3 ms (up to 0.8 ms) after the fork. So the runtime moves init off its own CPU right after
//! the fork, and init takes the runtime's CPU set back once it is in its cgroups (at `Go`, before any
//! of the container's own code runs).
//!
//! Only when the runtime may run on every online CPU: sched_setaffinity also records the mask as the
//! task's own choice, which the kernel intersects with every later cpuset change. Restoring "every
//! online CPU" constrains nothing, just as the inherited, unset mask did; restoring a narrower set
//! could shrink a container whose cpuset is changed later.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

use crate::error::{Context, Result};

/// The runtime's CPU set, when it is every online CPU and there are at least two.
pub struct Spread(CpuSet);

impl Spread {
    /// Called before the fork; `None` when init should simply inherit the runtime's placement.
    pub fn prepare() -> Option<Spread> {
        let own = sched_getaffinity(Pid::from_raw(0)).ok()?;
        let allowed = (0..CpuSet::count())
            .filter(|&c| own.is_set(c).unwrap_or(false))
            .count();
        // SAFETY: sysconf only reads system information.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        (allowed >= 2 && usize::try_from(online) == Ok(allowed)).then_some(Spread(own))
    }

    /// Runtime side, right after the fork: asks the kernel to run `init` on another CPU than this one.
    /// Best effort: on failure init only starts later.
    pub fn move_off_this_cpu(&self, init: Pid) {
        // SAFETY: sched_getcpu has no arguments; it returns -1 on failure.
        let Ok(here) = usize::try_from(unsafe { libc::sched_getcpu() }) else {
            return;
        };
        let mut elsewhere = self.0;
        if elsewhere.unset(here).is_ok() {
            let _ = sched_setaffinity(init, &elsewhere);
        }
    }

    /// In init, once it is in its cgroups: every online CPU again (the kernel narrows that to the
    /// container's cpuset).
    pub fn restore(&self) -> Result<()> {
        sched_setaffinity(Pid::from_raw(0), &self.0).ctx(|| "restore the CPU affinity")
    }
}
