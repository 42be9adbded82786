//! Device nodes in the container's /dev: the default set every container gets, the spec's own devices,
//! and the conventional symlinks (`/dev/fd`, `/dev/stdin`...).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{fstat, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use pathrs::{Handle, Root};

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

/// The directories nodes were made in so far, each resolved inside the root once: all nodes but a
/// spec's odd one are in /dev, so one handle serves them all.
#[derive(Default)]
pub struct Parents(Vec<(PathBuf, Handle)>);

impl Parents {
    /// The handle on `dir`, made (inside the root) on first use.
    fn get(&mut self, root: &Root, dir: &Path) -> Result<&Handle> {
        let i = match self.0.iter().position(|(p, _)| p == dir) {
            Some(i) => i,
            None => {
                let h = super::inroot::mkdir_all(root, dir, 0o755)?;
                self.0.push((dir.to_path_buf(), h));
                self.0.len() - 1
            }
        };
        Ok(&self.0[i].1)
    }
}

/// Creates `node` inside the root. An existing node of the same kind and numbers is accepted; anything
/// else at that path (a symlink to a host file, a regular file) is refused rather than trusted.
pub fn create(root: &Root, node: &Node, bind: bool, parents: &mut Parents) -> Result<()> {
    if bind && node.kind != SFlag::S_IFIFO {
        return bind_host(root, node);
    }
    let (Some(dir), Some(name)) = (node.path.parent(), node.path.file_name()) else {
        return Err(Error::invalid(format!(
            "device path {} names no file",
            node.path.display()
        )));
    };
    // The directory was resolved inside the root; the node is made and opened by its single name
    // below it, neither step following a symlink there.
    let parent = parents.get(root, dir)?;
    let dev = libc::makedev(node.major as u32, node.minor as u32);
    match nix::sys::stat::mknodat(
        Some(parent.as_fd().as_raw_fd()),
        name,
        node.kind,
        nix::sys::stat::Mode::from_bits_truncate(node.mode),
        dev,
    ) {
        // EEXIST: checked below like a node made here.
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e).ctx(|| format!("create device {}", node.path.display())),
    }
    let fd = nix::fcntl::openat(
        Some(parent.as_fd().as_raw_fd()),
        name,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open device {}", node.path.display()))?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    let handle = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = fstat(handle.as_raw_fd()).ctx(|| format!("stat {}", node.path.display()))?;
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
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("core", "/proc/kcore"));
    }
    if with_devpts {
        // The container's ptmx must be the one of its own devpts instance.
        if super::inroot::probe(root, Path::new("/dev/ptmx"), false).is_some() {
            let _ = root.remove_file("/dev/ptmx");
        }
        links.push(("ptmx", "pts/ptmx"));
    }
    // /dev resolved inside the root once; symlinkat by a single name below it never follows
    // anything, and fails with EEXIST on any existing entry, which is left alone.
    let dev = root
        .resolve(Path::new("/dev"))
        .ctx(|| "resolve /dev for its symlinks")?;
    for (name, target) in links {
        match nix::unistd::symlinkat(target, Some(dev.as_fd().as_raw_fd()), name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("create symlink /dev/{name}")),
        }
    }
    Ok(())
}
