//! File descriptors: nothing of the runtime may reach the container (CVE-2024-21626, where a leaked
//! directory fd let `process.cwd = /proc/self/fd/N` land outside the rootfs).

use crate::error::{Error, Result};

/// Marks every descriptor from `3 + preserve` up as close-on-exec, so only stdio and the preserved fds
/// survive the exec; the runtime's own descriptors stay usable until then.
pub fn cloexec_from(preserve: u32) -> Result<()> {
    let first = 3 + preserve;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC; walk /proc/self/fd instead.
    let entries = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Error::Init(format!("list /proc/self/fd to close fds: {e}")))?;
    for fd in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        if fd >= first as i32 {
            // SAFETY: setting FD_CLOEXEC on a descriptor number; a stale number just fails with EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// After chdir into `process.cwd`, the kernel reports a cwd outside the process's root with an
/// "(unreachable)" prefix, which getcwd turns into ENOENT or a relative path: both mean breakout.
pub fn verify_cwd() -> Result<()> {
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(Error::Init(
            "current working directory is outside of container mount namespace root -- possible container breakout detected".into(),
        )),
    }
}
