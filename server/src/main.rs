//! berthd: a containerd-compatible daemon. Flags mirror containerd's.

use std::path::PathBuf;

use anyhow::Context;
use berth_server::config::Config;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berthd",
    version,
    about = "Berth: a containerd-compatible container runtime daemon"
)]
struct Cli {
    /// Config file (TOML); every key has a default, so none is needed.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Persistent data directory.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Runtime state directory.
    #[arg(long)]
    state: Option<PathBuf>,
    /// gRPC socket path.
    #[arg(short, long)]
    address: Option<PathBuf>,
    /// trace, debug, info, warn or error.
    #[arg(short, long)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Work with the configuration.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the default configuration.
    Default,
    /// Print the configuration in effect (file and flags applied).
    Dump,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(r) = cli.root {
        cfg.root = r;
    }
    if let Some(s) = cli.state {
        cfg.state = s;
    }
    if let Some(a) = cli.address {
        cfg.grpc.address = a;
    }
    if let Some(l) = cli.log_level {
        cfg.log.level = l;
    }
    match cli.command {
        Some(Command::Config {
            what: ConfigCommand::Default,
        }) => {
            print!("{}", Config::default_toml());
            return Ok(());
        }
        Some(Command::Config {
            what: ConfigCommand::Dump,
        }) => {
            print!("{}", toml::to_string_pretty(&cfg)?);
            return Ok(());
        }
        None => {}
    }
    // The level is for berthd's own logs; the HTTP/2 stack stays quiet unless it warns.
    let directives = format!("{},h2=warn,hyper=warn,tower=warn,sled=warn", cfg.log.level);
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .with_context(|| format!("log level {:?}", cfg.log.level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    berth_server::memory::limit_arenas();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let res = rt.block_on(berth_server::daemon::run(cfg));
    if let Err(e) = &res {
        tracing::error!("{e:#}");
    }
    res
}
