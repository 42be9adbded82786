//! The library's side of the helper: spawn it from the sealed binary, send the request with the
//! descriptors, take the reply, and reap the helper: after an exec wait for its exit (after which the
//! exec'd process has been reparented to the caller, if it is a subreaper); after a create in the
//! background, as the init is the caller's child already.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::wire::{recv_frame, send_frame, Envelope, Reply, Request, MAX_FDS, VERSION};
use super::{BINARY, HELPER_ARG};
use crate::container::{Container, CreateOptions, ExecOptions};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::process::fds::ProcessIo;

/// `create` in a helper process.
pub fn create(opts: &CreateOptions) -> Result<Container> {
    let (stdio, fds) = descriptors(&opts.io, opts.listen_fds + opts.preserve_fds)?;
    // The helper sees the caller's extra descriptors as preserved ones, after the caller's own.
    let mut wire = opts.clone();
    wire.preserve_fds = opts.preserve_fds + opts.io.extra.len() as u32;
    wire.bundle = absolute(&opts.bundle)?;
    wire.root = absolute(&opts.root)?;
    wire.pid_file = opts.pid_file.as_deref().map(absolute).transpose()?;
    wire.console_socket = opts.console_socket.as_deref().map(absolute).transpose()?;
    match call(
        opts.helper_binary.as_deref(),
        Request::Create(wire),
        stdio,
        &fds,
    )? {
        Reply::Created(state) => Ok(Container {
            dir: opts.root.join(&state.id),
            state: *state,
        }),
        Reply::Failed(e) => Err(e.into()),
        other => Err(unexpected(&other)),
    }
}

/// `exec` in a helper process.
pub fn exec(c: &Container, process: &Process, opts: &ExecOptions) -> Result<Pid> {
    let (stdio, fds) = descriptors(&opts.io, opts.preserve_fds)?;
    let request = Request::Exec {
        dir: absolute(&c.dir)?,
        process: Box::new(process.clone()),
        console_socket: opts.console_socket.as_deref().map(absolute).transpose()?,
        preserve_fds: opts.preserve_fds + opts.io.extra.len() as u32,
    };
    match call(opts.helper_binary.as_deref(), request, stdio, &fds)? {
        Reply::Executed(pid) => Ok(Pid::from_raw(pid)),
        Reply::Failed(e) => Err(e.into()),
        other => Err(unexpected(&other)),
    }
}

/// The helper may have been started earlier (see `prestart`), with another working directory.
fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).ctx(|| format!("resolve {}", p.display()))
}

