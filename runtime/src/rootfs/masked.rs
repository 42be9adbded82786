//! Masked and read-only paths, applied after pivot_root, when `/` is already the container root.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, Mode, SFlag};

use super::mounts::statvfs_to_msflags;
use crate::error::{Context, Error, Result};

fn open_path(path: &Path) -> Result<Option<OwnedFd>> {
    match open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        // SAFETY: `open` just returned this descriptor and nothing else owns it.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e).ctx(|| format!("open {}", path.display())),
    }
}

/// Whether the container has a procfs to reach handles through, looked up once per call of
/// `mask_paths` (and again only after masking /proc) or `readonly_paths`.
fn has_proc_fd() -> bool {
    Path::new("/proc/self/fd").is_dir()
}

/// `/proc/self/fd/N` when the container has a procfs (`proc_fd`), the verified path otherwise (no
/// other process runs in the container yet, so nothing can swap it in between).
fn reach(fd: &OwnedFd, path: &Path, proc_fd: bool) -> PathBuf {
    if proc_fd {
        PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    } else {
        path.to_path_buf()
    }
}

fn kind(fd: &OwnedFd, path: &Path) -> Result<(SFlag, u64)> {
    let st = fstat(fd.as_raw_fd()).ctx(|| format!("stat {}", path.display()))?;
    Ok((
        SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT,
        st.st_rdev,
    ))
}

/// The /dev/null used to mask files, checked to really be the 1:3 character device: a rootfs whose
/// /dev/null is a symlink to a host file would otherwise get that file bind-mounted in place of every
/// masked path (CVE-2025-31133).
fn verified_dev_null() -> Result<OwnedFd> {
    let path = Path::new("/dev/null");
    let fd = open_path(path)?
        .ok_or_else(|| Error::invalid("cannot mask paths: the container has no /dev/null"))?;
    let (k, rdev) = kind(&fd, path)?;
    if k != SFlag::S_IFCHR || libc::major(rdev) != 1 || libc::minor(rdev) != 3 {
        return Err(Error::invalid(
            "refusing to mask paths: /dev/null in the container is not the null device",
        ));
    }
    Ok(fd)
}

/// Masks each path: files with the verified /dev/null, directories with an empty read-only tmpfs
/// (labelled with `mount_label` on an SELinux host).
pub fn mask_paths(paths: &[String], mount_label: Option<&str>) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let null = verified_dev_null()?;
    let mut proc_fd = has_proc_fd();
    let tmpfs_data =
        crate::process::lsm::mount_data("nr_blocks=1,nr_inodes=1", "tmpfs", mount_label);
    for p in paths {
        let path = Path::new(p);
        let Some(fd) = open_path(path)? else { continue };
        match kind(&fd, path)?.0 {
            SFlag::S_IFDIR => {
                mount(
                    Some("tmpfs"),
                    &reach(&fd, path, proc_fd),
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                    Some(tmpfs_data.as_str()),
                )
                .ctx(|| format!("mask directory {p}"))?;
                // Masking /proc itself hides the descriptors' paths from here on.
                if Path::new("/proc/self/fd").starts_with(path) {
                    proc_fd = has_proc_fd();
                }
            }
            // A symlink in a masked location is left alone: binding over it would follow it.
            SFlag::S_IFLNK => continue,
            _ => mount(
                Some(&reach(&null, Path::new("/dev/null"), proc_fd)),
                &reach(&fd, path, proc_fd),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .ctx(|| format!("mask {p}"))?,
        }
    }
    Ok(())
}

pub fn readonly_paths(paths: &[String]) -> Result<()> {
    let proc_fd = !paths.is_empty() && has_proc_fd();
    for p in paths {
        let path = Path::new(p);
        let Some(fd) = open_path(path)? else { continue };
        if kind(&fd, path)?.0 == SFlag::S_IFLNK {
            continue;
        }
        let target = reach(&fd, path, proc_fd);
        mount(
            Some(&target),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind {p} for read-only"))?;
        remount_readonly(path)?;
    }
    Ok(())
}

/// Remounts the mount at `path` read-only, keeping its nosuid/nodev/noexec flags.
pub fn remount_readonly(path: &Path) -> Result<()> {
    let flags = nix::sys::statvfs::statvfs(path).ctx(|| format!("statvfs {}", path.display()))?;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | statvfs_to_msflags(flags.flags()),
        None::<&str>,
    )
    .ctx(|| format!("remount {} read-only", path.display()))
}
