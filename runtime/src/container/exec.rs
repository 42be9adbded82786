//! `exec`: run another process in a created or running container, in all its namespaces and cgroups.
//!
//! Like create, the runtime enters the container's pid namespace before fork (and restores its own right
//! after), so the new process is the caller's child. The child joins the other namespaces (the mount
//! namespace last, which also puts its root and cwd at the container's root), takes the process's
//! identity and execs. The sync socket is close-on-exec: EOF tells the runtime the exec happened. As
//! for create, a caller that may not fork and go on running gets this done by the helper (`helper`).

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::Container;
use crate::capabilities::CapSets;
use crate::error::{Context, Error, Result};
use crate::namespaces;
use crate::process::fds::ProcessIo;
use crate::process::{exec, fds, identity, rlimits};
use crate::status::ContainerStatus;
use crate::sync::{Channel, Message};

/// The order namespaces are joined in: the mount namespace last, since joining it changes the root.
const JOIN_ORDER: &[LinuxNamespaceType] = &[
    LinuxNamespaceType::User,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

fn proc_ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Network => "net",
        other => namespaces::name(other),
    }
}

pub fn validate_process(p: &Process) -> Result<()> {
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::invalid("exec: process.args must not be empty"));
    }
    if !p.cwd().is_absolute() {
        return Err(Error::invalid(format!(
            "exec: cwd {:?} is not an absolute path",
            p.cwd()
        )));
    }
    if let Some(c) = p.capabilities() {
        CapSets::from_spec(c)?;
    }
    crate::process::lsm::check(p, None)
}

/// How `exec` runs the process.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Where to send the pty master when `process.terminal` is set.
    pub console_socket: Option<PathBuf>,
    /// The caller's fds 3.. to pass on, this many (the CLI's `--preserve-fds`).
    pub preserve_fds: u32,
    /// The process's stdio and more descriptors, for a caller that cannot hand over its own.
    pub io: ProcessIo,
    /// The runtime binary to run exec in when the caller cannot (see `CreateOptions::helper_binary`).
    pub helper_binary: Option<PathBuf>,
}

impl Container {
    /// Starts `process` in the container and returns its pid. Safe to call from any process: run here
    /// (the process is the caller's child) when the caller may fork, else by the helper (the process
    /// is reparented to the caller if it is a child subreaper; see `helper`).
    pub fn exec(&self, process: &Process, opts: &ExecOptions) -> Result<Pid> {
        if crate::helper::can_run_here(&opts.io) {
            self.exec_here(process, opts)
        } else {
            crate::helper::client::exec(self, process, opts)
        }
    }

