//! Finding the container's program and replacing the init process with it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{access, AccessFlags};

use crate::error::{Error, Result};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolves `args[0]` the way runc does: a name with a slash is used as is, anything else is searched
/// in the container's `PATH` (from `process.env`). Runs after pivot_root, so it sees the container's files.
pub fn find_executable(name: &str, env: &[String]) -> Result<PathBuf> {
    let executable = |p: &Path| p.is_file() && access(p, AccessFlags::X_OK).is_ok();
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(Error::Init(format!(
                "exec: {name:?}: stat {name}: no such file or directory or not executable"
            )))
        };
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| executable(p))
        .ok_or_else(|| {
            Error::Init(format!(
                "exec: {name:?}: executable file not found in $PATH"
            ))
        })
}

/// Signal dispositions and the mask survive exec; the container must start with the defaults (the Rust
/// runtime ignores SIGPIPE, for one).
pub fn reset_signals() {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: installing SIG_DFL has no handler code to be unsafe about.
        let _ = unsafe { sigaction(sig, &dfl) };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

fn cstrings<'a>(items: impl Iterator<Item = &'a [u8]>) -> Result<Vec<CString>> {
    items
        .map(|b| CString::new(b).map_err(|_| Error::invalid("argument or env entry contains NUL")))
        .collect()
}

/// Replaces the process; returns only on failure.
pub fn exec(path: &Path, args: &[String], env: &[String]) -> Error {
    let prepared = (|| {
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Error::invalid("executable path contains NUL"))?;
        let argv = cstrings(args.iter().map(|a| a.as_bytes()))?;
        let envp = cstrings(env.iter().map(|e| e.as_bytes()))?;
        Ok::<_, Error>((path, argv, envp))
    })();
    match prepared {
        Ok((p, argv, envp)) => {
            let e =
                nix::unistd::execve(&p, &argv, &envp).expect_err("execve returns only on failure");
            Error::Init(format!("exec {:?}: {e}", p))
        }
        Err(e) => e,
    }
}
