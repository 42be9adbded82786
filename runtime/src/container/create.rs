//! `create`: build the container up to the point where its init waits for `start`.
//!
//! The runtime forks the init process straight into a new pid namespace (unshare(CLONE_NEWPID) applies
//! to children; the runtime restores its own pid namespace for children right after the fork). Everything
//! else happens in the init, step by step with the runtime over the sync channel. That needs a
//! single-threaded process running from a sealed binary: the CLI is one, and any other caller gets one
//! from the runtime helper (see `helper`).

use std::cell::Cell;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::LinuxNamespaceType;
use serde::{Deserialize, Serialize};

use super::Container;
use crate::cgroups::{self, Cgroup};
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::namespaces::{self, Plan};
use crate::process::fds::ProcessIo;
use crate::process::init::{self, InitArgs};
use crate::process::placement::Spread;
use crate::process::procfs;
use crate::spec::load_bundle;
use crate::state::{State, EXEC_FIFO};
use crate::status::ContainerStatus;
use crate::sync::{CgroupsMade, Channel, Message};
use crate::tty;
use crate::util::{rfc3339_now, validate_id, write_atomic};
use crate::validate::validate;

/// What `create` builds and how. Paths are taken relative to the caller's working directory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub root: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    /// The caller's fds `3 + listen_fds ..` to pass on, this many (the CLI's `--preserve-fds`).
    pub preserve_fds: u32,
    /// Socket-activation fds the runtime was given (see `process::fds::activation_fds`), at 3.. before
    /// the preserved ones.
    pub listen_fds: u32,
    /// The init's stdio and more descriptors, for a caller that cannot hand over its own.
    #[serde(skip)]
    pub io: ProcessIo,
    /// The runtime binary to run create in when the caller cannot (see `helper`); by default the
    /// calling executable if it is berth-runtime, else berth-runtime beside it, else in PATH.
    #[serde(skip)]
    pub helper_binary: Option<PathBuf>,
}

/// Whose child the init becomes when `create_here` forks it, and what a failed create leaves to reap.
#[derive(Default)]
pub(crate) struct Placement {
    /// Fork the init as a sibling of this process (CLONE_PARENT), the child of this process's parent:
    /// the helper does, so its caller has the init as its child as soon as it exists and need not wait
    /// for the helper's exit before it may wait for the init.
    pub to_parent: bool,
    /// Set when create failed after forking an init it killed but could not reap, because the init is
    /// not its child (`to_parent`, or reparented when stage 1 exited): its new parent has to.
    pub killed: Cell<Option<i32>>,
    /// A new, unused network namespace made ahead of time (by an idle helper), for an init that would
    /// create one itself: it joins this one instead.
    pub netns: Option<OwnedFd>,
}

/// Undoes a half-built container when create fails: the init, the cgroups, the state directory.
struct Cleanup<'a> {
    killed: &'a Cell<Option<i32>>,
    dir: PathBuf,
    child: Option<Pid>,
    cgroup: Option<Cgroup>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            if nix::sys::wait::waitpid(pid, None) == Err(nix::errno::Errno::ECHILD) {
                self.killed.set(Some(pid.as_raw()));
            }
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.remove();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates the container; its init waits for `start`. Safe to call from any process, threads or not:
/// unless the caller may fork and go on running (`helper::can_run_here`), the work happens in a helper
/// process, which forks the init as the caller's child (see `helper`).
pub fn create(opts: &CreateOptions) -> Result<Container> {
    if crate::helper::can_run_here(&opts.io) {
        create_here(opts, &Placement::default())
    } else {
        crate::helper::client::create(opts)
    }
}

