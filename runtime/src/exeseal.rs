//! Protection against overwriting the runtime binary from inside a container (CVE-2019-5736).
//!
//! A container process can reach the runtime's executable through `/proc/<pid>/exe` while the runtime
//! runs inside the container's namespaces. The runtime therefore re-executes itself from a file that
//! cannot be written through that link:
//! - preferably through a detached, read-only bind mount of its own binary (open_tree + mount_setattr):
//!   `/proc/<pid>/exe` then resolves through a read-only mount that exists in no mount namespace, so an
//!   open for writing fails with EROFS and nobody inside can remount it. Cheap: no copy (the same idea as
//!   runc 1.2's read-only overlayfs).
//! - otherwise (no privilege, old kernel) from a sealed memfd copy, as runc did first.
//!
//! The library's helper (see `helper`) uses the same sealed handles, opened once per process and
//! executed for every helper it spawns, so the helper never needs to re-execute itself.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Context, Result};

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether the running executable cannot be written through `/proc/self/exe`: a sealed memfd, or a
/// file reached through a read-only mount. Only an exec changes the answer, so it is looked up once.
pub fn is_sealed() -> bool {
    static SEALED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SEALED.get_or_init(look_up_sealed)
}

fn look_up_sealed() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS takes no argument and only reads the descriptor's seals.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & SEALS == SEALS {
        return true;
    }
    nix::sys::statvfs::fstatvfs(&exe)
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

const OPEN_TREE_CLONE: libc::c_uint = 1;

/// A detached read-only bind mount of the file at `path`, as an O_PATH descriptor to exec.
fn readonly_clone(path: &Path) -> std::io::Result<File> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: open_tree reads the path string and returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: open_tree returned a fresh descriptor that nothing else owns.
    let tree = unsafe { File::from_raw_fd(fd as i32) };
    let readonly = crate::mountattr::Attrs::from_msflags(
        nix::mount::MsFlags::MS_RDONLY,
        nix::mount::MsFlags::empty(),
    );
    crate::mountattr::apply(&tree, readonly, false)?;
    Ok(tree)
}

/// A sealed memfd copy of the file at `path`.
fn sealed_copy(path: &Path) -> Result<File> {
    let mut src = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let name = CString::new("berth-runtime").expect("no NUL in literal");
    // SAFETY: memfd_create with a valid C string; the result is checked before use.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "memfd_create for the sealed runtime");
    }
    // SAFETY: memfd_create returned a fresh descriptor that nothing else owns.
    let mut copy = unsafe { File::from_raw_fd(fd) };
    std::io::copy(&mut src, &mut copy).ctx(|| "copy the runtime into a memfd")?;
    // SAFETY: F_ADD_SEALS takes an int of seal bits; the descriptor is the memfd created above.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "seal the runtime memfd");
    }
    Ok(copy)
}

/// A close-on-exec handle on the executable at `path` that cannot be written through: a read-only
/// detached mount of it, else a sealed memfd copy. Processes executed from it (through
/// `/proc/self/fd/N` or execveat) are safe from CVE-2019-5736.
pub fn open_sealed(path: &Path) -> Result<File> {
    match readonly_clone(path) {
        Ok(tree) => Ok(tree),
        Err(_) => sealed_copy(path),
    }
}

/// Re-executes the runtime from a sealed handle on itself unless it already runs from one. Returns
/// only when already sealed; otherwise it either execs or fails.
pub fn ensure_sealed() -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let exe = open_sealed(Path::new("/proc/self/exe"))?;
    let err = reexec(&exe);
    Err(err).ctx(|| "re-execute the runtime from a sealed copy")
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH) with the current arguments and environment; returns
/// only on failure.
fn reexec(exe: &File) -> std::io::Error {
    let args: Vec<CString> = match std::env::args_os()
        .map(|a| CString::new(a.as_os_str().as_bytes()))
        .collect::<std::result::Result<_, _>>()
    {
        Ok(a) => a,
        Err(_) => return std::io::Error::from(std::io::ErrorKind::InvalidInput),
    };
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let empty = CString::new("").expect("no NUL in literal");
    let err = nix::unistd::execveat(
        Some(exe.as_raw_fd()),
        &empty,
        &args,
        &env,
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    )
    .expect_err("execveat returns only on failure");
    std::io::Error::from(err)
}
