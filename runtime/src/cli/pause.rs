use berth_runtime::Container;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn pause(a: Args, g: &Global) -> anyhow::Result<()> {
    Container::load(&g.root, &a.id)?.pause()?;
    Ok(())
}

pub fn resume(a: Args, g: &Global) -> anyhow::Result<()> {
    Container::load(&g.root, &a.id)?.resume()?;
    Ok(())
}
