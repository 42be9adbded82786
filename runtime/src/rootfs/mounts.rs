//! Mounting the spec's mounts under the container root. Every destination is resolved inside the root
//! (openat2 `RESOLVE_IN_ROOT` through pathrs) and the mount goes onto the resolved file descriptor through
//! `/proc/self/fd/N`, so neither `..` nor a symlink in the rootfs can move a mount onto the host
//! (CVE-2021-30465 was the string-joining version of this race).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;
use pathrs::flags::OpenFlags;
use pathrs::{Handle, Root};

use super::options::{self, MountOptions};
use crate::error::{Context, Error, Result};

/// What the mounts need to know besides the mount itself.
pub struct MountEnv<'a> {
    pub bundle: &'a Path,
    /// The container has its own network namespace, so it may mount a fresh sysfs.
    pub private_net: bool,
    /// The container's own cgroup directory in each host hierarchy, by hierarchy name, for `cgroup` mounts.
    pub cgroup_dirs: &'a [(String, PathBuf)],
    /// SELinux label for the filesystems the runtime creates (`linux.mountLabel`).
    pub mount_label: Option<&'a str>,
}

/// The magic-link path through which mount(2) reaches exactly the inode `fd` refers to.
pub fn fd_path(fd: &impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// Destinations are relative to the container root even when written relative or with `..`: the
/// resolver clamps `..` at the root.
fn in_root(dest: &Path) -> PathBuf {
    Path::new("/").join(dest)
}

pub fn mount_entry(root: &Root, m: &Mount, env: &MountEnv) -> Result<()> {
    let typ = m.typ().as_deref().unwrap_or("none");
    let opts = options::parse(m.options().as_deref().unwrap_or_default());
    let dest = in_root(m.destination());
    let bind = opts.bind || typ == "bind";
    if matches!(typ, "proc" | "sysfs") {
        refuse_symlink(root, &dest, typ)?;
    }
    if bind {
        let source = bind_source(m, env.bundle)?;
        let is_dir = std::fs::metadata(&source)
            .ctx(|| format!("bind mount source {}", source.display()))?
            .is_dir();
        let target = create_destination(root, &dest, is_dir)?;
        let mut flags = MsFlags::MS_BIND;
        if opts.recursive {
            flags |= MsFlags::MS_REC;
        }
        mount(
            Some(&source),
            &fd_path(&target),
            None::<&str>,
            flags,
            None::<&str>,
        )
        .ctx(|| format!("bind mount {} on {}", source.display(), dest.display()))?;
        remount_bind(root, &dest, &opts)?;
        return apply_propagation(root, &dest, &opts);
    }
    let target = create_destination(root, &dest, true)?;
    match typ {
        "cgroup" | "cgroup2" => return mount_cgroup_dirs(root, &dest, &opts, env),
        "sysfs" if !env.private_net => {
            // A fresh sysfs needs a private network namespace; like runc, fall back to the host's, read-only.
            mount(
                Some("/sys"),
                &fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx(|| format!("bind host sysfs on {}", dest.display()))?;
            let ro = MountOptions {
                flags: opts.flags | MsFlags::MS_RDONLY,
                cleared: opts.cleared,
                ..MountOptions::default()
            };
            remount_bind(root, &dest, &ro)?;
        }
        _ => {
            let source = m
                .source()
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| typ.to_string());
            let data = crate::process::lsm::mount_data(&opts.data.join(","), typ, env.mount_label);
            mount(
                Some(source.as_str()),
                &fd_path(&target),
                Some(typ),
                opts.flags & !MsFlags::MS_REMOUNT,
                (!data.is_empty()).then_some(data.as_str()),
            )
            .ctx(|| format!("mount {typ} on {}", dest.display()))?;
        }
    }
    apply_propagation(root, &dest, &opts)
}

fn bind_source(m: &Mount, bundle: &Path) -> Result<PathBuf> {
    let source = m.source().as_ref().ok_or_else(|| {
        Error::invalid(format!(
            "bind mount on {} has no source",
            m.destination().display()
        ))
    })?;
    Ok(if source.is_absolute() {
        source.clone()
    } else {
        bundle.join(source)
    })
}

/// runc's rule (CVE-2019-16884 and friends): procfs and sysfs only go on ordinary directories, so a rootfs
/// cannot redirect them with a symlink.
fn refuse_symlink(root: &Root, dest: &Path, typ: &str) -> Result<()> {
    match root.resolve_nofollow(dest) {
        Ok(handle) => {
            let meta = nix::sys::stat::fstat(handle.as_fd().as_raw_fd())
                .ctx(|| format!("stat {}", dest.display()))?;
            let fmt = nix::sys::stat::SFlag::from_bits_truncate(meta.st_mode)
                & nix::sys::stat::SFlag::S_IFMT;
            if fmt != nix::sys::stat::SFlag::S_IFDIR {
                return Err(Error::invalid(format!(
                    "{typ} mount destination {} must be mounted on ordinary directory",
                    dest.display()
                )));
            }
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

/// Creates the destination (a directory, or an empty file for a file bind mount) inside the root and
/// returns an O_PATH handle on it.
pub fn create_destination(root: &Root, dest: &Path, dir: bool) -> Result<Handle> {
    if dir {
        return super::inroot::mkdir_all(root, dest, 0o755);
    }
    if let Some(parent) = dest.parent() {
        super::inroot::mkdir_all(root, parent, 0o755)?;
    }
    if super::inroot::probe(root, dest, true).is_none() {
        let file_perm =
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644);
        root.create_file(dest, OpenFlags::O_CLOEXEC, &file_perm)
            .ctx(|| format!("create mount point {}", dest.display()))?;
    }
    root.resolve(dest)
        .ctx(|| format!("resolve mount point {}", dest.display()))
}

/// Bind mounts ignore most flags on the first call; they take effect through a remount of the new mount,
/// reached by resolving the destination again (the old handle still points below the new mount).
pub fn remount_bind(root: &Root, dest: &Path, opts: &MountOptions) -> Result<()> {
    if remount_flags(opts).is_empty() {
        return Ok(());
    }
    let target = root
        .resolve(dest)
        .ctx(|| format!("resolve mount {}", dest.display()))?;
    remount_bind_fd(&target, dest, opts)
}

/// The flags of `opts` a bind mount takes only through a remount.
fn remount_flags(opts: &MountOptions) -> MsFlags {
    opts.flags
        & (MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_NOATIME
            | MsFlags::MS_NODIRATIME
            | MsFlags::MS_RELATIME
            | MsFlags::MS_STRICTATIME)
}

/// `remount_bind` of the mount whose root `target` is.
fn remount_bind_fd(target: &impl AsFd, dest: &Path, opts: &MountOptions) -> Result<()> {
    let flags = remount_flags(opts);
    if flags.is_empty() {
        return Ok(());
    }
    let current =
        nix::sys::statvfs::fstatvfs(target).ctx(|| format!("statvfs {}", dest.display()))?;
    let kept = statvfs_to_msflags(current.flags()) & !opts.cleared;
    mount(
        None::<&str>,
        &fd_path(target),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | kept,
        None::<&str>,
    )
    .ctx(|| format!("remount {} with its options", dest.display()))
}

pub fn statvfs_to_msflags(f: nix::sys::statvfs::FsFlags) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let pairs = [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    pairs
        .iter()
        .filter(|(s, _)| f.contains(*s))
        .fold(MsFlags::empty(), |acc, (_, m)| acc | *m)
}

fn apply_propagation(root: &Root, dest: &Path, opts: &MountOptions) -> Result<()> {
    if opts.propagation.is_empty() {
        return Ok(());
    }
    let target = root
        .resolve(dest)
        .ctx(|| format!("resolve mount {}", dest.display()))?;
    for p in &opts.propagation {
        mount(
            None::<&str>,
            &fd_path(&target),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .ctx(|| format!("set propagation of {}", dest.display()))?;
    }
    Ok(())
}

/// A cgroup v1 mount: a tmpfs holding, for each hierarchy the runtime manages, a bind mount of the
/// container's own cgroup directory, so the container sees its cgroups and nothing above them.
fn mount_cgroup_dirs(root: &Root, dest: &Path, opts: &MountOptions, env: &MountEnv) -> Result<()> {
    let target = root
        .resolve(dest)
        .ctx(|| format!("resolve cgroup mount point {}", dest.display()))?;
    mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .ctx(|| format!("mount cgroup tmpfs on {}", dest.display()))?;
    let sub_opts = MountOptions {
        flags: opts.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        ..MountOptions::default()
    };
    // The fresh tmpfs, resolved once: a hierarchy's directory is made and opened by its single name
    // below it (nothing else can have touched the new tmpfs), not resolved from the root each time.
    let tmpfs = root
        .resolve(dest)
        .ctx(|| format!("resolve cgroup tmpfs {}", dest.display()))?;
    let mut single_names = Vec::new();
    for (name, host_dir) in env.cgroup_dirs {
        let sub = dest.join(name);
        let mut names = Path::new(name).components();
        let single = matches!(
            (names.next(), names.next()),
            (Some(std::path::Component::Normal(_)), None)
        );
        let point = if single {
            open_in(&tmpfs, name, &sub, true)?
        } else {
            OwnedFd::from(create_destination(root, &sub, true)?)
        };
        mount(
            Some(host_dir.as_path()),
            &fd_path(&point),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("bind cgroup {} on {}", host_dir.display(), sub.display()))?;
        if single {
            single_names.push(name.as_str());
        } else {
            remount_bind(root, &sub, &sub_opts)?;
        }
    }
    // The binds' options in one call over the tmpfs and every bind on it, instead of a remount per
    // bind; before Linux 5.12, a remount per bind.
    let attrs = crate::mountattr::Attrs::from_msflags(sub_opts.flags, opts.cleared);
    match crate::mountattr::apply(&tmpfs, attrs, true) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            for name in single_names {
                let sub = dest.join(name);
                // Opened again: the name now leads to the root of the new bind mount, which the
                // remount must reach.
                remount_bind_fd(&open_in(&tmpfs, name, &sub, false)?, &sub, &sub_opts)?;
            }
        }
        Err(e) => {
            return Err(e).ctx(|| format!("set the options of cgroup mount {}", dest.display()))
        }
    }
    // The tmpfs itself read-only as a filesystem too, as runc leaves it.
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            &fd_path(&tmpfs),
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )
        .ctx(|| format!("remount cgroup tmpfs {} read-only", dest.display()))?;
    }
    Ok(())
}

/// An O_PATH handle on the directory `name` (a single component) below `dir`, made first with
/// `create`; `what` names it in errors. Follows no symlink.
fn open_in(dir: &impl AsFd, name: &str, what: &Path, create: bool) -> Result<OwnedFd> {
    let at = Some(dir.as_fd().as_raw_fd());
    if create {
        match nix::sys::stat::mkdirat(at, name, nix::sys::stat::Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("create directory {}", what.display())),
        }
    }
    let flags = nix::fcntl::OFlag::O_PATH
        | nix::fcntl::OFlag::O_DIRECTORY
        | nix::fcntl::OFlag::O_NOFOLLOW
        | nix::fcntl::OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(at, name, flags, nix::sys::stat::Mode::empty())
        .ctx(|| format!("open {}", what.display()))?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
