//! The channel between the runtime and the container's init process while the container is built: a
//! SOCK_SEQPACKET socketpair carrying one JSON message per packet, so each side sees whole messages and
//! an EOF when the other dies.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Message {
    /// Runtime → init: the container's cgroup directories exist (init may bind them), though init may
    /// not be in them yet.
    CgroupsMade(CgroupsMade),
    /// Runtime → init: the init (whose host pid this is) is in its cgroups; go on.
    Go(i32),
    /// Stage 1 → runtime: the user namespace exists; write the id maps.
    MapIds,
    /// Runtime → stage 1: the id maps are written.
    IdsMapped,
    /// Stage 1 → runtime: init was forked into the pid namespace with this host pid; stage 1 exits.
    Child(i32),
    /// Init → runtime: namespaces and mounts exist; run prestart and createRuntime hooks.
    RunHooks,
    /// Runtime → init: the runtime's hooks are done.
    HooksDone,
    /// Init → runtime: everything is set up; init now waits on the exec fifo.
    Ready,
    /// Either way: the sender failed and gives up.
    Error(String),
}

/// What `Message::CgroupsMade` tells init.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CgroupsMade {
    /// For `cgroup` mounts: the container's directory in each hierarchy, by the hierarchy's name.
    pub dirs: Vec<(String, PathBuf)>,
    /// The files init moves itself into its cgroups through (`cgroups::enter_self`), at once; empty
    /// when the runtime moves it.
    pub enter: Vec<PathBuf>,
}

pub struct Channel(OwnedFd);

impl Channel {
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .ctx(|| "create sync socketpair")?;
        Ok((Channel(a), Channel(b)))
    }

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }

    pub fn send(&self, msg: &Message) -> Result<()> {
        let data = serde_json::to_vec(msg).expect("sync messages serialize");
        send(self.0.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL).ctx(|| "send on sync socket")?;
        Ok(())
    }

    /// The next message, or `None` when the other side closed (exited) without sending one.
    pub fn recv(&self) -> Result<Option<Message>> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut reset = false;
        let n = loop {
            match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                // The peer exited leaving messages of ours unread; the kernel reports that once,
                // ahead of what the peer sent before it went (its error report, typically).
                Err(nix::errno::Errno::ECONNRESET) if !reset => reset = true,
                other => break other.ctx(|| "receive on sync socket")?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| Error::Init(format!("bad sync message: {e}")))
    }

    /// An error the other side has already reported, without waiting. When a step of the runtime fails
    /// while init runs concurrently, init may have failed first (and be the reason the step failed):
    /// its own report is then the message worth returning.
    pub fn take_error(&self) -> Option<String> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            // Reported once, ahead of the queued messages (see `recv`).
            Err(nix::errno::Errno::ECONNRESET) => {
                recv(self.0.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT).ok()?
            }
            other => other.ok()?,
        };
        match serde_json::from_slice(&buf[..n]).ok()? {
            Message::Error(e) => Some(e),
            _ => None,
        }
    }

    /// Receives and insists on `want`; an `Error` from the other side becomes this side's error.
    pub fn expect(&self, want: Message) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            other => Err(unexpected(&format!("{want:?}"), other)),
        }
    }

    /// Receives `CgroupsMade`.
    pub fn expect_cgroups(&self) -> Result<CgroupsMade> {
        match self.recv()? {
            Some(Message::CgroupsMade(made)) => Ok(made),
            other => Err(unexpected("CgroupsMade", other)),
        }
    }
}

/// The error for receiving `got` while waiting for `want`: the other side's own error if it sent one.
fn unexpected(want: &str, got: Option<Message>) -> Error {
    match got {
        Some(Message::Error(e)) => Error::Init(e),
        Some(other) => Error::Init(format!("expected {want} on sync socket, got {other:?}")),
        None => Error::Init(format!("sync socket closed while waiting for {want}")),
    }
}
