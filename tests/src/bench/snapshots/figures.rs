//! The snapshot section's samples and what the table and notes make of them: medians and p90
//! of prepare+remove pairs per view, and the per-call medians as a breakdown.

use std::time::Duration;

use anyhow::Context;

use super::super::daemons::Side;
use super::super::report::{median, percentile, seconds, table, Measure, Row, Target};
use super::super::section::{SectionReport, SNAPSHOT_TARGET};

/// One daemon's times, sample by sample.
#[derive(Debug, Default)]
pub struct Samples {
    prepare: Vec<Duration>,
    remove: Vec<Duration>,
}

impl Samples {
    pub fn add(&mut self, prepare: Duration, remove: Duration) {
        self.prepare.push(prepare);
        self.remove.push(remove);
    }

    /// Prepare plus remove, per sample.
    fn pairs(&self) -> Vec<Duration> {
        self.prepare
            .iter()
            .zip(&self.remove)
            .map(|(p, r)| *p + *r)
            .collect()
    }
}

/// What the run saw besides the times, for the notes.
pub struct Seen<'a> {
    pub ops: usize,
    /// The committed snapshot every sample was prepared on.
    pub parent: &'a str,
    /// Layers below it.
    pub layers: usize,
    /// How each daemon's first Prepare answered, `[berthd, containerd]`.
    pub mounts: &'a [String; 2],
}

/// Which times of a sample a row is about.
#[derive(Clone, Copy)]
enum Part {
    Pair,
    Prepare,
    Remove,
}

/// Which statistic a row shows.
#[derive(Clone, Copy)]
enum Stat {
    Median,
    P90,
}

impl Stat {
    fn of(self, values: &[Duration]) -> Option<Duration> {
        match self {
            Stat::Median => median(values),
            Stat::P90 => percentile(values, 90.0),
        }
    }
}

/// A statistic of both daemons' samples as a table row.
fn row(
    metric: String,
    samples: &[Samples; 2],
    part: Part,
    stat: Stat,
    target: Option<Target>,
) -> anyhow::Result<Row> {
    let figure = |side: Side| -> anyhow::Result<Measure> {
        let s = &samples[side.index()];
        let values = match part {
            Part::Pair => s.pairs(),
            Part::Prepare => s.prepare.clone(),
            Part::Remove => s.remove.clone(),
        };
        let value = stat
            .of(&values)
            .with_context(|| format!("{}: no samples for {metric}", side.label()))?;
        Ok(Measure::Time(value))
    };
    Ok(Row {
        berth: figure(Side::Berth)?,
        containerd: figure(Side::Containerd)?,
        metric,
        target,
    })
}

/// The table rows (median and p90 of pairs per view; the target on the gRPC median) and the
/// notes (why the ctr view is not the one the target is about, and the per-call breakdown).
pub fn report(
    seen: &Seen,
    via_ctr: &[Samples; 2],
    via_grpc: &[Samples; 2],
) -> anyhow::Result<SectionReport> {
    let n = seen.ops;
    let ctr = "snapshot prepare+rm via ctr (2 processes)";
    let grpc = "snapshot Prepare+Remove via gRPC in-process";
    let rows = vec![
        row(
            format!("{ctr}, median of {n}"),
            via_ctr,
            Part::Pair,
            Stat::Median,
            None,
        )?,
        row(
            format!("{ctr}, p90 of {n}"),
            via_ctr,
            Part::Pair,
            Stat::P90,
            None,
        )?,
        row(
            format!("{grpc}, median of {n}"),
            via_grpc,
            Part::Pair,
            Stat::Median,
            Some(SNAPSHOT_TARGET),
        )?,
        row(
            format!("{grpc}, p90 of {n}"),
            via_grpc,
            Part::Pair,
            Stat::P90,
            None,
        )?,
    ];
    let breakdown = [
        ("ctr snapshots prepare", via_ctr, Part::Prepare),
        ("ctr snapshots rm", via_ctr, Part::Remove),
        ("Snapshots.Prepare", via_grpc, Part::Prepare),
        ("Snapshots.Remove", via_grpc, Part::Remove),
    ]
    .into_iter()
    .map(|(what, samples, part)| {
        row(
            format!("{what} (median)"),
            samples,
            part,
            Stat::Median,
            None,
        )
    })
    .collect::<anyhow::Result<Vec<Row>>>()?;

    // What ctr itself adds to a pair on berthd: the gap between the two views' medians.
    let berth = Side::Berth.index();
    let overhead = median(&via_ctr[berth].pairs())
        .zip(median(&via_grpc[berth].pairs()))
        .map(|(c, g)| seconds(c.saturating_sub(g)))
        .unwrap_or_else(|| "-".to_string());
    let notes = vec![
        format!(
            "snapshots: the ctr view starts two ctr processes per sample, and their start-up and \
             connection dominate it (they add {overhead} to a berthd pair, the gap between the \
             views' medians), so its ratio says little about the daemons; the 2x target applies \
             to the gRPC view. Parent: {} (top of {} layers); first Prepare returned berthd: {}, \
             containerd: {}. Both daemons' Remove drop the record and leave the directory to their \
             background collector.",
            seen.parent,
            seen.layers,
            seen.mounts[berth],
            seen.mounts[Side::Containerd.index()]
        ),
        format!("snapshots, per call:\n{}", table(&breakdown)),
    ];
    Ok(SectionReport { rows, notes })
}
