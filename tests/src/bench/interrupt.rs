//! Ctrl-C and SIGTERM end the benchmark between operations instead of killing it outright, so
//! the daemons, their mounts and the temp dirs are still cleaned up by the normal drop path.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn note_signal(_: nix::libc::c_int) {
    // Only an atomic store: nothing else is async-signal-safe here.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT and SIGTERM.
pub fn install() -> anyhow::Result<()> {
    // SA_RESTART: a signal must not turn a blocking wait on ctr into a spurious error; the
    // flag is checked after each operation anyway.
    let action = SigAction::new(
        SigHandler::Handler(note_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and it
        // replaces no handler that other code in this process relies on.
        unsafe { sigaction(signal, &action) }
            .map_err(|err| anyhow::anyhow!("install {signal} handler: {err}"))?;
    }
    Ok(())
}

/// Fails once SIGINT or SIGTERM has arrived.
pub fn check() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        anyhow::bail!("interrupted; cleaning up");
    }
    Ok(())
}
