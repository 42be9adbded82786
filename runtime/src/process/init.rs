//! The container's init process, from fork to exec. It runs as a forked copy of the runtime, in the new
//! pid namespace, and reports each outcome to the runtime over the sync channel: `Ready` once it waits
//! for `start`, or the error that stopped it.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sched::{unshare, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{exec, fds, identity, rlimits};
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::namespaces::{self, Plan};
use crate::rootfs;
use crate::state::OciState;
use crate::sync::{Channel, Message};

pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub plan: &'a Plan,
    pub joins: &'a [(LinuxNamespaceType, OwnedFd)],
    /// O_PATH handle on the exec fifo, reopened for writing after pivot_root through /proc/self/fd.
    pub fifo: &'a OwnedFd,
    pub channel: &'a Channel,
    /// Connected console socket when the process wants a terminal.
    pub console: Option<&'a std::os::unix::net::UnixStream>,
    pub no_pivot: bool,
    /// The compiled seccomp filter, if the spec has one.
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    pub preserve_fds: u32,
    /// Socket-activation fds of the runtime, passed at 3.. ahead of the preserved ones.
    pub listen_fds: u32,
    /// The state hooks receive; the pid is filled in from the runtime's `Go`.
    pub hook_state: OciState,
    /// A new network namespace made ahead of time, joined instead of creating one (see
    /// `create::Placement::netns`).
    pub netns: Option<&'a OwnedFd>,
    /// Set when the runtime moves init off its CPU after the fork (see `placement`): undone at `Go`.
    pub spread: Option<&'a super::placement::Spread>,
}

/// Never returns: execs the container's program or exits with status 1 after reporting the error.
pub fn run(args: InitArgs) -> ! {
    // A panic must not unwind out of this forked child into `create()`'s frame: the cleanup there
    // belongs to the runtime process and would remove the container's state.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if args.plan.has_user() {
            super::stage1::run(&args);
        }
        match setup(&args) {
            Ok(()) => unreachable_exec_error(),
            Err(e) => e,
        }
    }));
    let err = outcome.unwrap_or_else(|_| Error::Init("init panicked".into()));
    // The runtime may already be gone (after `Ready`); then stderr is all that is left.
    if args.channel.send(&Message::Error(err.to_string())).is_err() {
        let _ = writeln!(std::io::stderr(), "berth-runtime init: {err}");
    }
    // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to the parent's copy.
    unsafe { libc::_exit(1) }
}

fn unreachable_exec_error() -> Error {
    Error::Init("exec returned without an error".into())
}

