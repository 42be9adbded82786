//! Times what Issue 3 measures, without gRPC: Prepare of an active snapshot on the top of a
//! 3-layer committed chain, then its Remove, on the overlay snapshotter.
//!
//! `cargo run --release --example prepare_remove -p berth-snapshotter [-- <pairs>]`
//!
//! The root is a temp dir under /tmp, the filesystem the daemon benchmark uses; it is removed at
//! the end. Must run as root (overlay's work dirs and ownership are root's business).

use std::path::Path;
use std::time::{Duration, Instant};

use berth_snapshotter::overlay::Overlay;
use berth_snapshotter::{Labels, Result, Snapshotter};

const WARMUP: usize = 20;

fn main() -> Result<()> {
    let pairs: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| berth_snapshotter::Error::invalid(format!("pairs {n:?}: not a number")))?,
        None => 200,
    };
    if pairs == 0 {
        return Err(berth_snapshotter::Error::invalid(
            "pairs must be at least 1",
        ));
    }
    let scratch = std::env::temp_dir().join(format!("berth-prepare-remove-{}", std::process::id()));
    let result = run(&scratch, pairs);
    if let Err(e) = std::fs::remove_dir_all(&scratch) {
        eprintln!("remove {}: {e}", scratch.display());
    }
    result
}

fn run(scratch: &Path, pairs: usize) -> Result<()> {
    // No alias: three layers always fit a page, and the alias would only touch /run.
    let sn = Overlay::open_with_alias(&scratch.join("root"), None)?;
    let mut parent: Option<String> = None;
    for i in 0..3 {
        let key = format!("extract-{i}");
        let name = format!("sha256:{i:064x}");
        sn.prepare(&key, parent.as_deref(), Labels::new())?;
        sn.commit(&name, &key, Labels::new())?;
        parent = Some(name);
    }
    let top = parent.as_deref();

    let (mut prep, mut rm, mut pair) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..WARMUP + pairs {
        let key = format!("container-{i}");
        let t0 = Instant::now();
        sn.prepare(&key, top, Labels::new())?;
        let t1 = Instant::now();
        sn.remove(&key)?;
        let t2 = Instant::now();
        if i >= WARMUP {
            prep.push(t1 - t0);
            rm.push(t2 - t1);
            pair.push(t2 - t0);
        }
    }
    println!("{pairs} pairs on {} (3-layer parent)", scratch.display());
    for (what, v) in [("prepare", prep), ("remove", rm), ("pair", pair)] {
        let (median, p90) = percentiles(v);
        println!(
            "{what:>8}: median {:.3} ms  p90 {:.3} ms",
            ms(median),
            ms(p90)
        );
    }
    // Removed snapshots' directories wait for cleanup, as in the daemon.
    sn.cleanup()
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
