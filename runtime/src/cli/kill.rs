use berth_runtime::container::kill::parse_signal;
use berth_runtime::Container;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    /// Signal name or number; SIGTERM when omitted.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Signal every process in the container, not just init.
    #[arg(short, long)]
    pub all: bool,
}

pub fn run(a: Args, g: &Global) -> anyhow::Result<()> {
    let sig = parse_signal(&a.signal)?;
    Container::load(&g.root, &a.id)?.kill(sig, a.all)?;
    Ok(())
}