fn setup(a: &InitArgs) -> Result<()> {
    // Until `Go` the runtime makes the container's cgroups and sets their limits (`CgroupsMade`), and
    // init is moved into them: by itself on receiving `CgroupsMade` on cgroup v1 (cheap, see
    // `cgroups::enter_self`), else by the runtime. Meanwhile init does the part of its setup that
    // forks nothing, does not depend on being in the cgroups and touches nothing outside the
    // container's own new namespaces: joining and creating namespaces, and the mounts in its new mount
    // namespace (those of the cgroups once they exist).
    let process = a
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::invalid("process is required"))?;
    namespaces::join_all(a.joins)?;
    match a.netns {
        Some(net) => {
            unshare(a.plan.unshare_flags() - CloneFlags::CLONE_NEWNET)
                .ctx(|| "create namespaces")?;
            nix::sched::setns(net, CloneFlags::CLONE_NEWNET)
                .ctx(|| "join the network namespace made ahead")?;
        }
        None => unshare(a.plan.unshare_flags()).ctx(|| "create namespaces")?,
    }
    // With a user namespace, stage 1 already entered the time namespace.
    if a.plan.is_new(LinuxNamespaceType::Time) && !a.plan.has_user() {
        namespaces::enter_new_time(&time_offsets(a.spec)?)?;
    }
    let setup = rootfs::Setup {
        spec: a.spec,
        rootfs: a.rootfs,
        bundle: a.bundle,
        private_net: a.plan.is_private(LinuxNamespaceType::Network),
        no_pivot: a.no_pivot,
        bind_devices: a.plan.has_user(),
    };
    // The directories for a `cgroup` mount, once they exist; moving in first when the runtime says so.
    let root = rootfs::prepare_mounts(&setup, &mut || {
        let made = a.channel.expect_cgroups()?;
        crate::cgroups::enter_self(&made.enter)?;
        Ok(made.dirs)
    })?;
    let host_pid = match a.channel.recv()? {
        Some(Message::Go(pid)) => pid,
        other => {
            return Err(Error::Init(format!(
                "expected go from the runtime, got {other:?}"
            )))
        }
    };
    if let Some(s) = a.spread {
        s.restore()?;
    }
    let mut hook_state = a.hook_state.clone();
    hook_state.pid = host_pid;
    // A cgroup namespace is rooted at the cgroup the process is in when it is created: after the move.
    if a.plan.is_new(LinuxNamespaceType::Cgroup) {
        unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "create cgroup namespace")?;
    }
    // Hostname and sysctls only now: a joined uts, ipc or network namespace is shared, and a create the
    // runtime fails before `Go` must leave it untouched.
    if let Some(h) = a.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).ctx(|| format!("set hostname {h:?}"))?;
    }
    if let Some(d) = a.spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        set_domainname(d)?;
    }
    for (key, value) in a
        .spec
        .linux()
        .iter()
        .flat_map(|l| l.sysctl().iter().flatten())
    {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).ctx(|| format!("set sysctl {key}={value}"))?;
    }
    rootfs::prepare_devices(&setup, &root)?;

    let hooks = a.spec.hooks().as_ref();
    #[allow(deprecated)]
    let runtime_hooks =
        hooks.is_some_and(|h| h.prestart().is_some() || h.create_runtime().is_some());
    if runtime_hooks {
        a.channel.send(&Message::RunHooks)?;
        a.channel.expect(Message::HooksDone)?;
    }
    if let Some(hs) = hooks.and_then(|h| h.create_container().as_ref()) {
        hooks::run_all(hs, &hook_state, "createContainer")?;
    }

    rootfs::enter(&setup)?;
    rootfs::finish(a.spec)?;
    if let Some(console) = a.console {
        crate::tty::setup(console, process)?;
    }

    rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;
    // Labels for the exec, written while the process is still privileged and before a seccomp filter
    // could refuse the writes.
    super::lsm::apply(process)?;
    fds::cloexec_from(a.listen_fds + a.preserve_fds)?;
    let nnp = process.no_new_privileges() == Some(true);
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while it is still held.
    if let (Some(f), false) = (a.seccomp, nnp) {
        crate::seccomp::install(f)?;
    }
    identity::apply(process)?;
    nix::unistd::chdir(process.cwd())
        .ctx(|| format!("chdir to cwd {}", process.cwd().display()))?;
    fds::verify_cwd()?;

    let args = process.args().clone().unwrap_or_default();
    let mut env = process.env().clone().unwrap_or_default();
    fds::listen_env(&mut env, a.listen_fds, nix::unistd::getpid().as_raw());
    let program = exec::find_executable(&args[0], &env)?;
    if !Path::new("/proc/self/fd").is_dir() {
        return Err(Error::invalid(
            "the container needs /proc mounted to wait for start",
        ));
    }
    let fifo_path = format!("/proc/self/fd/{}", a.fifo.as_raw_fd());

    a.channel.send(&Message::Ready)?;
    // Blocks until `start` opens the fifo for reading.
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_cloexec()
        .open(&fifo_path)
        .ctx(|| "open exec fifo")?;
    // startContainer hooks run once `start` is here but before it is told to go on, so its poststart
    // hooks always follow them.
    if let Some(hs) = hooks.and_then(|h| h.start_container().as_ref()) {
        hooks::run_all(hs, &hook_state, "startContainer")?;
    }
    fifo.write_all(b"0").ctx(|| "write exec fifo")?;
    drop(fifo);
    exec::reset_signals();
    if let (Some(f), true) = (a.seccomp, nnp) {
        crate::seccomp::install(f)?;
    }
    Err(exec::exec(&program, &args, &env))
}

/// The spec's `linux.timeOffsets` rendered for /proc/self/timens_offsets (empty without any).
pub(super) fn time_offsets(spec: &Spec) -> Result<String> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    {
        Some(o) => namespaces::time_offsets(o),
        None => Ok(String::new()),
    }
}

fn set_domainname(name: &str) -> Result<()> {
    // SAFETY: setdomainname reads `len` bytes from the pointer, which covers exactly the string's bytes.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| format!("set domainname {name:?}"));
    }
    Ok(())
}

trait CloexecOpen {
    fn custom_flags_cloexec(&mut self) -> &mut Self;
}

impl CloexecOpen for std::fs::OpenOptions {
    fn custom_flags_cloexec(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, OFlag::O_CLOEXEC.bits())
    }
}
