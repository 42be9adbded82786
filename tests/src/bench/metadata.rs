//! Sequential metadata operations (content, images, leases, namespace labels) against both
//! daemons, seen two ways: through the real `ctr`, one process per operation, as a user sees it;
//! and as the same calls from a gRPC client in this process, which isolates the daemon's cost.
//!
//! Each view works in a namespace of its own holding the same small image. The two daemons take
//! turns round by round (whoever went first goes second next time), so background load on the
//! machine falls on both alike; a daemon's total is the sum of its operations' times.

mod ops;
mod rpc;

/// ctr's label timestamps, shared with the snapshot section's gRPC mirror.
pub(super) use rpc::rfc3339_utc;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::daemons::Side;
use super::interrupt;
use super::report::{seconds, table, Measure, Row};
use super::section::{Bench, Section, SectionReport, METADATA_TARGET};
use crate::image::generated_image_tar;
use ops::{sequence, Fixture, Kind, Op, ROUND};
use rpc::Mirror;

/// Limit for one ctr command.
const OP_TIMEOUT: Duration = Duration::from_secs(60);
/// The fixture image: a few small layers, so listings and image walks have something to read.
const FIXTURE_IMAGE: &str = "docker.io/berth/bench-meta:1";
const FIXTURE_LAYERS: usize = 3;
const FIXTURE_BYTES: u64 = 96 << 10;
const SEED: u64 = 7;

pub struct Metadata {
    pub ops: usize,
}

/// Time spent per daemon, in all and per kind of operation.
#[derive(Debug, Default)]
struct Tally {
    total: Duration,
    count: usize,
    by_kind: BTreeMap<Kind, (Duration, usize)>,
}

impl Tally {
    fn add(&mut self, kind: Kind, t: Duration) {
        self.total += t;
        self.count += 1;
        let entry = self.by_kind.entry(kind).or_default();
        entry.0 += t;
        entry.1 += 1;
    }

    fn throughput(&self) -> Measure {
        Measure::Throughput {
            total: self.total,
            ops: self.count,
        }
    }

    fn mean(&self, kind: Kind) -> Duration {
        match self.by_kind.get(&kind) {
            Some((total, n)) if *n > 0 => *total / u32::try_from(*n).unwrap_or(u32::MAX),
            _ => Duration::ZERO,
        }
    }
}

/// What ctr itself costs per operation (process start-up and connection: the gap between
/// berthd's mean in the two views) and the best ratio the ctr view could show if berthd took no
/// time at all, which bounds that row whatever the daemon does.
fn ctr_bound(via_ctr: &[Tally; 2], via_grpc: &[Tally; 2]) -> String {
    let mean = |t: &Tally| t.total.as_secs_f64() / t.count.max(1) as f64;
    let overhead = (mean(&via_ctr[0]) - mean(&via_grpc[0])).max(0.0);
    let containerd = mean(&via_grpc[1]);
    let bound = if overhead > 0.0 {
        format!("{:.2}x", (overhead + containerd) / overhead)
    } else {
        "-".to_string()
    };
    format!(
        "metadata: each ctr process adds {:.2} ms to an operation (start-up and connection: \
         berthd's mean via ctr minus via gRPC); containerd's own cost is {:.2} ms, so even a \
         daemon answering in no time would show at most {bound} in the ctr view. The gRPC \
         view measures the daemons.",
        overhead * 1e3,
        containerd * 1e3
    )
}

/// Per-kind mean latency of both daemons, as a table.
fn breakdown(title: &str, tallies: &[Tally; 2]) -> String {
    let rows: Vec<Row> = tallies[0]
        .by_kind
        .iter()
        .map(|(kind, (_, n))| Row {
            metric: format!("{} (mean of {n})", kind.command()),
            berth: Measure::Time(tallies[0].mean(*kind)),
            containerd: Measure::Time(tallies[1].mean(*kind)),
            target: None,
        })
        .collect();
    format!("{title}\n{}", table(&rows))
}