/// `create` in the calling process, which must be single-threaded and sealed (the CLI, the helper).
pub(crate) fn create_here(opts: &CreateOptions, place: &Placement) -> Result<Container> {
    procfs::require_single_thread("create")?;
    validate_id(&opts.id)?;
    let bundle = load_bundle(&opts.bundle)?;
    validate(&bundle.spec)?;
    let spec = &bundle.spec;
    let process = spec.process().as_ref().expect("validated: process present");
    tty::check(process, opts.console_socket.as_deref())?;
    let linux = spec.linux().as_ref().expect("validated: linux present");
    let plan = Plan::from_spec(linux.namespaces().as_deref().unwrap_or_default())?;
    let seccomp = linux
        .seccomp()
        .as_ref()
        .map(crate::seccomp::compile)
        .transpose()?;
    let cgroup_rel = cgroups::container_path(linux.cgroups_path().as_deref(), &opts.id)?;

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&opts.root)
        .ctx(|| format!("create state root {}", opts.root.display()))?;
    let dir = opts.root.join(&opts.id);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::AlreadyExists(opts.id.clone()))
        }
        Err(e) => return Err(e).ctx(|| format!("create state dir {}", dir.display())),
    }
    let mut cleanup = Cleanup {
        killed: &place.killed,
        dir: dir.clone(),
        child: None,
        cgroup: None,
        armed: true,
    };

    let fifo_path = dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o622))
        .ctx(|| format!("create exec fifo {}", fifo_path.display()))?;
    // mkfifo's mode is cut by the umask; others must be able to write it after init drops root.
    std::fs::set_permissions(
        &fifo_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o622),
    )
    .ctx(|| format!("chmod exec fifo {}", fifo_path.display()))?;
    let fifo = open_owned(&fifo_path, OFlag::O_PATH | OFlag::O_CLOEXEC)?;

    let joins = plan.open_joins()?;
    let console = opts
        .console_socket
        .as_deref()
        .map(tty::connect)
        .transpose()?;
    let (parent_ch, child_ch) = Channel::pair()?;
    let created = rfc3339_now();
    let mut state = State {
        id: opts.id.clone(),
        pid: 0,
        init_start_time: 0,
        status: ContainerStatus::Creating,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created,
        owner: String::new(),
        cgroup: None,
        config: spec.clone(),
    };
    // With a user namespace the init is forked later, by stage 1.
    let spread = (!plan.has_user()).then(Spread::prepare).flatten();

    let pid = match fork_init(&plan, &joins, place.to_parent)? {
        Some(pid) => pid,
        None => {
            // SAFETY: the child never returns (init::run ends in exec or _exit), so the OwnedFd inside
            // `parent_ch` is never dropped here and the descriptor is not closed twice.
            unsafe { libc::close(parent_ch.raw_fd()) };
            init::run(InitArgs {
                spec,
                rootfs: &bundle.rootfs,
                bundle: &bundle.dir,
                plan: &plan,
                joins: &joins,
                fifo: &fifo,
                channel: &child_ch,
                console: console.as_ref(),
                no_pivot: opts.no_pivot,
                seccomp: seccomp.as_ref(),
                preserve_fds: opts.preserve_fds,
                listen_fds: opts.listen_fds,
                hook_state: state.oci(ContainerStatus::Creating),
                netns: place
                    .netns
                    .as_ref()
                    .filter(|_| plan.is_new(LinuxNamespaceType::Network) && !plan.has_user()),
                spread: spread.as_ref(),
            })
        }
    };
    cleanup.child = Some(pid);
    drop(child_ch);
    if let Some(s) = &spread {
        s.move_off_this_cpu(pid);
    }

    // Init sets up its namespaces and mounts while its cgroups are made and it is moved into them (see
    // process::init); if it failed meanwhile, its own report is the error to return.
    let early = |e: Error| parent_ch.take_error().map_or(e, Error::Init);
    // Located only now (reading the host's mount table), while init already works.
    let cgroup = Cgroup::locate(&cgroup_rel).map_err(early)?;
    state.cgroup = Some(cgroup.clone());
    cleanup.cgroup = Some(cgroup.clone());
    cgroup.mkdirs().map_err(early)?;
    // On v1 an init forked here (not by stage 1 in a user namespace, which could not write the host's
    // cgroup files) moves itself, cheaply, once the limits are set; otherwise this process moves it,
    // as runc does, and sets the limits after (the move waits for an RCU grace period, which should
    // start as early as possible).
    let enter = if plan.has_user() {
        None
    } else {
        cgroup.self_entry()
    };
    let made = |enter: Vec<PathBuf>| {
        Message::CgroupsMade(CgroupsMade {
            dirs: cgroup.mount_dirs(),
            enter,
        })
    };
    match enter {
        Some(enter) => {
            if let Some(r) = linux.resources() {
                cgroup.apply(r).map_err(early)?;
            }
            parent_ch.send(&made(enter)).map_err(early)?;
        }
        None => {
            if !plan.has_user() {
                // Before the move, which can take a while: init can bind its cgroups meanwhile.
                parent_ch.send(&made(Vec::new())).map_err(early)?;
            }
            cgroup.add(pid.as_raw()).map_err(early)?;
            if let Some(r) = linux.resources() {
                cgroup.apply(r).map_err(early)?;
            }
        }
    }
    let pid = if plan.has_user() {
        let init = user_ns_handshake(&parent_ch, pid, linux)?;
        cleanup.child = Some(init);
        // Stage 1 is gone: from here on init reads the channel.
        parent_ch.send(&made(Vec::new())).map_err(early)?;
        init
    } else {
        pid
    };
    if let Some(adj) = process.oom_score_adj() {
        let path = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&path, adj.to_string()).map_err(|e| {
            Error::Init(format!(
                "set oom_score_adj {adj}: {e} (lowering it below the runtime's own needs CAP_SYS_RESOURCE)"
            ))
        }).map_err(early)?;
    }
    state.pid = pid.as_raw();
    parent_ch.send(&Message::Go(pid.as_raw())).map_err(early)?;
    // Until `Ready` init makes its devices and switches its root while this process would only wait:
    // read init's start time and write the state it will have once ready now, off the critical path.
    // Without a start time (init died) the error comes from init's report below.
    let start_time = procfs::stat(state.pid).map(|(_, t)| t);
    if let Some(t) = start_time {
        state.init_start_time = t;
        state.status = ContainerStatus::Created;
        let staged = state.stage(&dir);
        state.status = ContainerStatus::Creating;
        staged?;
    }
    loop {
        match parent_ch.recv()? {
            Some(Message::Ready) => break,
            Some(Message::RunHooks) => {
                let hook_state = state.oci(ContainerStatus::Creating);
                let h = spec
                    .hooks()
                    .as_ref()
                    .expect("init asks only when hooks exist");
                #[allow(deprecated)]
                let prestart = h.prestart().clone().unwrap_or_default();
                let runtime = h.create_runtime().clone().unwrap_or_default();
                let result = hooks::run_all(&prestart, &hook_state, "prestart")
                    .and_then(|()| hooks::run_all(&runtime, &hook_state, "createRuntime"));
                if let Err(e) = result {
                    let _ = parent_ch.send(&Message::Error(e.to_string()));
                    return Err(e);
                }
                parent_ch.send(&Message::HooksDone)?;
            }
            Some(Message::Error(e)) => return Err(Error::Init(e)),
            Some(other) => return Err(Error::Init(format!("unexpected {other:?} from init"))),
            None => return Err(Error::Init("init exited without reporting".into())),
        }
    }

    if start_time.is_none() {
        return Err(Error::Init("init exited right after setup".into()));
    }
    state.status = ContainerStatus::Created;
    State::commit_staged(&dir)?;
    if let Some(pid_file) = &opts.pid_file {
        write_atomic(pid_file, state.pid.to_string().as_bytes())?;
    }
    cleanup.armed = false;
    Ok(Container { dir, state })
}

