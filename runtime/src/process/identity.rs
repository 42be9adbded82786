//! Who the container process is: uid, gids, umask, capabilities and no_new_privs, applied in the order
//! the kernel requires.

use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::Process;

use crate::capabilities::CapSets;
use crate::error::{Error, Result};

fn prctl(option: libc::c_int, arg: libc::c_ulong, what: &str) -> Result<()> {
    // SAFETY: the prctl options used here take integer arguments and no pointers.
    let rc = unsafe { libc::prctl(option, arg, 0, 0, 0) };
    if rc != 0 {
        return Err(Error::Init(format!(
            "{what}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Switches to the spec's user and capability sets. Bounding first (it needs CAP_SETPCAP), then the ids
/// with keepcaps so the permitted set survives a non-root uid, then the process sets.
pub fn apply(process: &Process) -> Result<()> {
    let user = process.user();
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
            mask as libc::mode_t,
        ));
    }
    let caps = process
        .capabilities()
        .as_ref()
        .map(CapSets::from_spec)
        .transpose()?
        .unwrap_or_default();
    caps.apply_bounding()?;
    prctl(libc::PR_SET_KEEPCAPS, 1, "keep capabilities across setuid")?;
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    setgroups(&groups).map_err(|e| Error::Init(format!("setgroups {groups:?}: {e}")))?;
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).map_err(|e| Error::Init(format!("setgid {gid}: {e}")))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).map_err(|e| Error::Init(format!("setuid {uid}: {e}")))?;
    prctl(libc::PR_SET_KEEPCAPS, 0, "clear keepcaps")?;
    // A uid change cleared the effective set; restore it from permitted so CAP_SETPCAP can edit inheritable.
    let permitted = caps::read(None, caps::CapSet::Permitted)
        .map_err(|e| Error::Init(format!("read permitted capabilities: {e}")))?;
    caps::set(None, caps::CapSet::Effective, &permitted)
        .map_err(|e| Error::Init(format!("restore effective capabilities: {e}")))?;
    caps.apply_process_sets()?;
    if process.no_new_privileges() == Some(true) {
        // Never ignored: a container that asked for no_new_privs must not run without it.
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "set no_new_privs")?;
    }
    Ok(())
}
