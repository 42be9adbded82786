//! The helper's protocol: one request from the library, one reply from the helper. Each is a frame on a
//! unix stream socket, a little-endian u32 length and that much JSON; the request carries the
//! descriptors of the container's process as SCM_RIGHTS. Errors travel as their kind and parts, so the
//! library returns the error the helper's create or exec hit, variant and message unchanged.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sys::socket::{recvmsg, send, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use oci_spec::runtime::Process;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::container::CreateOptions;
use crate::error::{Error, ErrorKind};
use crate::state::State;

/// Bumped whenever a message changes shape: a library and a helper binary of different versions then
/// say so instead of failing on a field.
pub const VERSION: u32 = 2;

/// At most this many descriptors per request (the kernel's SCM_MAX_FD is 253).
pub const MAX_FDS: usize = 250;

/// Frames above this are refused: a request is options or a process, a reply a state.
const MAX_FRAME: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    /// Which of stdin, stdout and stderr come with the request, in that order ahead of the others; the
    /// helper gives a missing one /dev/null. The descriptors after them go to 3, 4, … in order.
    pub stdio: [bool; 3],
    pub request: Request,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// `listen_fds + preserve_fds` of the options count the descriptors after the stdio ones.
    Create(CreateOptions),
    /// `dir` is the container's state directory; `preserve_fds` counts the descriptors after stdio.
    Exec {
        dir: PathBuf,
        process: Box<Process>,
        console_socket: Option<PathBuf>,
        preserve_fds: u32,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Created(Box<State>),
    Executed(i32),
    Failed(WireError),
    /// Create failed after its init was forked and killed: the init is the caller's child (or was
    /// handed to it when stage 1 exited), for the caller to reap.
    CreateFailed {
        error: WireError,
        init: i32,
    },
}

/// An `Error` in a form that crosses a process boundary and comes back as the same variant where its
/// parts allow (an errno, a message); the rest keep their kind and message.
#[derive(Debug, Serialize, Deserialize)]
pub enum WireError {
    InvalidArgument(String),
    NotFound(String),
    AlreadyExists(String),
    FailedPrecondition {
        id: String,
        msg: String,
    },
    Unsupported(String),
    Init(String),
    Sys {
        context: String,
        errno: i32,
    },
    Io {
        context: String,
        errno: Option<i32>,
        msg: String,
    },
    CorruptState {
        path: PathBuf,
        msg: String,
    },
    Other {
        kind: ErrorKind,
        msg: String,
    },
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        match e {
            Error::InvalidArgument(m) => WireError::InvalidArgument(m.clone()),
            Error::NotFound(id) => WireError::NotFound(id.clone()),
            Error::AlreadyExists(id) => WireError::AlreadyExists(id.clone()),
            Error::FailedPrecondition { id, msg } => WireError::FailedPrecondition {
                id: id.clone(),
                msg: msg.clone(),
            },
            Error::Unsupported(m) => WireError::Unsupported(m.clone()),
            Error::Init(m) => WireError::Init(m.clone()),
            Error::Sys { context, source } => WireError::Sys {
                context: context.clone(),
                errno: *source as i32,
            },
            Error::Io { context, source } => WireError::Io {
                context: context.clone(),
                errno: source.raw_os_error(),
                msg: source.to_string(),
            },
            Error::CorruptState { path, msg } => WireError::CorruptState {
                path: path.clone(),
                msg: msg.clone(),
            },
            other => WireError::Other {
                kind: other.kind(),
                msg: other.to_string(),
            },
        }
    }
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Self {
        match w {
            WireError::InvalidArgument(m) => Error::InvalidArgument(m),
            WireError::NotFound(id) => Error::NotFound(id),
            WireError::AlreadyExists(id) => Error::AlreadyExists(id),
            WireError::FailedPrecondition { id, msg } => Error::FailedPrecondition { id, msg },
            WireError::Unsupported(m) => Error::Unsupported(m),
            WireError::Init(m) => Error::Init(m),
            WireError::Sys { context, errno } => Error::Sys {
                context,
                source: nix::errno::Errno::from_raw(errno),
            },
            WireError::Io {
                context,
                errno,
                msg,
            } => Error::Io {
                context,
                source: errno.map_or_else(
                    || std::io::Error::other(msg),
                    std::io::Error::from_raw_os_error,
                ),
            },
            WireError::CorruptState { path, msg } => Error::CorruptState { path, msg },
            WireError::Other { kind, msg } => Error::Reported { kind, msg },
        }
    }
}