/// Talks stage 1 through the user namespace: writes the id maps when asked, reaps stage 1 and returns
/// the host pid of the init it forked.
fn user_ns_handshake(ch: &Channel, stage1: Pid, linux: &oci_spec::runtime::Linux) -> Result<Pid> {
    ch.send(&Message::Go(stage1.as_raw()))?;
    loop {
        match ch.recv()? {
            Some(Message::MapIds) => {
                namespaces::write_id_maps(
                    stage1.as_raw(),
                    linux.uid_mappings().as_deref().unwrap_or_default(),
                    linux.gid_mappings().as_deref().unwrap_or_default(),
                )?;
                ch.send(&Message::IdsMapped)?;
            }
            Some(Message::Child(init)) => {
                let _ = nix::sys::wait::waitpid(stage1, None);
                return Ok(Pid::from_raw(init));
            }
            Some(Message::Error(e)) => return Err(Error::Init(e)),
            Some(other) => return Err(Error::Init(format!("unexpected {other:?} from stage 1"))),
            None => return Err(Error::Init("stage 1 exited without reporting".into())),
        }
    }
}

fn open_owned(path: &Path, flags: OFlag) -> Result<OwnedFd> {
    let fd = open(path, flags, Mode::empty()).ctx(|| format!("open {}", path.display()))?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Forks the init into the container's pid namespace (new or joined) and puts the runtime's own
/// pid-namespace-for-children back afterwards, so hooks the runtime runs stay in the host namespace.
/// With `to_parent` (and no user namespace, whose stage 1 stays this process's child so it can be
/// reaped here) the child is forked as this process's sibling. Returns the child's pid in the parent
/// and `None` in the child.
fn fork_init(
    plan: &Plan,
    joins: &[(LinuxNamespaceType, OwnedFd)],
    to_parent: bool,
) -> Result<Option<Pid>> {
    let own = open_owned(
        Path::new("/proc/self/ns/pid"),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
    )?;
    let joined_pid = joins.iter().find(|(t, _)| *t == LinuxNamespaceType::Pid);
    if plan.has_user() {
        // Stage 1 creates or joins the pid namespace after entering the user namespace.
    } else if let Some((_, fd)) = joined_pid {
        setns(fd.as_fd(), CloneFlags::CLONE_NEWPID).ctx(|| "join pid namespace")?;
    } else if plan.is_new(LinuxNamespaceType::Pid) {
        unshare(CloneFlags::CLONE_NEWPID).ctx(|| "create pid namespace")?;
    }
    let forked = if to_parent && !plan.has_user() {
        fork_sibling()
    } else {
        // SAFETY: the runtime is single-threaded here (checked by `create_here`), so the child is a
        // complete copy and may allocate and run arbitrary code before exec.
        unsafe { fork() }
    };
    if let Ok(ForkResult::Child) = forked {
        return Ok(None);
    }
    let restore = setns(own.as_fd(), CloneFlags::CLONE_NEWPID).ctx(|| "restore pid namespace");
    match forked.ctx(|| "fork container init")? {
        ForkResult::Child => unreachable!("the child branch ran above"),
        ForkResult::Parent { child } => {
            if let Err(e) = restore {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(e);
            }
            Ok(Some(child))
        }
    }
}

/// fork(2) with CLONE_PARENT: the child's parent is this process's parent.
fn fork_sibling() -> nix::Result<ForkResult> {
    let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: a raw clone without a new stack returns twice, like fork: the child runs on a copy of
    // this stack. The runtime is single-threaded here (checked by `create_here`), so no lock is held by
    // another thread; libc's cached thread id in the child stays the parent's, which nothing here uses
    // (glibc's raise asks the kernel, Rust's locks do not use it). No null pointers are dereferenced:
    // the tid pointers are only used with CLONE_*_SETTID flags, which are not given.
    let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match r {
        -1 => Err(nix::errno::Errno::last()),
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent {
            child: Pid::from_raw(pid as i32),
        }),
    }
}
