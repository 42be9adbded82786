use std::path::PathBuf;

use berth_runtime::{exeseal, Container, ExecOptions};
use oci_spec::runtime::Process;

use super::{run::wait_forwarding, Global};

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A JSON file with the process (the `process` object of a config.json).
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Return once the process started.
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment variables, KEY=VALUE.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid]
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

/// Builds the process like runc: from --process, or from the container's own process with overrides.
fn process(a: &Args, c: &Container) -> anyhow::Result<Process> {
    if let Some(path) = &a.process {
        let text =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?;
        return serde_json::from_slice(&text)
            .map_err(|e| anyhow::anyhow!("process {}: {e}", path.display()));
    }
    anyhow::ensure!(!a.command.is_empty(), "exec: no command given");
    let mut p = c.state.config.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let user = p.user_mut();
        user.set_uid(
            uid.parse()
                .map_err(|_| anyhow::anyhow!("invalid uid in --user {u:?}"))?,
        );
        user.set_gid(
            gid.parse()
                .map_err(|_| anyhow::anyhow!("invalid gid in --user {u:?}"))?,
        );
    }
    Ok(p)
}

pub fn run(a: Args, g: &Global) -> anyhow::Result<i32> {
    exeseal::ensure_sealed()?;
    let c = Container::load(&g.root, &a.id)?;
    let p = process(&a, &c)?;
    let set = if a.detach {
        None
    } else {
        Some(super::run::block_forwarded()?)
    };
    let opts = ExecOptions {
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        ..Default::default()
    };
    let pid = c.exec(&p, &opts)?;
    if let Some(f) = &a.pid_file {
        berth_runtime::util::write_atomic(f, pid.to_string().as_bytes())?;
    }
    match set {
        None => Ok(0),
        Some(set) => wait_forwarding(pid, &set),
    }
}
