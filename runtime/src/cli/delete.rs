use berth_runtime::{Container, Error};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    /// Kill a running container first; a missing container is not an error.
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(a: Args, g: &Global) -> anyhow::Result<()> {
    match Container::load(&g.root, &a.id) {
        Ok(c) => Ok(c.delete(a.force)?),
        Err(Error::NotFound(_)) if a.force => {
            berth_runtime::container::remove_stale(&g.root, &a.id)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
