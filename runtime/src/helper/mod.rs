//! The runtime helper: how `create` and `exec` work from a multithreaded caller such as the shim.
//!
//! Building a container means forking a process that runs the runtime's own code (namespaces,
//! mounts, the sync protocol) until it execs the container's program. fork copies only the calling
//! thread; in a multithreaded process a lock another thread held (the allocator's, for one) stays
//! locked forever in the child, so nothing but exec may follow the fork there. The library therefore
//! runs create and exec in a fresh single-threaded process: it spawns the runtime binary (through
//! std's `Command`, posix_spawn underneath: no Rust code runs between fork and exec) with `HELPER_ARG`,
//! sends the request and the descriptors of the container's process over a socketpair (`wire`), and
//! gets the container's state or pid back, or the error with its kind and message. The helper runs the
//! same single-threaded code the CLI runs in-process.
//!
//! The binary is executed from a sealed handle (a read-only detached mount of it, else a sealed memfd
//! copy; `exeseal`) that is opened once per process and reused for every helper, so container
//! processes cannot overwrite it through `/proc/<pid>/exe` (CVE-2019-5736) and the helper needs no
//! re-execution of its own.
//!
//! The helper forks the container's init with CLONE_PARENT (as runc's nsexec does), so the init is the
//! caller's child from the start and create returns as soon as the init is ready; the helper, which
//! exits right after its reply, is reaped in the background (`client`). With a user namespace the init
//! is forked by stage 1, which the helper reaps, and is handed to the nearest child subreaper. An
//! exec'd process is the helper's child; the helper exits before exec returns, so like runc's it is
//! reparented to the nearest child subreaper too. A caller that waits for its containers' processes
//! (the shim, as containerd's shims do) makes itself one with `prctl(PR_SET_CHILD_SUBREAPER)`.
//!
//! A helper's exec and start-up are about half a millisecond of a container start. A caller that
//! calls [`prestart`] has one started ahead of each call, waiting on its socket. While it waits, such
//! a helper also makes the new network namespace the next init would otherwise create itself (another
//! few tenths of a millisecond); an init that wants a new network namespace and no user namespace
//! joins that one instead (`serve::idle_netns`). A spare started after a call does all that at the
//! lowest priority, off the CPU the container just created needs (`priority`).

pub(crate) mod client;
mod priority;
mod serve;
mod wire;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::process::fds::ProcessIo;

/// The first argument that makes the runtime binary serve one helper request on its stdin.
pub const HELPER_ARG: &str = "__berth-runtime-helper";

/// The binary's name, looked for beside the calling executable and in PATH.
const BINARY: &str = "berth-runtime";

/// Whether create or exec can run in the calling process: it is single-threaded (so it may fork and
/// go on running Rust code in the child), it runs from a sealed binary (so its children's
/// `/proc/<pid>/exe` cannot be written), and the process gets the caller's own descriptors unchanged.
/// The CLI always can; anything else goes through the helper.
pub fn can_run_here(io: &ProcessIo) -> bool {
    io.is_inherited() && crate::process::procfs::own_threads() == 1 && crate::exeseal::is_sealed()
}

/// Serves a helper request and exits when the process was started as a helper; returns otherwise.
/// The `berth-runtime` binary calls it first thing; any binary linking the library may do the same
/// and name itself as `helper_binary`.
pub fn serve_if_requested() {
    if std::env::args_os().nth(1).is_some_and(|a| a == HELPER_ARG) {
        serve::serve()
    }
}

/// The binary to run as the helper: `explicit`, else the calling executable when it is berth-runtime,
/// else berth-runtime beside it, else berth-runtime in PATH.
fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().ok();
    if let Some(exe) = &exe {
        if exe.file_name().is_some_and(|n| n == BINARY) {
            // Not the path: the running file itself, even if the path was replaced since.
            return Ok(PathBuf::from("/proc/self/exe"));
        }
        let sibling = exe.with_file_name(BINARY);
        if sibling.is_file() {
            return Ok(sibling);
        }
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(BINARY))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "no {BINARY} binary to run create and exec in (not beside {} nor in PATH): set helper_binary",
                exe.as_deref().unwrap_or(Path::new("the caller")).display()
            ))
        })
}

/// What the library keeps per helper binary for the life of the process: the sealed handle it is
/// executed from and, once `prestart` asked for it, a helper started ahead of the next call.
struct Binary {
    path: PathBuf,
    exe: Arc<File>,
    warm: bool,
    spare: Option<client::Helper>,
}

static BINARIES: Mutex<Vec<Binary>> = Mutex::new(Vec::new());

/// A helper binary as `client` uses it for one call.
pub(crate) struct Checkout {
    pub path: PathBuf,
    pub exe: Arc<File>,
    /// A helper started ahead of time, waiting for this request.
    pub spare: Option<client::Helper>,
    /// Whether to start the next spare once this call is done.
    pub warm: bool,
}

fn registry() -> std::sync::MutexGuard<'static, Vec<Binary>> {
    BINARIES.lock().unwrap_or_else(|p| p.into_inner())
}

/// The sealed handle on the helper binary for `explicit` (see `locate`), opened on first use, and the
/// spare helper if there is one.
pub(crate) fn checkout(explicit: Option<&Path>) -> Result<Checkout> {
    let path = locate(explicit)?;
    let mut binaries = registry();
    let i = match binaries.iter().position(|b| b.path == path) {
        Some(i) => i,
        None => {
            let exe = Arc::new(crate::exeseal::open_sealed(&path)?);
            binaries.push(Binary {
                path: path.clone(),
                exe,
                warm: false,
                spare: None,
            });
            binaries.len() - 1
        }
    };
    let b = &mut binaries[i];
    Ok(Checkout {
        path,
        exe: b.exe.clone(),
        spare: b.spare.take(),
        warm: b.warm,
    })
}

/// Keeps `helper` as the spare for `path` unless another call already left one.
pub(crate) fn checkin(path: &Path, helper: client::Helper) {
    let mut binaries = registry();
    if let Some(b) = binaries.iter_mut().find(|b| b.path == path) {
        if b.spare.is_none() {
            b.spare = Some(helper);
            return;
        }
    }
    drop(binaries);
    helper.discard();
}

/// Starts a helper for `helper_binary` (as in `CreateOptions::helper_binary`) ahead of time, and from
/// then on the next one as each create or exec through it returns (from a short-lived thread, off the
/// caller's path), so a call skips the helper's exec and start-up (about half a millisecond). The
/// waiting helper is an idle child of this process that exits when it does. It has the credentials
/// and namespaces of the thread that started it and the environment of that moment (requests carry
/// absolute paths): a caller whose threads differ in those should not use it.
pub fn prestart(helper_binary: Option<&Path>) -> Result<()> {
    let c = checkout(helper_binary)?;
    if let Some(b) = registry().iter_mut().find(|b| b.path == c.path) {
        b.warm = true;
    }
    let helper = match c.spare {
        Some(h) => h,
        None => client::Helper::spawn(&c.exe, None)?,
    };
    checkin(&c.path, helper);
    Ok(())
}
