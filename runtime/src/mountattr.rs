//! mount_setattr(2): the flags of a mount, or of a whole tree of mounts, changed through a descriptor
//! in one call (Linux 5.12 and later; callers that have another way fall back on `ENOSYS`).

use std::os::fd::{AsFd, AsRawFd};

use nix::mount::MsFlags;

/// `struct mount_attr`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const RDONLY: u64 = 0x1;
const NOSUID: u64 = 0x2;
const NODEV: u64 = 0x4;
const NOEXEC: u64 = 0x8;
const ATIME_MASK: u64 = 0x70;
const RELATIME: u64 = 0x0;
const NOATIME: u64 = 0x10;
const STRICTATIME: u64 = 0x20;
const NODIRATIME: u64 = 0x80;

/// Attributes to set and to clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attrs {
    pub set: u64,
    pub clear: u64,
}

impl Attrs {
    /// The attributes for mount(2) flags `set`, and for the flags the options explicitly clear
    /// (`rw`, `suid`, `dev`, `exec`, `diratime`) unless also set. Any other flag is not an attribute.
    pub fn from_msflags(set: MsFlags, cleared: MsFlags) -> Attrs {
        let simple = |f: MsFlags| {
            [
                (MsFlags::MS_RDONLY, RDONLY),
                (MsFlags::MS_NOSUID, NOSUID),
                (MsFlags::MS_NODEV, NODEV),
                (MsFlags::MS_NOEXEC, NOEXEC),
                (MsFlags::MS_NODIRATIME, NODIRATIME),
            ]
            .iter()
            .filter(|(m, _)| f.contains(*m))
            .fold(0, |acc, (_, a)| acc | a)
        };
        let mut a = Attrs {
            set: simple(set),
            clear: simple(cleared) & !simple(set),
        };
        // One access-time mode replaces the others, as with mount(2); the kernel wants the whole
        // access-time field cleared alongside.
        let atime = [
            (MsFlags::MS_NOATIME, NOATIME),
            (MsFlags::MS_STRICTATIME, STRICTATIME),
            (MsFlags::MS_RELATIME, RELATIME),
        ]
        .into_iter()
        .find(|(m, _)| set.contains(*m));
        if let Some((_, mode)) = atime {
            a.set |= mode;
            a.clear |= ATIME_MASK;
        }
        a
    }
}

/// Applies `attrs` to the mount whose root `fd` is, and with `recursive` to every mount below it.
pub fn apply(fd: &impl AsFd, attrs: Attrs, recursive: bool) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set: attrs.set,
        attr_clr: attrs.clear,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: mount_setattr reads the empty path string and `attr`, whose size is passed alongside.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_fd().as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_to_attributes() {
        let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        assert_eq!(
            Attrs::from_msflags(ro | MsFlags::MS_RELATIME, MsFlags::empty()),
            Attrs {
                set: RDONLY | NOSUID | NODEV | NOEXEC | RELATIME,
                clear: ATIME_MASK
            }
        );
        // `rw,suid` with nosuid forced: only rw is cleared, nothing both set and cleared.
        assert_eq!(
            Attrs::from_msflags(MsFlags::MS_NOSUID, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID),
            Attrs {
                set: NOSUID,
                clear: RDONLY
            }
        );
        assert_eq!(
            Attrs::from_msflags(MsFlags::MS_NOATIME, MsFlags::empty()),
            Attrs {
                set: NOATIME,
                clear: ATIME_MASK
            }
        );
    }
}
