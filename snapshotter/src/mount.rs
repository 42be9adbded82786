//! Performing the mounts a snapshotter describes, the way containerd's `mount.Mount` does:
//! options that name mount flags become flags, the rest the filesystem's data string; a
//! read-only bind is a bind followed by a read-only remount (the kernel ignores `MS_RDONLY` on
//! the first bind call).

use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

use crate::{Error, Mount, Result};

/// The kernel copies at most one page of mount data (including its NUL).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { nix::libc::sysconf(nix::libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Splits `options` into mount flags and the comma-joined data string.
pub fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in options {
        let (set, flag) = match o.as_str() {
            "async" => (false, MsFlags::MS_SYNCHRONOUS),
            "atime" => (false, MsFlags::MS_NOATIME),
            "bind" => (true, MsFlags::MS_BIND),
            "defaults" => continue,
            "dev" => (false, MsFlags::MS_NODEV),
            "diratime" => (false, MsFlags::MS_NODIRATIME),
            "dirsync" => (true, MsFlags::MS_DIRSYNC),
            "exec" => (false, MsFlags::MS_NOEXEC),
            "mand" => (true, MsFlags::MS_MANDLOCK),
            "noatime" => (true, MsFlags::MS_NOATIME),
            "nodev" => (true, MsFlags::MS_NODEV),
            "nodiratime" => (true, MsFlags::MS_NODIRATIME),
            "noexec" => (true, MsFlags::MS_NOEXEC),
            "nomand" => (false, MsFlags::MS_MANDLOCK),
            "norelatime" => (false, MsFlags::MS_RELATIME),
            "nostrictatime" => (false, MsFlags::MS_STRICTATIME),
            "nosuid" => (true, MsFlags::MS_NOSUID),
            "rbind" => (true, MsFlags::MS_BIND | MsFlags::MS_REC),
            "relatime" => (true, MsFlags::MS_RELATIME),
            "remount" => (true, MsFlags::MS_REMOUNT),
            "ro" => (true, MsFlags::MS_RDONLY),
            "rw" => (false, MsFlags::MS_RDONLY),
            "strictatime" => (true, MsFlags::MS_STRICTATIME),
            "suid" => (false, MsFlags::MS_NOSUID),
            "sync" => (true, MsFlags::MS_SYNCHRONOUS),
            _ => {
                data.push(o);
                continue;
            }
        };
        if set {
            flags |= flag;
        } else {
            flags &= !flag;
        }
    }
    (flags, data.join(","))
}

/// Mounts one mount onto `target` (which must exist).
pub fn mount(m: &Mount, target: &Path) -> Result<()> {
    let (flags, data) = parse_options(&m.options);
    if data.len() >= page_size() {
        return Err(Error::invalid(format!(
            "mount {} on {}: options are {} bytes, more than a page",
            m.kind,
            target.display(),
            data.len()
        )));
    }
    let fstype = if m.kind == "bind" {
        None
    } else {
        Some(m.kind.as_str())
    };
    let data_opt = (!data.is_empty()).then_some(data.as_str());
    let what = || format!("mount {} {} on {}", m.kind, m.source, target.display());
    nix::mount::mount(Some(m.source.as_str()), target, fstype, flags, data_opt)
        .map_err(|e| Error::io(what(), e.into()))?;
    let ro_bind = MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    if flags.contains(ro_bind) {
        let remount = flags | MsFlags::MS_REMOUNT;
        if let Err(e) = nix::mount::mount(None::<&str>, target, None::<&str>, remount, None::<&str>)
        {
            let _ = unmount(target);
            return Err(Error::io(
                format!("{}: read-only remount", what()),
                e.into(),
            ));
        }
    }
    Ok(())
}

/// Mounts every mount onto `target` in order; on failure undoes the ones already made.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount(m, target) {
            for _ in 0..i {
                let _ = unmount(target);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Unmounts the top mount at `target`, detaching it if it is busy.
pub fn unmount(target: &Path) -> Result<()> {
    umount_raw(target).map_err(|e| Error::io(format!("unmount {}", target.display()), e.into()))
}

fn umount_raw(target: &Path) -> nix::Result<()> {
    match nix::mount::umount2(target, MntFlags::empty()) {
        Err(nix::errno::Errno::EBUSY) => nix::mount::umount2(target, MntFlags::MNT_DETACH),
        r => r,
    }
}

/// Unmounts everything stacked at `target` (until it is no longer a mount point).
pub fn unmount_all(target: &Path) -> Result<()> {
    loop {
        match umount_raw(target) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(Error::io(format!("unmount {}", target.display()), e.into())),
        }
    }
}

/// The mount points at or under `dir` in this process's mount namespace, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<std::path::PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| std::path::PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_and_data_are_split() {
        let (f, d) = parse_options(&opts(&["ro", "rbind"]));
        assert_eq!(f, MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(d, "");
        let (f, d) = parse_options(&opts(&[
            "index=off",
            "workdir=/w",
            "upperdir=/u",
            "lowerdir=/a:/b",
        ]));
        assert_eq!(f, MsFlags::empty());
        assert_eq!(d, "index=off,workdir=/w,upperdir=/u,lowerdir=/a:/b");
        let (f, _) = parse_options(&opts(&["ro", "rw"]));
        assert_eq!(f, MsFlags::empty());
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
