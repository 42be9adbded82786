use std::time::Duration;

use berth_runtime::Container;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    /// Print one stats event and exit.
    #[arg(long)]
    pub stats: bool,
    /// Seconds between stats events when streaming.
    #[arg(long, default_value = "5s")]
    pub interval: String,
}

fn interval(s: &str) -> anyhow::Result<Duration> {
    let n = s.trim_end_matches('s');
    Ok(Duration::from_secs_f64(
        n.parse()
            .map_err(|_| anyhow::anyhow!("invalid interval {s:?}"))?,
    ))
}

/// Prints runc-style `{"type":"stats","id":...,"data":{...}}` events: one with --stats, else one per
/// interval until the container stops.
pub fn run(a: Args, g: &Global) -> anyhow::Result<()> {
    let every = interval(&a.interval)?;
    loop {
        let c = Container::load(&g.root, &a.id)?;
        let event = serde_json::json!({"type": "stats", "id": a.id, "data": c.stats()?});
        println!("{event}");
        if a.stats || c.status() == berth_runtime::ContainerStatus::Stopped {
            return Ok(());
        }
        std::thread::sleep(every);
    }
}
