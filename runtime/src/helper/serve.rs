//! The helper's side: a fresh, single-threaded runtime process that serves one request from its stdin
//! (a socket) and exits. It places the descriptors it was sent where the container's process expects
//! them, then runs the same create or exec the CLI runs.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use super::wire::{recv_frame, send_frame, Envelope, Reply, Request, WireError, VERSION};
use crate::container::create::Placement;
use crate::container::{self, Container, ExecOptions};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::state::State;

/// Serves the request on stdin and exits: 0 once a reply went out, 1 when none could.
pub fn serve() -> ! {
    // Shown by ps for the helper and for the container's init until it execs (the name would be the
    // number of the descriptor it was executed through).
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from the pointer.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"berth-runtime".as_ptr(), 0, 0, 0) };
    // Once the descriptors are placed, fd 2 is the container's stderr: a panic is reported on the
    // socket (below), never printed.
    std::panic::set_hook(Box::new(|_| {}));
    // SAFETY: fd 0 is the socket the library passed as stdin; this process owns it from here on.
    let mut sock = UnixStream::from(unsafe { OwnedFd::from_raw_fd(0) });
    let reply = answer(&mut sock);
    let r = send_frame(&sock, &reply, &[]).is_err();
    std::process::exit(i32::from(r))
}

/// Reads the request and runs it; a panic becomes an internal error.
fn answer(sock: &mut UnixStream) -> Reply {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(sock)));
    match outcome {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => Reply::Failed(WireError::from(&e)),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Reply::Failed(WireError::Other {
                kind: ErrorKind::Internal,
                msg: format!("runtime helper panicked: {what}"),
            })
        }
    }
}

fn run(sock: &mut UnixStream) -> Result<Reply> {
    // Still fd 0 here, so a re-execution (a helper binary that was not run sealed) keeps it.
    crate::exeseal::ensure_sealed()?;
    let netns = idle_netns(sock);
    let (value, fds) = recv_frame::<serde_json::Value>(sock)
        .ctx(|| "receive the helper request")?
        .ok_or_else(|| Error::invalid("runtime helper: no request"))?;
    super::priority::restore(&std::env::args_os().collect::<Vec<_>>())?;
    let version = value.get("version").and_then(|v| v.as_u64());
    if version != Some(u64::from(VERSION)) {
        return Err(Error::invalid(format!(
            "runtime helper speaks protocol {VERSION}, the library {}: use the berth-runtime binary of the same release",
            version.map_or_else(|| "?".to_string(), |v| v.to_string())
        )));
    }
    let envelope: Envelope = serde_json::from_value(value)
        .map_err(|e| Error::invalid(format!("runtime helper: bad request: {e}")))?;
    let placed = place(envelope.stdio, fds, sock)?;
    match envelope.request {
        Request::Create(opts) => {
            if opts.listen_fds + opts.preserve_fds != placed {
                return Err(Error::invalid(format!(
                    "runtime helper: {placed} descriptors for {} listen and {} preserved ones",
                    opts.listen_fds, opts.preserve_fds
                )));
            }
            // The init becomes the caller's child right away, so the caller need not wait for this
            // process to exit (see `client::call`).
            let place = Placement {
                to_parent: true,
                netns,
                ..Default::default()
            };
            match container::create::create_here(&opts, &place) {
                Ok(c) => Ok(Reply::Created(Box::new(c.state))),
                Err(e) => match place.killed.get() {
                    Some(init) => Ok(Reply::CreateFailed {
                        error: WireError::from(&e),
                        init,
                    }),
                    None => Err(e),
                },
            }
        }
        Request::Exec {
            dir,
            process,
            console_socket,
            preserve_fds,
        } => {
            if preserve_fds != placed {
                return Err(Error::invalid(format!(
                    "runtime helper: {placed} descriptors for {preserve_fds} preserved ones"
                )));
            }
            let c = Container {
                state: State::load(&dir)?,
                dir,
            };
            let opts = ExecOptions {
                console_socket,
                preserve_fds,
                ..Default::default()
            };
            let pid = c.exec_here(&process, &opts)?;
            Ok(Reply::Executed(pid.as_raw()))
        }
    }
}

/// A close-on-exec duplicate of `fd` numbered `floor` or above.
fn raise(fd: &impl AsRawFd, floor: RawFd) -> Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor this process owns; the result is checked.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) };
    if new < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "move a descriptor out of the way");
    }
    // SAFETY: fcntl just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn dup2(src: &OwnedFd, target: RawFd) -> Result<()> {
    // SAFETY: dup2 onto a number reserved for the container's process (whatever was there is
    // replaced); the new descriptor is not close-on-exec, which is the point.
    if unsafe { libc::dup2(src.as_raw_fd(), target) } < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| format!("place descriptor {target} for the container's process"));
    }
    Ok(())
}

/// Puts the received descriptors where the container's process expects them, as the CLI's process
/// would have them: stdin, stdout, stderr at 0-2 (/dev/null for one the library had none for), the rest
/// at 3, 4, … Returns how many went to 3 and up. The socket (fd 0 so far) moves above them first.
fn place(stdio: [bool; 3], fds: Vec<OwnedFd>, sock: &mut UnixStream) -> Result<u32> {
    let given = stdio.iter().filter(|p| **p).count();
    if fds.len() < given {
        return Err(Error::invalid("runtime helper: missing stdio descriptors"));
    }
    let rest = (fds.len() - given) as RawFd;
    let floor = 3 + rest;
    // Everything above the targets first, so no dup2 below lands on a descriptor still to be placed;
    // the originals close as they go.
    *sock = UnixStream::from(raise(sock, floor)?);
    let mut high = fds
        .iter()
        .map(|fd| raise(fd, floor))
        .collect::<Result<Vec<_>>>()?
        .into_iter();
    drop(fds);
    for (target, present) in stdio.iter().enumerate() {
        let src = if *present {
            high.next().expect("counted above")
        } else {
            let null = std::fs::File::open("/dev/null").ctx(|| "open /dev/null")?;
            raise(&null, floor)?
        };
        dup2(&src, target as RawFd)?;
    }
    for (i, src) in high.enumerate() {
        dup2(&src, 3 + i as RawFd)?;
    }
    Ok(rest as u32)
}

/// A new network namespace made while the helper has nothing else to do: a helper started ahead of
/// time (`helper::prestart`) waits for its request, and making the namespace is half a millisecond
/// of a container start otherwise spent by the init. Only when no request is waiting yet (a helper
/// spawned for a request goes straight to it) and the helper may (it is privileged). The helper
/// itself stays in its own namespace; create hands the new one to an init that wants a new network
/// namespace and no user namespace (see `Placement::netns`). Exits if it cannot get back to its own
/// namespace: the library then starts another helper.
fn idle_netns(sock: &UnixStream) -> Option<OwnedFd> {
    let mut byte = 0u8;
    // SAFETY: recv writes at most one byte into `byte`.
    let waiting = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if waiting >= 0 {
        return None;
    }
    let own = std::fs::File::open("/proc/self/ns/net").ok()?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
    let made = std::fs::File::open("/proc/self/ns/net");
    if nix::sched::setns(&own, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
        std::process::exit(1);
    }
    made.ok().map(OwnedFd::from)
}
