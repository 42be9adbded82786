//! Helpers of the lifecycle benchmark: the probe program that marks a container's first instruction, and
//! the bare kernel reference (a namespaced clone + exec with no runtime at all).

pub mod library;

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A static x86-64 executable whose first instruction starts `write(1, "x", 1)` and which then exits 0:
/// the byte on the container's stdout marks the moment the container's own code runs. Built byte by
/// byte (an ELF header, one loadable segment, eight instructions) so the probe itself costs nothing
/// but the exec: no loader, no libc start-up.
#[cfg(target_arch = "x86_64")]
pub fn first_write_probe() -> Option<Vec<u8>> {
    const BASE: u64 = 0x40_0000;
    const HEADERS: u64 = 64 + 56;
    let code: [u8; 34] = [
        0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (write)
        0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1 (stdout)
        0x48, 0x8d, 0x35, 0x10, 0x00, 0x00, 0x00, // lea rsi, [rip + 16] (the 'x' below)
        0xba, 0x01, 0x00, 0x00, 0x00, // mov edx, 1
        0x0f, 0x05, // syscall
        0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
        0x31, 0xff, // xor edi, edi
        0x0f, 0x05, // syscall
        b'x',
    ];
    let size = HEADERS + code.len() as u64;
    let mut elf = Vec::with_capacity(size as usize);
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    elf.extend_from_slice(&(BASE + HEADERS).to_le_bytes()); // entry: the first instruction
    elf.extend_from_slice(&64u64.to_le_bytes()); // program headers right after this header
    elf.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    for half in [64u16, 56, 1, 0, 0, 0] {
        // header size, program header size and count, section header size, count, name index
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // read + execute
    elf.extend_from_slice(&0u64.to_le_bytes()); // the whole file, from offset 0
    elf.extend_from_slice(&BASE.to_le_bytes()); // virtual address
    elf.extend_from_slice(&BASE.to_le_bytes()); // physical address
    elf.extend_from_slice(&size.to_le_bytes()); // size in the file
    elf.extend_from_slice(&size.to_le_bytes()); // size in memory
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // alignment
    elf.extend_from_slice(&code);
    Some(elf)
}

/// Other architectures fall back to busybox's `echo`, whose start-up then counts as container start.
#[cfg(not(target_arch = "x86_64"))]
pub fn first_write_probe() -> Option<Vec<u8>> {
    None
}

/// The v1 hierarchies mounted under /sys/fs/cgroup that carry controllers (what the runtimes join).
pub fn v1_hierarchies() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut post = post.split(' ');
            if post.next() != Some("cgroup") || post.nth(1)?.contains("name=") {
                return None;
            }
            pre.split(' ').nth(4).map(PathBuf::from)
        })
        .collect()
}

/// Keeps the cost of a v1 cgroup move the same for every measurement. Moving a process between v1
/// cgroups takes a process-wide lock whose writer waits for an RCU grace period unless another move
/// happened within the last one (about 5-10 ms here): a runtime timed right after a slow one (runc
/// takes 25 ms) or after a pause paid that wait, the next one not. `prime` moves an idle process of
/// the benchmark into a cgroup of its own and back right before each timed operation, so every
/// runtime's move finds the lock warm, as on a host that keeps starting containers.
pub struct Primer {
    child: std::process::Child,
    dir: PathBuf,
    root_procs: PathBuf,
}

impl Primer {
    /// In the first of `hierarchies`; `None` without v1 cgroups.
    pub fn new(hierarchies: &[PathBuf]) -> Option<Primer> {
        let hierarchy = hierarchies.first()?;
        let dir = hierarchy.join("berth-bench-primer");
        std::fs::create_dir_all(&dir).expect("create the primer cgroup");
        let child = std::process::Command::new("/bin/busybox")
            .args(["sleep", "100000"])
            .spawn()
            .expect("start the primer process");
        Some(Primer {
            child,
            dir,
            root_procs: hierarchy.join("cgroup.procs"),
        })
    }

    pub fn prime(&self) {
        let pid = self.child.id().to_string();
        std::fs::write(self.dir.join("cgroup.procs"), &pid).expect("move the primer");
        std::fs::write(&self.root_procs, &pid).expect("move the primer back");
    }
}

impl Drop for Primer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The kernel's share of a container start: clone with `flags` (the bundle's namespaces), exec
/// `program` (the bundle's busybox as `true`), wait. With `cgroups`, the child is first moved into a
/// fresh cgroup in each of those v1 hierarchies (as every runtime does before the container runs), which
/// shows what the cgroup move costs on its own.
pub struct Bare {
    program: CString,
    argv: [CString; 1],
    flags: libc::c_long,
    cgroups: Vec<PathBuf>,
}

impl Bare {
    pub fn new(program: &Path, flags: libc::c_int, hierarchies: &[PathBuf]) -> Bare {
        let cgroups: Vec<PathBuf> = hierarchies
            .iter()
            .map(|h| h.join("berth-bench-bare"))
            .collect();
        for dir in &cgroups {
            std::fs::create_dir_all(dir).expect("create bare-reference cgroup");
            if dir.parent().is_some_and(|h| h.join("cpuset.cpus").exists()) {
                // A new cpuset cgroup starts empty and refuses tasks.
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let v = std::fs::read_to_string(dir.parent().expect("parent").join(f))
                        .expect("read parent cpuset");
                    std::fs::write(dir.join(f), v.trim()).expect("seed cpuset");
                }
            }
        }
        Bare {
            program: CString::new(program.as_os_str().as_encoded_bytes()).expect("no NUL"),
            argv: [CString::new("true").expect("no NUL")],
            flags: libc::c_long::from(flags),
            cgroups,
        }
    }

    /// One clone + (cgroup move) + exec + wait.
    pub fn once(&self) -> Duration {
        let argv = [self.argv[0].as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        let (hold_r, hold_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let t0 = Instant::now();
        // SAFETY: a fork-style clone (no CLONE_VM, no new stack); the child only calls read, execve and
        // _exit on data prepared before the clone.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                self.flags | libc::c_long::from(libc::SIGCHLD),
                0,
                0,
                0,
                0,
            )
        };
        if pid == 0 {
            // SAFETY: async-signal-safe calls only, see above.
            unsafe {
                if !self.cgroups.is_empty() {
                    // Wait for the parent to move this process (EOF once the parent closes its end).
                    libc::close(hold_w.as_raw_fd());
                    let mut b = 0u8;
                    libc::read(hold_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
                }
                libc::execve(self.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127)
            }
        }
        assert!(pid > 0, "clone: {}", std::io::Error::last_os_error());
        for dir in &self.cgroups {
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())
                .expect("move the bare child into its cgroup");
        }
        drop(hold_w);
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None)
            .expect("wait for the bare child");
        let elapsed = t0.elapsed();
        drop(hold_r);
        assert!(
            matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
            "bare child: {status:?}"
        );
        elapsed
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        for dir in &self.cgroups {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// "statically linked" or "dynamically linked": whether an ELF executable names a program interpreter (PT_INTERP).
pub fn linking(path: &Path) -> &'static str {
    let Ok(elf) = std::fs::read(path) else {
        return "?";
    };
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let phoff = elf
        .get(32..40)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    let (Some(phoff), Some(size), Some(count)) = (phoff, u16_at(54), u16_at(56)) else {
        return "?";
    };
    const PT_INTERP: u32 = 3;
    if (0..count).any(|i| u32_at(phoff + i * size) == Some(PT_INTERP)) {
        "dynamically linked"
    } else {
        "statically linked"
    }
}
