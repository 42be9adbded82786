//! `berth-runtime`: a runc-compatible command line over the berth_runtime library. Each verb lives in its
//! own short file under cli/.

mod cli;

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "berth-runtime",
    version,
    about = "Berth's OCI container runtime (runc-compatible CLI)"
)]
struct Cli {
    /// Directory holding the containers' state.
    #[arg(long, global = true, default_value = berth_runtime::DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write errors (and with --debug, progress) to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the --log file: text or json (containerd's shim reads json).
    #[arg(long, global = true, default_value = "text")]
    log_format: String,
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for runc compatibility; systemd cgroup paths are refused with a clear error.
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    command: cli::Command,
}

fn main() {
    // The library's helper mode (see berth_runtime::helper), before any argument parsing.
    berth_runtime::helper::serve_if_requested();
    let cli = Cli::parse();
    cli::log::init(cli.log.as_deref(), &cli.log_format, cli.debug);
    let global = cli::Global {
        root: cli.root,
        systemd_cgroup: cli.systemd_cgroup,
    };
    let code = match cli::run(cli.command, &global) {
        Ok(code) => code,
        Err(e) => {
            cli::log::error(&format!("{e:#}"));
            1
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
