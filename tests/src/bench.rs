//! Side-by-side benchmark of berthd against Debian's containerd 1.6, both started on private temp
//! paths in the same run and driven with the same workload: `ctr images import` of a generated
//! multi-layer image (content only, and unpacked into overlayfs snapshots), sequential metadata
//! operations and snapshot prepare+remove pairs (each through ctr and through an in-process gRPC
//! client), and both daemons' idle memory. Prints one table of both figures, their ratio and the
//! issue's targets. Run it with `scripts/bench` (release builds); `bench --quick` is the smoke
//! mode the tests run.
//!
//! Sections are listed in `section::all`; each is one comparison and returns table rows.

mod ctr;
mod daemons;
mod import;
mod interrupt;
mod metadata;
mod options;
mod report;
mod section;
mod snapshots;
mod unpack;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

pub use options::{parse, Command, Options, USAGE};

use daemons::{preflight, Daemons, Side};
use report::{table, Measure, Row};
use section::{Bench, Section, RSS_TARGET};

/// Timeout for the untimed `ctr version` calls.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// Names and summaries of every section, for `--list`.
pub fn list(options: &Options) -> Vec<(String, String)> {
    section::all(options)
        .iter()
        .map(|s| (s.name().to_string(), s.summary()))
        .collect()
}

/// The server version `ctr version` reports for `side`.
fn server_version(daemons: &Daemons, side: Side) -> anyhow::Result<String> {
    let out = daemons
        .ctr(side, "default", VERSION_TIMEOUT)
        .ok(&["version"])?;
    let server = out.split("Server:").nth(1).unwrap_or_default();
    Ok(server
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string()))
}

/// Rows for both daemons' VmRSS, read after they sat idle for the settle time.
fn rss_row(daemons: &Daemons, options: &Options, when: &str) -> anyhow::Result<Row> {
    std::thread::sleep(options.settle);
    Ok(Row {
        metric: format!("idle RSS {when}"),
        berth: Measure::Memory {
            kib: daemons.rss_kib(Side::Berth)?,
        },
        containerd: Measure::Memory {
            kib: daemons.rss_kib(Side::Containerd)?,
        },
        target: Some(RSS_TARGET),
    })
}

/// Everything measured while the daemons run.
struct Outcome {
    header: Vec<String>,
    rows: Vec<Row>,
    notes: Vec<String>,
}

fn measure(
    options: &Options,
    sections: &[Box<dyn Section>],
    daemons: &Daemons,
    work: &Path,
) -> anyhow::Result<Outcome> {
    // Idle after start-up: read before any client has talked to either daemon.
    let started = rss_row(daemons, options, "after start-up")?;
    let header = vec![
        format!(
            "berthd {} ({}) vs containerd {} ({}), same run, {} CPUs{}",
            server_version(daemons, Side::Berth)?,
            crate::harness::Berthd::binary().display(),
            server_version(daemons, Side::Containerd)?,
            crate::harness::CONTAINERD_BIN,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            if options.quick { ", quick mode" } else { "" }
        ),
        format!(
            "both daemons log at level {} ($BERTH_TEST_LOG_LEVEL); RSS is VmRSS of the daemon process",
            crate::harness::log_level()
        ),
    ];
    let bench = Bench { daemons, work };
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for section in sections {
        interrupt::check()?;
        eprintln!("bench: {}: {}", section.name(), section.summary());
        let report = section
            .run(&bench)
            .with_context(|| format!("section {}", section.name()))?;
        rows.extend(report.rows);
        notes.extend(report.notes);
    }
    rows.push(started);
    rows.push(rss_row(daemons, options, "after the workload")?);
    Ok(Outcome {
        header,
        rows,
        notes,
    })
}

/// Runs the selected sections against freshly started daemons and prints the table. Daemons,
/// their mounts and every temp dir are gone when this returns, whether it succeeded or not.
pub fn run(options: &Options) -> anyhow::Result<()> {
    preflight()?;
    let sections: Vec<Box<dyn Section>> = section::all(options)
        .into_iter()
        .filter(|s| options.wants(s.name()))
        .collect();
    if let Some(only) = &options.only {
        let known: Vec<String> = list(options).into_iter().map(|(n, _)| n).collect();
        if let Some(unknown) = only.iter().find(|n| !known.contains(n)) {
            bail!(
                "unknown section {unknown:?}; sections: {}",
                known.join(", ")
            );
        }
    }
    interrupt::install()?;
    let work = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir_in("/tmp")
        .context("create the benchmark's temp dir")?;
    let work_path: PathBuf = work.path().to_path_buf();

    eprintln!("bench: starting berthd and containerd");
    let daemons = Daemons::start()?;
    let outcome = measure(options, &sections, &daemons, &work_path);
    let cleanup = daemons.shut_down();
    drop(work);
    let outcome = match (outcome, cleanup) {
        (Ok(mut o), Ok(mut dirs)) => {
            dirs.push(work_path.clone());
            let kept = std::env::var_os("BERTH_KEEP_TEMP").is_some();
            o.notes.push(format!(
                "cleanup: daemons stopped; no process or mount left; {} {}",
                if kept {
                    "kept (BERTH_KEEP_TEMP)"
                } else {
                    "removed"
                },
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            o
        }
        (Ok(_), Err(cleanup)) => return Err(cleanup),
        (Err(err), Ok(_)) => return Err(err),
        (Err(err), Err(cleanup)) => return Err(err.context(format!("also: {cleanup:#}"))),
    };
    if work_path.exists() {
        bail!("temp dir {} was not removed", work_path.display());
    }

    for line in &outcome.header {
        println!("{line}");
    }
    println!();
    print!("{}", table(&outcome.rows));
    println!(
        "ratio: containerd/berthd for times (above 1: berthd faster), berthd/containerd for RSS"
    );
    for note in &outcome.notes {
        println!();
        print!("{note}");
        if !note.ends_with('\n') {
            println!();
        }
    }
    Ok(())
}
