//! berth-runtime used as a library from a multithreaded process, the way the shim uses it: create and
//! exec run in the runtime helper (spawned from the sealed binary), start, wait and delete in this
//! process. The benchmark is a subreaper, so each container's init is handed to it and waited for
//! directly.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_runtime::{Container, CreateOptions, ProcessIo};

/// Idle threads that make this process multithreaded (as a tokio server is) without taking CPU from
/// the measurement; they end when the value is dropped.
pub struct Threads {
    /// Dropping it wakes the threads: their `recv` fails.
    stop: Option<mpsc::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Threads {
    pub fn start(n: usize) -> Threads {
        let (tx, rx) = mpsc::channel::<()>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let threads = (0..n)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let _ = rx.lock().map(|r| r.recv());
                })
            })
            .collect();
        Threads {
            stop: Some(tx),
            threads,
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

pub struct Library {
    /// The runtime binary run as the helper.
    pub helper: PathBuf,
    pub root: PathBuf,
    null: Arc<OwnedFd>,
}

impl Library {
    /// With `prestart`, a helper is started ahead of each create (berth_runtime::helper::prestart).
    /// The library keeps that setting per helper path, so this row runs the binary through its own
    /// symlink beside `root`.
    pub fn new(helper: &Path, root: &Path, prestart: bool) -> Library {
        let null = std::fs::File::open("/dev/null").expect("open /dev/null");
        let helper = if prestart {
            let link = root.with_file_name("berth-runtime-prestarted");
            std::os::unix::fs::symlink(helper, &link).expect("symlink the helper binary");
            berth_runtime::helper::prestart(Some(&link)).expect("start the runtime helper");
            link
        } else {
            helper.to_path_buf()
        };
        Library {
            helper,
            root: root.to_path_buf(),
            null: Arc::new(OwnedFd::from(null)),
        }
    }

    fn create(&self, bundle: &Path, id: &str, stdout: Arc<OwnedFd>) -> Container {
        let opts = CreateOptions {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            root: self.root.clone(),
            helper_binary: Some(self.helper.clone()),
            io: ProcessIo {
                stdin: Some(self.null.clone()),
                stdout: Some(stdout),
                ..Default::default()
            },
            ..Default::default()
        };
        berth_runtime::container::create(&opts).expect("library create")
    }

    fn wait_and_delete(c: Container) {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(c.pid()), None);
        c.delete(false).expect("library delete");
    }

    /// One full cycle of `bundle`; returns (cycle, create + start).
    pub fn cycle(&self, bundle: &Path, id: &str) -> (Duration, Duration) {
        let t0 = Instant::now();
        let mut c = self.create(bundle, id, self.null.clone());
        c.start().expect("library start");
        let started = t0.elapsed();
        Self::wait_and_delete(c);
        (t0.elapsed(), started)
    }

    /// create → the probe's first instruction, seen as its byte arriving on the pipe.
    pub fn first_instruction(&self, bundle: &Path, id: &str) -> Duration {
        let (rx, tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let mut rx = std::fs::File::from(rx);
        let t0 = Instant::now();
        // The container holds the only write end once create returned.
        let mut c = self.create(bundle, id, Arc::new(tx));
        c.start().expect("library start");
        let mut byte = [0u8; 1];
        let n = rx.read(&mut byte).expect("read probe pipe");
        let first = t0.elapsed();
        assert_eq!(n, 1, "library: the container wrote nothing");
        Self::wait_and_delete(c);
        first
    }
}
