//! The verbs. Each file parses its arguments, loads what it needs and calls the library.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod log;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use std::path::PathBuf;

use clap::Subcommand;

pub struct Global {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(create::Args),
    /// Start the process of a created container.
    Start(start::Args),
    /// Create and start a container; without --detach, wait for it and return its exit status.
    Run(run::RunArgs),
    /// Run a new process inside a container.
    Exec(exec::Args),
    /// Print the state of a container as JSON.
    State(state::Args),
    /// Send a signal to a container's init (or with --all, to all its processes).
    Kill(kill::Args),
    /// Delete a container and everything the runtime made for it.
    Delete(delete::Args),
    /// List containers.
    List(list::Args),
    /// Show the processes of a container.
    Ps(ps::Args),
    /// Freeze all processes of a container.
    Pause(pause::Args),
    /// Thaw a paused container.
    Resume(pause::Args),
    /// Change a container's cgroup limits.
    Update(update::Args),
    /// Print resource usage events (runc's `events --stats`).
    Events(events::Args),
    /// Write a default config.json into a bundle.
    Spec(spec::Args),
    /// Print the features this runtime supports as JSON.
    Features,
}

/// Runs a verb; the result is the process exit code.
pub fn run(cmd: Command, g: &Global) -> anyhow::Result<i32> {
    if g.systemd_cgroup && matches!(cmd, Command::Create(_) | Command::Run(_)) {
        anyhow::bail!("the systemd cgroup driver is not supported: use cgroupfs paths");
    }
    match cmd {
        Command::Create(a) => create::run(a, g).map(|()| 0),
        Command::Start(a) => start::run(a, g).map(|()| 0),
        Command::Run(a) => run::run(a, g),
        Command::Exec(a) => exec::run(a, g),
        Command::State(a) => state::run(a, g).map(|()| 0),
        Command::Kill(a) => kill::run(a, g).map(|()| 0),
        Command::Delete(a) => delete::run(a, g).map(|()| 0),
        Command::List(a) => list::run(a, g).map(|()| 0),
        Command::Ps(a) => ps::run(a, g).map(|()| 0),
        Command::Pause(a) => pause::pause(a, g).map(|()| 0),
        Command::Resume(a) => pause::resume(a, g).map(|()| 0),
        Command::Update(a) => update::run(a, g).map(|()| 0),
        Command::Events(a) => events::run(a, g).map(|()| 0),
        Command::Spec(a) => spec::run(a).map(|()| 0),
        Command::Features => features::run().map(|()| 0),
    }
}
