use berth_runtime::Container;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(a: Args, g: &Global) -> anyhow::Result<()> {
    Container::load(&g.root, &a.id)?.start()?;
    Ok(())
}
