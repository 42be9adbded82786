//! The container's filesystem view: mount propagation, the spec's mounts, devices, pivot_root, then the
//! masked and read-only paths. Runs in the container's init process, inside its new mount namespace.

pub mod devices;
mod inroot;
pub mod masked;
pub mod mounts;
pub mod options;
pub mod pivot;

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Spec;
use pathrs::Root;

use crate::error::{Context, Error, Result};
use mounts::MountEnv;

pub struct Setup<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub private_net: bool,
    pub no_pivot: bool,
    /// In a user namespace mknod is not allowed: device nodes are bind-mounted from the host instead.
    pub bind_devices: bool,
}

fn rootfs_propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    options::propagation(&p)
        .map(Some)
        .ok_or_else(|| Error::invalid(format!("unknown rootfsPropagation {p:?}")))
}

/// `linux.mountLabel`, which validation only lets through on an SELinux host.
fn mount_label(spec: &Spec) -> Option<&str> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.mount_label().as_deref())
        .filter(|l| !l.is_empty())
}

/// The mounts before the root switch, while host paths (bind sources) are still reachable. Returns the
/// root handle for `prepare_devices`. Creates no device node and forks nothing, so init runs it while
/// the runtime makes its cgroups: `cgroups_made` waits until their directories exist and returns them
/// (see `sync::Message::CgroupsMade`); it is called once, before the first `cgroup` mount (which binds
/// them), or after the other mounts if there is none.
pub fn prepare_mounts(
    s: &Setup,
    cgroups_made: &mut dyn FnMut() -> Result<Vec<(String, PathBuf)>>,
) -> Result<Root> {
    // Stop mount events of the container from reaching the host; rslave unless the spec asks otherwise.
    let prop = rootfs_propagation(s.spec)?.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        prop | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "set propagation of /")?;
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(s.rootfs),
        s.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind rootfs {}", s.rootfs.display()))?;

    let root = Root::open(s.rootfs).ctx(|| format!("open rootfs {}", s.rootfs.display()))?;
    let all_mounts = s.spec.mounts().as_deref().unwrap_or_default();
    let mut cgroup_dirs = None;
    for m in all_mounts {
        if cgroup_dirs.is_none() && matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) {
            cgroup_dirs = Some(cgroups_made()?);
        }
        let env = MountEnv {
            bundle: s.bundle,
            private_net: s.private_net,
            cgroup_dirs: cgroup_dirs.as_deref().unwrap_or_default(),
            mount_label: mount_label(s.spec),
        };
        mounts::mount_entry(&root, m, &env)?;
    }
    if cgroup_dirs.is_none() {
        cgroups_made()?;
    }
    Ok(root)
}

/// The device nodes and /dev symlinks, after `prepare_mounts` and still before the root switch. Runs in
/// the container's cgroups, so the device cgroup applies to the nodes as it does under runc.
pub fn prepare_devices(s: &Setup, root: &Root) -> Result<()> {
    let all_mounts = s.spec.mounts().as_deref().unwrap_or_default();
    let dev_is_bind = all_mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    });
    let linux = s.spec.linux().as_ref();
    // Nodes are made with their modes as given, sparing a chmod each; the init's umask is its own
    // again afterwards (the process may keep it when the spec sets none).
    let umask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let mut made = devices::Parents::default();
    let nodes = (|| -> Result<()> {
        if !dev_is_bind {
            for node in devices::default_nodes() {
                devices::create(root, &node, s.bind_devices, &mut made)?;
            }
        }
        for d in linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            devices::create(root, &devices::from_spec(d)?, s.bind_devices, &mut made)?;
        }
        Ok(())
    })();
    nix::sys::stat::umask(umask);
    nodes?;
    let with_devpts = all_mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev/pts") && m.typ().as_deref() == Some("devpts"));
    devices::create_symlinks(root, with_devpts)
}

pub fn enter(s: &Setup) -> Result<()> {
    if s.no_pivot {
        pivot::move_root(s.rootfs)
    } else {
        pivot::pivot(s.rootfs)
    }
}

/// After the root switch: masks, read-only paths, the read-only root, and the requested propagation.
pub fn finish(spec: &Spec) -> Result<()> {
    if let Some(linux) = spec.linux() {
        masked::mask_paths(
            linux.masked_paths().as_deref().unwrap_or_default(),
            mount_label(spec),
        )?;
        masked::readonly_paths(linux.readonly_paths().as_deref().unwrap_or_default())?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        masked::remount_readonly(Path::new("/"))?;
    }
    if let Some(prop) = rootfs_propagation(spec)? {
        mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
            .ctx(|| "set rootfs propagation")?;
    }
    Ok(())
}
