use std::time::Duration;

use berth_runtime::exeseal;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{create, Global};

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: create::Args,
    /// Return once the container started instead of waiting for it.
    #[arg(short, long)]
    pub detach: bool,
}

/// Signals a foreground `run` forwards to the container instead of dying from them.
const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Blocks the forwarded signals and SIGCHLD before the fork, so none is lost; the child unblocks
/// everything before exec.
pub fn block_forwarded() -> anyhow::Result<SigSet> {
    let mut set = SigSet::empty();
    FORWARDED.iter().for_each(|s| set.add(*s));
    set.add(Signal::SIGCHLD);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    Ok(set)
}

/// Waits for `pid` (a child), forwarding signals to it; returns its exit code (128+N for signal N).
pub fn wait_forwarding(pid: Pid, set: &SigSet) -> anyhow::Result<i32> {
    loop {
        let sig = set.wait()?;
        if sig != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(pid, sig);
            continue;
        }
        match waitpid(pid, Some(WaitPidFlag::WNOHANG))? {
            WaitStatus::Exited(_, code) => return Ok(code),
            WaitStatus::Signaled(_, s, _) => return Ok(128 + s as i32),
            _ => {}
        }
    }
}

pub fn run(a: RunArgs, g: &Global) -> anyhow::Result<i32> {
    exeseal::ensure_sealed()?;
    let set = if a.detach {
        None
    } else {
        // With a user namespace the init is forked by a stage that exits; as a subreaper the runtime
        // still gets it as a child to wait for (runc does the same).
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer argument and no pointers.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Some(block_forwarded()?)
    };
    let mut c = berth_runtime::container::create(&a.create.options(g))?;
    if let Err(e) = c.start() {
        let _ = berth_runtime::Container::load(&g.root, &a.create.id).map(|c| c.delete(true));
        return Err(e.into());
    }
    let Some(set) = set else { return Ok(0) };
    let code = wait_forwarding(Pid::from_raw(c.pid()), &set)?;
    let c = berth_runtime::Container::load(&g.root, &a.create.id)?;
    let _ = c.wait_stopped(Duration::from_secs(1));
    c.delete(true)?;
    Ok(code)
}