fn unexpected(reply: &Reply) -> Error {
    Error::Reported {
        kind: ErrorKind::Internal,
        msg: format!("runtime helper: unexpected reply {reply:?}"),
    }
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; a closed number fails with EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// The descriptors to send, in the order of the protocol: the process's stdio (given, else the
/// caller's own when open), the caller's `3..3 + inherited`, then the extra ones.
fn descriptors(io: &ProcessIo, inherited: u32) -> Result<([bool; 3], Vec<RawFd>)> {
    let mut present = [false; 3];
    let mut fds = Vec::new();
    for (i, given) in io.stdio().into_iter().enumerate() {
        let fd = match given {
            Some(f) => Some(f.as_raw_fd()),
            None => Some(i as RawFd).filter(|fd| is_open(*fd)),
        };
        if let Some(fd) = fd {
            present[i] = true;
            fds.push(fd);
        }
    }
    for fd in 3..3 + inherited as RawFd {
        if !is_open(fd) {
            return Err(Error::invalid(format!(
                "descriptor {fd} to preserve is not open"
            )));
        }
        fds.push(fd);
    }
    fds.extend(io.extra.iter().map(|f| f.as_raw_fd()));
    if fds.len() > MAX_FDS {
        return Err(Error::invalid(format!(
            "{} descriptors for the container's process: at most {MAX_FDS} can be passed",
            fds.len()
        )));
    }
    Ok((present, fds))
}

/// A started helper process and the library's end of its socket.
pub(crate) struct Helper {
    child: Child,
    sock: UnixStream,
}

impl Helper {
    /// Starts the helper binary from its sealed handle; it waits for a request on its stdin, then
    /// takes the nice value `nice` if given (see `priority`).
    pub(crate) fn spawn(exe: &File, nice: Option<libc::c_int>) -> Result<Helper> {
        let (ours, theirs) = UnixStream::pair().ctx(|| "create the runtime helper's socketpair")?;
        let program = format!("/proc/self/fd/{}", exe.as_raw_fd());
        // No pre_exec closure: std can then use posix_spawn, and nothing of ours runs in the child.
        // The sealed handle is close-on-exec, yet reachable through /proc/self/fd until the exec.
        let mut cmd = Command::new(&program);
        cmd.arg0(BINARY)
            .arg(HELPER_ARG)
            .stdin(Stdio::from(OwnedFd::from(theirs)));
        if let Some(n) = nice {
            cmd.arg(super::priority::NICE_ARG).arg(n.to_string());
        }
        let child = cmd
            .spawn()
            .ctx(|| format!("start the runtime helper {program}"))?;
        // `cmd` goes here, closing our copy of the helper's end: its death is then an EOF.
        Ok(Helper { child, sock: ours })
    }

    /// Ends an unused helper: it sees EOF on its socket and exits.
    pub(crate) fn discard(mut self) {
        drop(self.sock);
        let _ = self.child.wait();
    }
}

/// Runs one request in a helper (the spare one if `prestart` left one) and returns its reply; the helper
/// has exited by then unless it created a container (then it is reaped in the background).
fn call(binary: Option<&Path>, request: Request, stdio: [bool; 3], fds: &[RawFd]) -> Result<Reply> {
    let c = super::checkout(binary)?;
    let envelope = Envelope {
        version: VERSION,
        stdio,
        request,
    };
    let (mut helper, spare) = match c.spare {
        Some(h) => (h, true),
        None => (Helper::spawn(&c.exe, None)?, false),
    };
    let mut reply = exchange(&helper, &envelope, fds);
    if spare && reply.as_ref().is_err_and(unread) {
        // The spare died while it waited (killed, say) without taking the request: a new one does.
        helper.discard();
        helper = Helper::spawn(&c.exe, None)?;
        reply = exchange(&helper, &envelope, fds);
    }
    // A created init is already the caller's child (forked with CLONE_PARENT, or handed over when the
    // user namespace's stage 1 exited): the helper's exit need not be waited for, only reaped. Any
    // other reply waits for the exit, which hands an exec'd process over to the caller when it is a
    // subreaper. ECHILD (a caller's reaper took the status first) is fine either way.
    let created = matches!(reply, Ok(Some(Reply::Created(_))));
    let status = if created {
        match helper.child.try_wait() {
            Ok(None) => None,
            done => Some(done.map(|s| s.expect("checked above"))),
        }
    } else {
        Some(helper.child.wait())
    };
    let unreaped = Arc::new(Mutex::new(status.is_none().then_some(helper.child)));
    if c.warm || status.is_none() {
        // Off the caller's path: the spawn waits for the new helper's exec, the reaping for the old
        // helper's exit (it sent its reply, so it exits right away).
        let (exe, path, warm, old) = (c.exe.clone(), c.path.clone(), c.warm, unreaped.clone());
        let background = std::thread::Builder::new()
            .name("berth-helper".into())
            .spawn(move || {
                // The old helper's exit first: it is quick, and the next helper's start-up then does
                // not compete with it for the CPU the container is starting on.
                reap(&old);
                if warm {
                    // This thread ends right after: lowered for good, it starts the spare at the
                    // lowest priority.
                    let nice = super::priority::lower_for_spare();
                    if let Ok(next) = Helper::spawn(&exe, nice) {
                        super::checkin(&path, next);
                    }
                }
            });
        if background.is_err() {
            // No thread: reap here rather than leave a zombie.
            reap(&unreaped);
        }
    }
    let exited = status.map_or_else(
        || "exiting".to_string(),
        |s| s.map_or_else(|e| e.to_string(), |s| s.to_string()),
    );
    match reply {
        Ok(Some(Reply::CreateFailed { error, init })) => {
            // The helper killed it; as its parent the caller reaps it. ECHILD: not ours after all (a
            // caller that is not a subreaper had a stage 1's init go to the system's init).
            let _ = nix::sys::wait::waitpid(Pid::from_raw(init), None);
            Ok(Reply::Failed(error))
        }
        Ok(Some(reply)) => Ok(reply),
        Ok(None) => Err(Error::Reported {
            kind: ErrorKind::Internal,
            msg: format!("runtime helper exited without a reply ({exited})"),
        }),
        Err(e) => Err(Error::Reported {
            kind: ErrorKind::Internal,
            msg: format!("runtime helper: {e} ({exited})"),
        }),
    }
}

/// Waits for a helper that already replied, if it is still to be reaped.
fn reap(slot: &Mutex<Option<Child>>) {
    let helper = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(mut helper) = helper {
        let _ = helper.wait();
    }
}

/// Sends the request and receives the reply (`None`: the helper closed the socket without one).
fn exchange(helper: &Helper, envelope: &Envelope, fds: &[RawFd]) -> std::io::Result<Option<Reply>> {
    send_frame(&helper.sock, envelope, fds)?;
    Ok(recv_frame::<Reply>(&helper.sock)?.map(|(reply, _)| reply))
}

/// The helper's end closed with the request still unread in it (or before it could be sent): the
/// helper never saw it, so another may take it.
fn unread(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET))
}
