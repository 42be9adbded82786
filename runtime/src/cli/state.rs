use berth_runtime::Container;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(a: Args, g: &Global) -> anyhow::Result<()> {
    let c = Container::load(&g.root, &a.id)?;
    println!("{}", serde_json::to_string_pretty(&c.oci_state())?);
    Ok(())
}