/// Sends one frame with `fds` attached.
pub fn send_frame<T: Serialize>(sock: &UnixStream, msg: &T, fds: &[RawFd]) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).expect("protocol messages serialize: plain data");
    let len = u32::try_from(body.len())
        .ok()
        .filter(|n| (*n as usize) <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::other("helper message too large"))?;
    let header = len.to_le_bytes();
    let iov = [IoSlice::new(&header), IoSlice::new(&body)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    // MSG_NOSIGNAL: a helper that died must be an error here, not a SIGPIPE for the caller.
    let mut sent = sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    let total = header.len() + body.len();
    while sent < total {
        let rest = if sent < header.len() {
            [&header[sent..], &body[..]].concat()
        } else {
            body[sent - header.len()..].to_vec()
        };
        match send(sock.as_raw_fd(), &rest, MsgFlags::MSG_NOSIGNAL) {
            Err(nix::errno::Errno::EINTR) => {}
            other => sent += other?,
        }
    }
    Ok(())
}

/// Receives one frame and the descriptors that came with it (close-on-exec); `None` on EOF before
/// the frame began.
pub fn recv_frame<T: DeserializeOwned>(
    sock: &UnixStream,
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut fds = Vec::new();
    let mut header = [0u8; 4];
    if !fill(sock, &mut header, &mut fds, true)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other("helper message too large"));
    }
    let mut body = vec![0u8; len];
    fill(sock, &mut body, &mut fds, false)?;
    let msg = serde_json::from_slice(&body)
        .map_err(|e| std::io::Error::other(format!("bad helper message: {e}")))?;
    Ok(Some((msg, fds)))
}

/// Reads exactly `buf.len()` bytes, collecting descriptors. Returns false on EOF before the first byte
/// when `eof_ok`; EOF anywhere else is an error.
fn fill(
    sock: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    eof_ok: bool,
) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(&mut buf[got..])];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => other?,
        };
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: the kernel installed these descriptors in this process for this message;
                // nothing else owns them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(std::io::Error::other(
                "too many descriptors in a helper message",
            ));
        }
        if msg.bytes == 0 {
            if got == 0 && eof_ok {
                return Ok(false);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += msg.bytes;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_come_back_as_they_left() {
        let errors = [
            Error::AlreadyExists("web".into()),
            Error::precondition("web", "cannot start a container that is running"),
            Error::Init("exec: \"nope\": executable file not found in $PATH".into()),
            Error::Sys {
                context: "create pid namespace".into(),
                source: nix::errno::Errno::EPERM,
            },
            Error::Io {
                context: "read x".into(),
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            },
            Error::Io {
                context: "copy".into(),
                source: std::io::Error::other("odd"),
            },
        ];
        for e in errors {
            let json = serde_json::to_vec(&WireError::from(&e)).expect("serialize");
            let back: Error = serde_json::from_slice::<WireError>(&json)
                .expect("deserialize")
                .into();
            assert_eq!(back.to_string(), e.to_string());
            assert_eq!(back.kind(), e.kind());
            assert_eq!(std::mem::discriminant(&back), std::mem::discriminant(&e));
        }
    }

    #[test]
    fn frames_carry_descriptors_and_large_bodies() {
        let (a, b) = UnixStream::pair().expect("socketpair");
        let (r, _w) = nix::unistd::pipe().expect("pipe");
        let big = "x".repeat(1 << 20);
        let writer = std::thread::spawn(move || {
            send_frame(&a, &big, &[r.as_raw_fd(), r.as_raw_fd()]).expect("send");
        });
        let (got, fds): (String, _) = recv_frame(&b).expect("recv").expect("a frame");
        writer.join().expect("writer");
        assert_eq!(got.len(), 1 << 20);
        assert_eq!(fds.len(), 2);
        assert!(recv_frame::<String>(&b).expect("eof").is_none());
    }
}
