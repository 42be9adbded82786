//! Terminals: a pty allocated inside the container, its master handed to the caller over the console
//! socket (SCM_RIGHTS), its slave made the process's controlling terminal and stdio.
//!
//! The slave is opened from the master with TIOCGPTPEER, never by its /dev/pts/N path, so a container
//! cannot swap that path for a symlink in between (CVE-2025-52565).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Process;

use crate::error::{Context, Error, Result};

/// Connects to the console socket; done by the runtime in the host's mount namespace.
pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).ctx(|| format!("connect to console socket {}", path.display()))
}

/// Checks that a terminal and a console socket come together, as runc insists.
pub fn check(process: &Process, console_socket: Option<&Path>) -> Result<()> {
    match (process.terminal() == Some(true), console_socket.is_some()) {
        (true, false) => Err(Error::invalid(
            "process.terminal is set but no --console-socket was given",
        )),
        (false, true) => Err(Error::invalid(
            "--console-socket given but process.terminal is not set",
        )),
        _ => Ok(()),
    }
}

fn ioctl_int(fd: i32, req: libc::Ioctl, arg: libc::c_int, what: &str) -> Result<libc::c_int> {
    // SAFETY: these tty ioctls take an integer argument by value and no pointers.
    let rc = unsafe { libc::ioctl(fd, req, arg) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| what.to_string());
    }
    Ok(rc)
}

/// Runs in the container's process (after its root is the container's): allocates the pty from the
/// container's /dev/ptmx, sends the master, and takes the slave as controlling terminal and stdio.
pub fn setup(socket: &UnixStream, process: &Process) -> Result<()> {
    let master = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /dev/ptmx in the container")?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int through the pointer, which points at a live local.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "unlock pty");
    }
    let slave = ioctl_int(
        master.as_raw_fd(),
        libc::TIOCGPTPEER,
        libc::O_RDWR | libc::O_NOCTTY,
        "open pty peer",
    )?;
    // SAFETY: TIOCGPTPEER returned a fresh descriptor that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some(size) = process.console_size() {
        let ws = libc::winsize {
            ws_row: size.height() as u16,
            ws_col: size.width() as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize through the pointer, which points at a live local.
        if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "set console size");
        }
    }
    nix::unistd::fchown(
        slave.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(process.user().uid())),
        None,
    )
    .ctx(|| "chown pty to the process user")?;

    let name = b"/dev/ptmx";
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .ctx(|| "send pty master over the console socket")?;
    drop(master);

    nix::unistd::setsid().ctx(|| "start a new session")?;
    ioctl_int(
        slave.as_raw_fd(),
        libc::TIOCSCTTY,
        0,
        "set controlling terminal",
    )?;
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target).ctx(|| "make the pty stdio")?;
    }
    if slave.as_raw_fd() < 3 {
        // dup2 already reused it as stdio; dropping would close one of 0..2.
        std::mem::forget(slave);
    }
    Ok(())
}