impl Metadata {
    /// Imports the fixture into `namespace` on both daemons (untimed).
    fn prepare(&self, bench: &Bench, tarball: &str, namespace: &str) -> anyhow::Result<()> {
        for side in Side::BOTH {
            bench
                .daemons
                .ctr(side, namespace, OP_TIMEOUT)
                .ok(&["images", "import", "--no-unpack", tarball])
                .with_context(|| format!("{}: import the metadata fixture", side.label()))?;
        }
        Ok(())
    }

    fn run_ctr(&self, bench: &Bench, ops: &[Op], namespace: &str) -> anyhow::Result<[Tally; 2]> {
        let ctrs = Side::BOTH.map(|side| bench.daemons.ctr(side, namespace, OP_TIMEOUT));
        let mut tallies = [Tally::default(), Tally::default()];
        for (round, chunk) in ops.chunks(ROUND).enumerate() {
            for side in Side::order(round) {
                for op in chunk {
                    interrupt::check()?;
                    let (t, _) = ctrs[side.index()]
                        .run(&op.ctr_args())
                        .with_context(|| format!("{}: {op}", side.label()))?;
                    tallies[side.index()].add(op.kind(), t);
                }
            }
        }
        Ok(tallies)
    }

    fn run_grpc(&self, bench: &Bench, ops: &[Op], namespace: &str) -> anyhow::Result<[Tally; 2]> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("build a tokio runtime")?;
        runtime.block_on(async {
            let mut mirrors = Vec::new();
            for side in Side::BOTH {
                let mirror = Mirror::connect(bench.daemons.address(side), namespace)
                    .await
                    .with_context(|| format!("{}: connect", side.label()))?;
                mirrors.push(mirror);
            }
            let mut tallies = [Tally::default(), Tally::default()];
            for (round, chunk) in ops.chunks(ROUND).enumerate() {
                for side in Side::order(round) {
                    for op in chunk {
                        interrupt::check()?;
                        let start = Instant::now();
                        let done = mirrors[side.index()].run(op).await;
                        interrupt::check()?;
                        done.with_context(|| format!("{}: gRPC mirror of {op}", side.label()))?;
                        tallies[side.index()].add(op.kind(), start.elapsed());
                    }
                }
            }
            Ok(tallies)
        })
    }

    /// What a namespace holds after the workload, as text comparable across daemons: images
    /// with their labels, leases, blobs with their labels, the namespace's labels.
    fn state(&self, bench: &Bench, side: Side, namespace: &str) -> anyhow::Result<Vec<String>> {
        let ctr = bench.daemons.ctr(side, namespace, OP_TIMEOUT);
        let mut lines = Vec::new();
        // ctr pads `content ls` with tabs (its AGE column holds spaces), the others with spaces.
        for (what, args, tabs) in [
            ("image", &["images", "ls"][..], false),
            ("lease", &["leases", "ls", "-q"], false),
            ("blob", &["content", "ls"], true),
            ("namespace", &["namespaces", "ls"], false),
        ] {
            let out = ctr.ok(args)?;
            for line in out.lines().skip(usize::from(what != "lease")) {
                let mut cells: Vec<String> = if tabs {
                    line.split('\t')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(sorted_labels)
                        .collect()
                } else {
                    line.split_whitespace().map(sorted_labels).collect()
                };
                if what == "blob" && cells.len() > 2 {
                    // The blob's age differs between daemons by nature.
                    cells.remove(2);
                }
                if what == "namespace" && cells.first().map(String::as_str) != Some(namespace) {
                    continue;
                }
                lines.push(format!("{what}: {}", cells.join(" ")));
            }
        }
        lines.sort();
        Ok(lines)
    }

    /// A note saying whether both daemons ended the workload in the same state.
    fn compare_state(&self, bench: &Bench, namespace: &str) -> anyhow::Result<String> {
        let berth = self.state(bench, Side::Berth, namespace)?;
        let containerd = self.state(bench, Side::Containerd, namespace)?;
        if berth == containerd {
            return Ok(format!(
                "metadata: state check {namespace}: identical on both daemons ({} lines of images, blobs, leases and labels)",
                berth.len()
            ));
        }
        let only = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|l| !b.contains(l)).cloned().collect()
        };
        Ok(format!(
            "metadata: state check {namespace}: DIFFERS\n  only berthd: {:?}\n  only containerd: {:?}",
            only(&berth, &containerd),
            only(&containerd, &berth)
        ))
    }
}

