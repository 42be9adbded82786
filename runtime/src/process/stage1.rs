//! Stage 1 of a container with a user namespace. The pid namespace must be owned by the container's user
//! namespace (or proc cannot be mounted), so the runtime cannot create it before forking. Instead the
//! runtime forks this stage, which enters the user namespace, has the runtime write the id maps, becomes
//! root inside, creates the pid namespace and forks the real init into it, reports init's pid and exits.

use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::{fork, setresgid, setresuid, ForkResult, Gid, Uid};
use oci_spec::runtime::LinuxNamespaceType;

use super::init::InitArgs;
use crate::error::{Context, Error, Result};
use crate::sync::Message;

/// Runs stage 1. Returns in the forked init (which then goes on with the normal setup); stage 1 itself
/// never returns.
pub fn run(a: &InitArgs) {
    match enter(a) {
        Ok(ForkResult::Child) => {}
        Ok(ForkResult::Parent { child }) => {
            let code = match a.channel.send(&Message::Child(child.as_raw())) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to the runtime's copy.
            unsafe { libc::_exit(code) }
        }
        Err(e) => {
            let _ = a.channel.send(&Message::Error(e.to_string()));
            // SAFETY: as above.
            unsafe { libc::_exit(1) }
        }
    }
}

fn enter(a: &InitArgs) -> Result<ForkResult> {
    match a.channel.recv()? {
        Some(Message::Go(_)) => {}
        other => {
            return Err(Error::Init(format!(
                "expected go from the runtime, got {other:?}"
            )))
        }
    }
    let joined = |t| a.joins.iter().find(|(j, _)| *j == t).map(|(_, fd)| fd);
    if let Some(fd) = joined(LinuxNamespaceType::User) {
        setns(fd, CloneFlags::CLONE_NEWUSER).ctx(|| "join user namespace")?;
    } else {
        unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "create user namespace")?;
        a.channel.send(&Message::MapIds)?;
        a.channel.expect(Message::IdsMapped)?;
    }
    // The time namespace must belong to the container's user namespace, and its offsets can only be
    // written while /proc/self is still ours: the setresuid below makes the process non-dumpable.
    if a.plan.is_new(LinuxNamespaceType::Time) {
        crate::namespaces::enter_new_time(&super::init::time_offsets(a.spec)?)?;
    }
    // Become the namespace's root, so what init creates belongs to the container's mapped root.
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .ctx(|| "become gid 0 in the user namespace (is container gid 0 mapped?)")?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .ctx(|| "become uid 0 in the user namespace (is container uid 0 mapped?)")?;
    if let Some(fd) = joined(LinuxNamespaceType::Pid) {
        setns(fd, CloneFlags::CLONE_NEWPID).ctx(|| "join pid namespace")?;
    } else if a.plan.is_new(LinuxNamespaceType::Pid) {
        unshare(CloneFlags::CLONE_NEWPID).ctx(|| "create pid namespace")?;
    }
    // SAFETY: stage 1 is a single-threaded copy of the runtime; the child may run arbitrary code.
    unsafe { fork() }.ctx(|| "fork container init")
}
