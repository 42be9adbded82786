//! `start`: release a created container's init, which waits in `open(exec.fifo, O_WRONLY)`.

use std::io::Read;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::Container;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::state::EXEC_FIFO;
use crate::status::ContainerStatus;

impl Container {
    pub fn start(&mut self) -> Result<()> {
        let status = self.status();
        if !status.can_start() {
            return Err(Error::precondition(
                self.id(),
                format!("cannot start a container that is {status}"),
            ));
        }
        let fifo_path = self.dir.join(EXEC_FIFO);
        // Non-blocking open succeeds without a writer; the poll below then waits for init's byte while
        // checking that init is still alive, so a dead init cannot hang `start`.
        let mut fifo = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo_path)
            .ctx(|| format!("open {}", fifo_path.display()))?;
        loop {
            let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
            let n = match poll(&mut fds, PollTimeout::from(100u16)) {
                Err(nix::errno::Errno::EINTR) => 0,
                other => other.ctx(|| "wait on exec fifo")?,
            };
            if n > 0 {
                break;
            }
            if !self.init_alive() {
                return Err(Error::precondition(
                    self.id(),
                    "container init exited before start",
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut byte = [0u8; 1];
        let n = fifo.read(&mut byte).ctx(|| "read exec fifo")?;
        if n != 1 {
            return Err(Error::precondition(
                self.id(),
                "container init exited before start",
            ));
        }
        std::fs::remove_file(&fifo_path).ctx(|| format!("remove {}", fifo_path.display()))?;
        self.state.status = ContainerStatus::Running;
        self.save()?;
        if let Some(hs) = self
            .state
            .config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().clone())
        {
            hooks::run_all(&hs, &self.oci_state(), "poststart")?;
        }
        Ok(())
    }
}

use std::os::unix::fs::OpenOptionsExt;
