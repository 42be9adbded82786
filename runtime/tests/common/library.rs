//! Helpers of the library tests: a busy multithreaded caller, pipes, waiting as the subreaper.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use berth_runtime::CreateOptions;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::{host_mounts_mention, memory_cgroup, Bundle, Runtime, BIN};

/// Threads that allocate and free in a loop, the way a server's worker threads do: a fork in this
/// process could copy the allocator's lock held by one of them.
pub struct Busy {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Busy {
    pub fn start(n: usize) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut keep = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        keep.push(vec![i as u8; 1024 + 512 * (keep.len() % 7)]);
                        if keep.len() > 64 {
                            keep.clear();
                        }
                        std::thread::sleep(std::time::Duration::from_micros(100));
                    }
                })
            })
            .collect();
        Busy { stop, threads }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Makes this test process the subreaper the helper's children are handed to, as the shim is.
pub fn become_subreaper() {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER");
}

/// A close-on-exec pipe (other tests spawn processes meanwhile, which must not inherit it).
pub fn pipe() -> (std::fs::File, Arc<OwnedFd>) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    (std::fs::File::from(r), Arc::new(w))
}

pub fn read_all(mut f: std::fs::File) -> String {
    let mut s = String::new();
    f.read_to_string(&mut s).expect("read pipe");
    s
}

pub fn options(rt: &Runtime, b: &Bundle, id: &str) -> CreateOptions {
    CreateOptions {
        id: id.to_string(),
        bundle: b.path().to_path_buf(),
        root: rt.root.path().to_path_buf(),
        helper_binary: Some(PathBuf::from(BIN)),
        ..Default::default()
    }
}

pub fn exit_code(pid: i32) -> i32 {
    match waitpid(Pid::from_raw(pid), None).expect("wait for the container's process") {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        other => panic!("unexpected wait status {other:?}"),
    }
}

pub fn parent_of(pid: i32) -> i32 {
    stat_of(pid)
        .and_then(|c| c.fields.first()?.parse().ok())
        .expect("ppid")
}

pub fn assert_gone(rt: &Runtime, b: &Bundle, id: &str) {
    assert!(!rt.state_dir(id).exists(), "state of {id} left behind");
    if super::cgroup_v1() {
        assert!(!memory_cgroup(id).exists(), "cgroup of {id} left behind");
    }
    assert!(
        !host_mounts_mention(&b.rootfs()),
        "a rootfs mount left behind"
    );
}

/// The process (a container's init before start) runs the runtime from a sealed handle, not from the
/// host file, and nothing opens its image for writing (CVE-2019-5736).
pub fn assert_sealed_exe(pid: i32) {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
    let host = std::fs::canonicalize(BIN).expect("binary path");
    assert_ne!(exe, host, "init runs the host binary directly");
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/exe"))
        .expect_err("the runtime image behind /proc/PID/exe is writable");
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::EROFS) | Some(libc::EPERM) | Some(libc::ETXTBSY)
        ),
        "{err}"
    );
}

/// Waits (up to two seconds) until no child of this process is a zombie still named berth-runtime: a
/// helper that replied, or an init killed before its exec, that nobody reaped. Other tests' helpers
/// pass through that state briefly, so it is polled.
pub fn assert_no_runtime_zombies() {
    let zombies = || -> Vec<i32> {
        own_children()
            .into_iter()
            .filter(|c| c.state == 'Z' && c.comm == "berth-runtime")
            .map(|c| c.pid)
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let left = zombies();
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "unreaped runtime processes: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A child of this process, from its /proc/PID/stat.
pub struct Child {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    /// The fields after the state, split on spaces (ppid first).
    pub fields: Vec<String>,
}

/// The nice value of process `pid` (field 19 of its stat).
pub fn nice_of(pid: i32) -> i64 {
    stat_of(pid)
        .and_then(|c| c.fields.get(15)?.parse().ok())
        .expect("nice field")
}

fn stat_of(pid: i32) -> Option<Child> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let mut rest = stat.get(close + 2..)?.split(' ');
    Some(Child {
        pid,
        comm: stat[open + 1..close].to_string(),
        state: rest.next()?.chars().next()?,
        fields: rest.map(str::to_string).collect(),
    })
}

/// This process's children, zombies included.
pub fn own_children() -> Vec<Child> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .expect("list /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat_of)
        .filter(|c| c.fields.first() == Some(&me))
        .collect()
}
