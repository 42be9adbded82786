//! Spare snapshot directories, made ahead of time by a background thread.
//!
//! Most of a prepare's time goes to making its empty directories: on ext4, allocating an inode
//! scans past inodes freed in the last minutes, so each mkdir costs 0.06-0.8 ms depending on
//! what was deleted lately, three of them per overlay prepare. An implementation whose new
//! snapshots are always the same empty directories (overlay's `fs` and `work`) names them as a
//! template; a thread then keeps a few `spare-<n>` directories holding them ready, and a create
//! that asks for exactly that template renames a spare into place instead of making them. When
//! the pool is empty (a burst of prepares) a create makes its directories itself, as before.
//!
//! Spares are never recorded: cleanup leaves `spare-` names alone, and open removes those a
//! previous run left.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::records::EmptyDir;
use super::{lock, make_empty_dir, remove_dir_logged};
use crate::{Error, Result};

/// The name prefix of spare directories.
pub(super) const PREFIX: &str = "spare-";
/// How many spares are kept ready: enough for a container's prepare and a few unpack layers in a
/// row, few enough that an idle store holds next to nothing.
const READY: usize = 4;
/// How long the thread waits after failing to make a spare (a full disk, say) before trying
/// again.
const RETRY: Duration = Duration::from_secs(1);

/// One empty directory of a template: its name and the mode mkdir is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirSpec {
    pub name: &'static str,
    pub mode: u32,
}

struct Shared {
    snapshots: PathBuf,
    template: Vec<DirSpec>,
    state: Mutex<State>,
    wake: Condvar,
    seq: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Made spares: name under `snapshots/`, and the directories in it as made.
    ready: Vec<(String, Vec<EmptyDir>)>,
    stop: bool,
}

/// The pool and its thread; dropping it stops the thread and removes the unused spares.
pub(super) struct Spares {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Spares {
    pub(super) fn start(snapshots: &Path, template: Vec<DirSpec>) -> Result<Spares> {
        let shared = Arc::new(Shared {
            snapshots: snapshots.to_path_buf(),
            template,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            seq: AtomicU64::new(0),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("snapshot-spares".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::io("start the spare directory thread", e))?;
        Ok(Spares {
            shared,
            thread: Some(thread),
        })
    }

    /// A ready spare when `wanted` is the template: its path and directories as made.
    pub(super) fn take(&self, wanted: &[DirSpec]) -> Option<(PathBuf, Vec<EmptyDir>)> {
        if wanted != self.shared.template.as_slice() {
            return None;
        }
        let (name, dirs) = lock(&self.shared.state).ready.pop()?;
        self.shared.wake.notify_one();
        Some((self.shared.snapshots.join(name), dirs))
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for (name, _) in lock(&self.shared.state).ready.drain(..) {
            remove_dir_logged(&self.shared.snapshots.join(name));
        }
    }
}

impl Shared {
    fn run(&self) {
        // Background work: yield the CPU to the requests it makes spares for. Linux applies
        // the nice value to the calling thread only.
        // SAFETY: setpriority with PRIO_PROCESS and a tid reads no memory.
        let _ = unsafe {
            nix::libc::setpriority(
                nix::libc::PRIO_PROCESS,
                nix::unistd::gettid().as_raw() as _,
                19,
            )
        };
        loop {
            {
                let mut state = lock(&self.state);
                while !state.stop && state.ready.len() >= READY {
                    state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                if state.stop {
                    return;
                }
            }
            match self.make() {
                Ok(spare) => lock(&self.state).ready.push(spare),
                Err(e) => {
                    tracing::warn!("making a spare snapshot directory: {e}");
                    let state = lock(&self.state);
                    if state.stop {
                        return;
                    }
                    let _ = self.wake.wait_timeout(state, RETRY);
                }
            }
        }
    }

    fn make(&self) -> Result<(String, Vec<EmptyDir>)> {
        let name = format!("{PREFIX}{}", self.seq.fetch_add(1, Ordering::Relaxed));
        let path = self.snapshots.join(&name);
        std::fs::create_dir(&path)
            .map_err(|e| Error::io(format_args!("create {}", path.display()), e))?;
        let mut dirs = Vec::with_capacity(self.template.len());
        for spec in &self.template {
            match make_empty_dir(&path, spec.name, spec.mode) {
                Ok(d) => dirs.push(d),
                Err(e) => {
                    remove_dir_logged(&path);
                    return Err(e);
                }
            }
        }
        Ok((name, dirs))
    }
}
