use std::time::{Duration, Instant};

use berth_runtime::cgroups::oom::OomEvent;
use berth_runtime::{Container, ContainerStatus};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    /// Print one stats event and exit.
    #[arg(long)]
    pub stats: bool,
    /// Time between stats events when streaming (`5s`, `500ms`, `1m`).
    #[arg(long, default_value = "5s")]
    pub interval: String,
}

/// A duration as runc's flag takes it (Go syntax, the common units).
fn interval(s: &str) -> anyhow::Result<Duration> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => anyhow::bail!("invalid interval {s:?}: unknown unit {unit:?}"),
    };
    anyhow::ensure!(secs > 0.0, "interval {s:?} must be positive");
    Ok(Duration::from_secs_f64(secs))
}

fn print_stats(c: &Container) -> anyhow::Result<()> {
    let event = serde_json::json!({"type": "stats", "id": c.id(), "data": c.stats()?});
    println!("{event}");
    Ok(())
}

/// Prints runc-style events, one JSON object per line: with --stats one `stats` event; otherwise a
/// `stats` event per interval and an `{"type":"oom","id":...}` event as soon as the container's cgroup
/// runs out of memory, until the container stops or its cgroup goes away.
pub fn run(a: Args, g: &Global) -> anyhow::Result<()> {
    let c = Container::load(&g.root, &a.id)?;
    if a.stats {
        return print_stats(&c);
    }
    let every = interval(&a.interval)?;
    // Armed before the first stats event, so a reader that saw one misses no OOM after it.
    let mut oom = c.oom_watcher()?;
    let print_oom = || println!("{}", serde_json::json!({"type": "oom", "id": a.id}));
    let mut next = Instant::now() + every;
    loop {
        match oom.wait(Some(next.saturating_duration_since(Instant::now())))? {
            OomEvent::Oom(_) => print_oom(),
            OomEvent::Gone => return Ok(()),
            OomEvent::Timeout => {}
        }
        if Instant::now() < next {
            continue;
        }
        next += every;
        let c = match Container::load(&g.root, &a.id) {
            Ok(c) => c,
            Err(berth_runtime::Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        print_stats(&c)?;
        if c.status() == ContainerStatus::Stopped {
            // An OOM kill that stopped the container was signalled before the process died.
            if let OomEvent::Oom(_) = oom.check()? {
                print_oom();
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_like_go_durations() {
        assert_eq!(interval("5s").expect("5s"), Duration::from_secs(5));
        assert_eq!(interval("100ms").expect("ms"), Duration::from_millis(100));
        assert_eq!(interval("2m").expect("m"), Duration::from_secs(120));
        assert_eq!(interval("3").expect("bare"), Duration::from_secs(3));
        assert!(interval("0s").is_err());
        assert!(interval("5x").is_err());
        assert!(interval("s").is_err());
    }
}
