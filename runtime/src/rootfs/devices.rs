//! Device nodes in the container's /dev: the default set every container gets, the spec's own devices,
//! and the conventional symlinks (`/dev/fd`, `/dev/stdin`...).

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{fstat, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use pathrs::{InodeType, Root};

use crate::error::{Context, Error, Result};

/// A device node to create: path in the container, kind, numbers, mode and owner.
#[derive(Debug, Clone)]
pub struct Node {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices the OCI spec says a Linux container always has.
pub fn default_nodes() -> Vec<Node> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(path, major, minor)| Node {
        path: path.into(),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

pub fn from_spec(d: &LinuxDevice) -> Result<Node> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::invalid(format!(
                "device {}: type \"a\" is only valid in cgroup rules",
                d.path().display()
            )))
        }
    };
    Ok(Node {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Bind-mounts the host's device at the same path onto an empty file inside the root.
fn bind_host(root: &Root, node: &Node) -> Result<()> {
    let target = super::mounts::create_destination(root, &node.path, false)?;
    let st = fstat(target.as_fd().as_raw_fd()).ctx(|| format!("stat {}", node.path.display()))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(Error::invalid(format!(
            "refusing to bind a device over {}: it is not a regular file",
            node.path.display()
        )));
    }
    nix::mount::mount(
        Some(&node.path),
        &super::mounts::fd_path(&target),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind host device {}", node.path.display()))
}

/// Creates `node` inside the root. An existing node of the same kind and numbers is accepted; anything
/// else at that path (a symlink to a host file, a regular file) is refused rather than trusted.
/// `made` lists the parent directories already made by earlier calls (all nodes but a spec's odd one
/// are in /dev), so each is made once.
pub fn create(root: &Root, node: &Node, bind: bool, made: &mut Vec<PathBuf>) -> Result<()> {
    if bind && node.kind != SFlag::S_IFIFO {
        return bind_host(root, node);
    }
    let perm = std::fs::Permissions::from_mode(node.mode);
    let dev = libc::makedev(node.major as u32, node.minor as u32);
    let inode = match node.kind {
        SFlag::S_IFBLK => InodeType::BlockDevice(perm, dev),
        SFlag::S_IFIFO => InodeType::Fifo(perm),
        _ => InodeType::CharacterDevice(perm, dev),
    };
    if let Some(parent) = node.path.parent() {
        if !made.iter().any(|m| m == parent) {
            super::inroot::mkdir_all(root, parent, 0o755)?;
            made.push(parent.to_path_buf());
        }
    }
    if let Err(e) = root.create(&node.path, &inode) {
        if root.resolve_nofollow(&node.path).is_err() {
            return Err(e).ctx(|| format!("create device {}", node.path.display()));
        }
    }
    let handle = root
        .resolve_nofollow(&node.path)
        .ctx(|| format!("open device {}", node.path.display()))?;
    let st = fstat(handle.as_fd().as_raw_fd()).ctx(|| format!("stat {}", node.path.display()))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let numbers_match = node.kind == SFlag::S_IFIFO
        || (libc::major(st.st_rdev) as u64 == node.major
            && libc::minor(st.st_rdev) as u64 == node.minor);
    if kind != node.kind || !numbers_match {
        return Err(Error::invalid(format!(
            "refusing to use {}: it exists and is not the expected device",
            node.path.display()
        )));
    }
    // The mode given to mknod may be cut by the umask (`prepare_devices` clears it) and the owner is
    // the runtime's, and an existing node keeps its own: fix whichever differs through the verified
    // handle rather than the path.
    let proc_path = super::mounts::fd_path(&handle);
    if st.st_mode & 0o7777 != node.mode {
        std::fs::set_permissions(&proc_path, std::fs::Permissions::from_mode(node.mode))
            .ctx(|| format!("chmod {}", node.path.display()))?;
    }
    if (st.st_uid, st.st_gid) != (node.uid, node.gid) {
        nix::unistd::chown(
            &proc_path,
            Some(nix::unistd::Uid::from_raw(node.uid)),
            Some(nix::unistd::Gid::from_raw(node.gid)),
        )
        .ctx(|| format!("chown {}", node.path.display()))?;
    }
    Ok(())
}

/// The symlinks runc and the spec's conventions put in /dev; an existing entry is left alone.
pub fn create_symlinks(root: &Root, with_devpts: bool) -> Result<()> {
    let mut links = vec![
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/dev/core", "/proc/kcore"));
    }
    if with_devpts {
        // The container's ptmx must be the one of its own devpts instance.
        if super::inroot::probe(root, Path::new("/dev/ptmx"), false).is_some() {
            let _ = root.remove_file("/dev/ptmx");
        }
        links.push(("/dev/ptmx", "pts/ptmx"));
    }
    for (link, target) in links {
        if super::inroot::probe(root, Path::new(link), false).is_some() {
            continue;
        }
        root.create(link, &InodeType::Symlink(target.into()))
            .ctx(|| format!("create symlink {link}"))?;
    }
    Ok(())
}
