//! `ctr images import` of one generated multi-layer tarball into each daemon, several runs, the
//! median reported. Each run imports into a namespace of its own, so nothing is deduplicated
//! against an earlier run; the image and its blobs are removed (`rm --sync`) after each timing,
//! and so are its snapshots when the import unpacks (see `unpack` for the checks around that).

use std::time::{Duration, Instant};

use anyhow::Context;

use super::daemons::Side;
use super::interrupt;
use super::report::{median, seconds, Measure, Row, Target};
use super::section::{Bench, Section, SectionReport};
use super::unpack;
use crate::image::{generated_image_tar, ImageInfo};

/// Limit for one import: generous, a slow disk must not fail the benchmark.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(900);
/// Limit for the untimed bookkeeping commands around it.
const CTR_TIMEOUT: Duration = Duration::from_secs(120);
/// Fixed seed: the same bytes, and so the same digests, in every run of the benchmark.
const SEED: u64 = 20_260_101;

pub struct Import {
    pub name: &'static str,
    /// Whether the import unpacks the layers into snapshots (ctr's default snapshotter,
    /// overlayfs) or only stores the content (`--no-unpack`).
    pub unpack: bool,
    pub mib: u64,
    pub layers: usize,
    pub runs: usize,
    pub target: Option<Target>,
}

impl Import {
    fn image_name(&self) -> String {
        format!("docker.io/berth/bench-{}:{}mib", self.name, self.mib)
    }

    /// How the import is shown in the summary and the table.
    fn what(&self) -> &'static str {
        if self.unpack {
            "images import (unpack to overlayfs)"
        } else {
            "images import --no-unpack"
        }
    }

    /// One timed import into a fresh namespace, then the cleanup that keeps the next run honest.
    fn once(
        &self,
        bench: &Bench,
        side: Side,
        run: usize,
        tarball: &str,
        info: &ImageInfo,
    ) -> anyhow::Result<Duration> {
        let namespace = format!("bench-{}-{run}", self.name);
        let daemons = bench.daemons;
        let ctr = daemons.ctr(side, &namespace, IMPORT_TIMEOUT);
        let mut args = vec!["images", "import"];
        if !self.unpack {
            args.push("--no-unpack");
        }
        args.push(tarball);
        let (elapsed, _) = ctr.run(&args)?;

        let ctr = daemons.ctr(side, &namespace, CTR_TIMEOUT);
        let name = self.image_name();
        let listed = ctr.ok(&["images", "ls", "-q"])?;
        anyhow::ensure!(
            listed.lines().any(|l| l.trim() == name),
            "{}: image {name} not listed after import: {listed:?}",
            side.label()
        );
        if self.unpack {
            // A daemon that skipped the unpack must not win the race.
            unpack::check_chain(&ctr, side, info, self.mib << 20)?;
        }
        ctr.ok(&["images", "rm", "--sync", &name])?;
        // The next run must unpack from scratch, and containerd refuses to remove a namespace
        // that still holds snapshots.
        unpack::wait_until_no_snapshots(&ctr, side)?;
        ctr.ok(&["namespaces", "rm", &namespace])
            .with_context(|| format!("{}: remove namespace {namespace}", side.label()))?;
        Ok(elapsed)
    }
}

impl Section for Import {
    fn name(&self) -> &'static str {
        self.name
    }

    fn summary(&self) -> String {
        format!(
            "ctr {} of a {} MiB image in {} layers, median of {}",
            self.what(),
            self.mib,
            self.layers,
            self.runs
        )
    }

    fn run(&self, bench: &Bench) -> anyhow::Result<SectionReport> {
        let path = bench.work.join(format!("{}.tar", self.name));
        let started = Instant::now();
        let info =
            generated_image_tar(&path, &self.image_name(), self.layers, self.mib << 20, SEED)
                .context("generate the import image")?;
        eprintln!(
            "bench: {}: generated {} ({} blobs, {} bytes) in {}",
            self.name,
            info.name,
            info.blob_count,
            info.total_blob_bytes,
            seconds(started.elapsed())
        );
        let tarball = path.to_str().context("temp path is not utf-8")?;

        let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        for run in 0..self.runs {
            for side in Side::order(run) {
                interrupt::check()?;
                let t = self.once(bench, side, run, tarball, &info)?;
                eprintln!(
                    "bench: {}: run {}/{} {}: {}",
                    self.name,
                    run + 1,
                    self.runs,
                    side.label(),
                    seconds(t)
                );
                times[side.index()].push(t);
            }
        }
        let _ = std::fs::remove_file(&path);

        let [berth, containerd] = &times;
        let list = |v: &[Duration]| v.iter().map(|t| seconds(*t)).collect::<Vec<_>>().join(", ");
        let metric = format!(
            "{} {} MiB/{} layers, median of {}",
            self.what(),
            self.mib,
            self.layers,
            self.runs
        );
        Ok(SectionReport {
            rows: vec![Row {
                metric,
                berth: Measure::Time(median(berth).context("no import runs")?),
                containerd: Measure::Time(median(containerd).context("no import runs")?),
                target: self.target,
            }],
            notes: vec![format!(
                "{}: {} bytes in {} blobs; runs: berthd [{}], containerd [{}]",
                self.name,
                info.total_blob_bytes,
                info.blob_count,
                list(berth),
                list(containerd)
            )],
        })
    }
}