    /// `exec` in the calling process, which must be single-threaded and sealed (the CLI, the helper).
    pub(crate) fn exec_here(&self, process: &Process, opts: &ExecOptions) -> Result<Pid> {
        crate::process::procfs::require_single_thread("exec")?;
        let console_socket = opts.console_socket.as_deref();
        let preserve_fds = opts.preserve_fds;
        validate_process(process)?;
        crate::tty::check(process, console_socket)?;
        let console = console_socket.map(crate::tty::connect).transpose()?;
        // The container's filter binds every process in it, exec'd ones included.
        let seccomp = self
            .state
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .map(crate::seccomp::compile)
            .transpose()?;
        let status = self.status();
        if !matches!(status, ContainerStatus::Created | ContainerStatus::Running) {
            return Err(Error::precondition(
                self.id(),
                format!("cannot exec in a {status} container"),
            ));
        }
        let private: Vec<LinuxNamespaceType> = self
            .state
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .iter()
            .map(|n| n.typ())
            .collect();
        let open_ns = |t: LinuxNamespaceType| -> Result<OwnedFd> {
            let path = format!("/proc/{}/ns/{}", self.pid(), proc_ns_name(t));
            let fd = open(
                Path::new(&path),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("open {path}"))?;
            // SAFETY: `open` just returned this descriptor and nothing else owns it.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        let joins: Vec<(LinuxNamespaceType, OwnedFd)> = JOIN_ORDER
            .iter()
            .filter(|t| private.contains(t))
            .map(|t| Ok((*t, open_ns(*t)?)))
            .collect::<Result<_>>()?;
        let pid_ns = private
            .contains(&LinuxNamespaceType::Pid)
            .then(|| open_ns(LinuxNamespaceType::Pid))
            .transpose()?;
        // The descriptors are pinned now; make sure they belong to the container's init, not a recycled pid.
        if !self.init_alive() {
            return Err(Error::precondition(self.id(), "container init exited"));
        }
        let (parent_ch, child_ch) = Channel::pair()?;
        // On cgroup v1 the process moves itself into the container's cgroups, before it joins any
        // namespace (see `cgroups::enter_self`); on v2 this process moves it.
        let enter = self.state.cgroup.as_ref().and_then(|c| c.self_entry());
        let own_pid_ns = {
            let fd = open(
                Path::new("/proc/self/ns/pid"),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| "open own pid namespace")?;
            // SAFETY: `open` just returned this descriptor and nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(fd) }
        };
        if let Some(fd) = &pid_ns {
            setns(fd.as_fd(), CloneFlags::CLONE_NEWPID).ctx(|| "join pid namespace")?;
        }
        // SAFETY: the process is single-threaded (checked above), so the child is a full copy.
        let forked = unsafe { fork() };
        if let Ok(ForkResult::Child) = forked {
            // SAFETY: the child never returns from `exec_child`, so `parent_ch` is never dropped here.
            unsafe { libc::close(parent_ch.raw_fd()) };
            exec_child(
                &child_ch,
                enter.as_deref().unwrap_or_default(),
                &joins,
                process,
                console.as_ref(),
                seccomp.as_ref(),
                preserve_fds,
            );
        }
        let restore = setns(own_pid_ns.as_fd(), CloneFlags::CLONE_NEWPID);
        let child = match forked.ctx(|| "fork exec process")? {
            ForkResult::Parent { child } => child,
            ForkResult::Child => unreachable!("the child branch never returns"),
        };
        drop(child_ch);
        let fail = |e: Error| {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
            e
        };
        restore.ctx(|| "restore pid namespace").map_err(fail)?;
        if let (Some(cg), None) = (&self.state.cgroup, &enter) {
            cg.add(child.as_raw()).map_err(fail)?;
        }
        parent_ch.send(&Message::Go(child.as_raw())).map_err(fail)?;
        match parent_ch.recv() {
            Ok(None) => Ok(child),
            Ok(Some(Message::Error(e))) => Err(fail(Error::Init(e))),
            Ok(Some(other)) => Err(fail(Error::Init(format!(
                "unexpected {other:?} from exec process"
            )))),
            Err(e) => Err(fail(e)),
        }
    }
}

fn exec_child(
    ch: &Channel,
    enter_cgroups: &[std::path::PathBuf],
    joins: &[(LinuxNamespaceType, OwnedFd)],
    process: &Process,
    console: Option<&std::os::unix::net::UnixStream>,
    seccomp: Option<&crate::seccomp::Filter>,
    preserve_fds: u32,
) -> ! {
    // A panic must not unwind out of this forked child into the caller's frames (the CLI's, or the
    // helper's, which would then reply in the helper's place).
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
        match ch.recv()? {
            Some(Message::Go(_)) => {}
            other => return Err(Error::Init(format!("expected go, got {other:?}"))),
        }
        crate::cgroups::enter_self(enter_cgroups)?;
        for (t, fd) in joins {
            setns(fd.as_fd(), namespaces::flag(*t))
                .ctx(|| format!("join {} namespace", namespaces::name(*t)))?;
        }
        if let Some(console) = console {
            crate::tty::setup(console, process)?;
        }
        rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;
        crate::process::lsm::apply(process)?;
        fds::cloexec_from(preserve_fds)?;
        let nnp = process.no_new_privileges() == Some(true);
        if let (Some(f), false) = (seccomp, nnp) {
            crate::seccomp::install(f)?;
        }
        identity::apply(process)?;
        nix::unistd::chdir(process.cwd())
            .ctx(|| format!("chdir to cwd {}", process.cwd().display()))?;
        fds::verify_cwd()?;
        let args = process.args().clone().unwrap_or_default();
        let env = process.env().clone().unwrap_or_default();
        let program = exec::find_executable(&args[0], &env)?;
        exec::reset_signals();
        if let (Some(f), true) = (seccomp, nnp) {
            crate::seccomp::install(f)?;
        }
        Err(exec::exec(&program, &args, &env))
    }));
    let err = match result {
        Ok(Err(e)) => e,
        Ok(Ok(())) => Error::Init("exec returned".into()),
        Err(_) => Error::Init("exec process panicked".into()),
    };
    let _ = ch.send(&Message::Error(err.to_string()));
    // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to the parent's copy.
    unsafe { libc::_exit(1) }
}
