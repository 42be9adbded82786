use std::io::Read;
use std::path::PathBuf;

use berth_runtime::Container;
use oci_spec::runtime::LinuxResources;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    /// A JSON file with the new `linux.resources`, or `-` for stdin (how containerd's shim sends it).
    #[arg(short, long)]
    pub resources: PathBuf,
}

pub fn run(a: Args, g: &Global) -> anyhow::Result<()> {
    let mut text = Vec::new();
    if a.resources.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut text)?;
    } else {
        text = std::fs::read(&a.resources)
            .map_err(|e| anyhow::anyhow!("read {}: {e}", a.resources.display()))?;
    }
    let r: LinuxResources =
        serde_json::from_slice(&text).map_err(|e| anyhow::anyhow!("invalid resources: {e}"))?;
    Container::load(&g.root, &a.id)?.update(&r)?;
    Ok(())
}
