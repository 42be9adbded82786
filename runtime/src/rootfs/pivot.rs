//! Making the rootfs the container's `/`.

use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use crate::error::{Context, Result};

/// pivot_root with the new root stacked on the old one (`pivot_root(".", ".")`), then the old root is
/// detached. It is made a slave first so the unmount does not propagate to the host.
pub fn pivot(rootfs: &Path) -> Result<()> {
    let dir = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old = open("/", dir, Mode::empty()).ctx(|| "open old root")?;
    let new =
        open(rootfs, dir, Mode::empty()).ctx(|| format!("open rootfs {}", rootfs.display()))?;
    let result = (|| {
        fchdir(new).ctx(|| "enter rootfs")?;
        pivot_root(".", ".").ctx(|| format!("pivot_root into {}", rootfs.display()))?;
        fchdir(old).ctx(|| "enter old root")?;
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| "make old root a slave")?;
        umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach old root")?;
        chdir("/").ctx(|| "enter new root")
    })();
    let _ = nix::unistd::close(old);
    let _ = nix::unistd::close(new);
    result
}

/// `--no-pivot`: move the rootfs over `/` and chroot. Weaker (the old root stays reachable by a process
/// that escapes the chroot), kept for filesystems where pivot_root is impossible (ramfs roots).
pub fn move_root(rootfs: &Path) -> Result<()> {
    chdir(rootfs).ctx(|| format!("enter rootfs {}", rootfs.display()))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .ctx(|| "move rootfs over /")?;
    chroot(".").ctx(|| "chroot into rootfs")?;
    chdir("/").ctx(|| "enter new root")
}