/// A cell of `k=v,k=v` labels with the labels sorted (the order ctr prints is not stable).
fn sorted_labels(cell: &str) -> String {
    if !cell.contains('=') {
        return cell.to_string();
    }
    let mut labels: Vec<&str> = cell.split(',').collect();
    labels.sort_unstable();
    labels.join(",")
}

impl Section for Metadata {
    fn name(&self) -> &'static str {
        "metadata"
    }

    fn summary(&self) -> String {
        format!(
            "{} sequential metadata operations via ctr and via an in-process gRPC client",
            self.ops
        )
    }

    fn run(&self, bench: &Bench) -> anyhow::Result<SectionReport> {
        let path = bench.work.join("metadata.tar");
        let info = generated_image_tar(&path, FIXTURE_IMAGE, FIXTURE_LAYERS, FIXTURE_BYTES, SEED)
            .context("generate the metadata fixture")?;
        let tarball = path.to_str().context("temp path is not utf-8")?;
        let mut digests = vec![info.manifest_digest.clone(), info.config_digest.clone()];
        digests.extend(info.layer_digests.iter().cloned());
        let fixture = |namespace: &str| Fixture {
            namespace: namespace.to_string(),
            image: info.name.clone(),
            digests: digests.clone(),
        };

        let ctr_ns = "bench-meta-ctr";
        self.prepare(bench, tarball, ctr_ns)?;
        let ops = sequence(&fixture(ctr_ns), self.ops);
        eprintln!("bench: metadata: {} ops via ctr...", ops.len());
        let via_ctr = self.run_ctr(bench, &ops, ctr_ns)?;
        eprintln!(
            "bench: metadata: via ctr: berthd {}, containerd {}",
            seconds(via_ctr[0].total),
            seconds(via_ctr[1].total)
        );

        let grpc_ns = "bench-meta-grpc";
        self.prepare(bench, tarball, grpc_ns)?;
        let ops = sequence(&fixture(grpc_ns), self.ops);
        eprintln!("bench: metadata: {} ops via gRPC...", ops.len());
        let via_grpc = self.run_grpc(bench, &ops, grpc_ns)?;
        eprintln!(
            "bench: metadata: via gRPC: berthd {}, containerd {}",
            seconds(via_grpc[0].total),
            seconds(via_grpc[1].total)
        );
        let _ = std::fs::remove_file(&path);

        let notes = vec![
            ctr_bound(&via_ctr, &via_grpc),
            self.compare_state(bench, ctr_ns)?,
            self.compare_state(bench, grpc_ns)?,
            breakdown("metadata via ctr, per command:", &via_ctr),
            breakdown("metadata via gRPC in-process, per command:", &via_grpc),
        ];
        let n = self.ops;
        Ok(SectionReport {
            rows: vec![
                Row {
                    metric: format!("{n} metadata ops via ctr (one process each)"),
                    berth: via_ctr[0].throughput(),
                    containerd: via_ctr[1].throughput(),
                    target: Some(METADATA_TARGET),
                },
                Row {
                    metric: format!("{n} metadata ops via gRPC in-process"),
                    berth: via_grpc[0].throughput(),
                    containerd: via_grpc[1].throughput(),
                    target: Some(METADATA_TARGET),
                },
            ],
            notes,
        })
    }
}
