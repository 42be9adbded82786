//! Snapshot prepare+remove latency: an active snapshot prepared on top of a committed parent
//! (the top layer of a small unpacked image) and removed again, many times, on both daemons.
//! Seen two ways, as the metadata section does: through the real ctr (`snapshots prepare KEY
//! PARENT`, then `snapshots rm KEY`, one process each), and as the same gRPC calls from this
//! process. A sample is the prepare and the remove together; medians and p90 are reported.
//!
//! The daemons alternate sample by sample (whoever went first goes second next time), every
//! key is new, and the first sample of each view is checked (the snapshot is active on the
//! parent with ctr's gc.root label, then gone) so a daemon cannot win by doing nothing. At the
//! end the namespace must hold exactly the image's chain again; the image is then removed and
//! its snapshots with it.

mod figures;
mod rpc;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use berth_api::containerd::services::snapshots::v1 as api;

use super::ctr::TimedCtr;
use super::daemons::Side;
use super::interrupt;
use super::section::{Bench, Section, SectionReport};
use super::unpack;
use crate::image::layered::chain_ids;
use crate::image::{generated_image_tar, ImageInfo};
use figures::{Samples, Seen};
use rpc::{SnapshotRpc, GC_ROOT};

/// Limit for one ctr command.
const OP_TIMEOUT: Duration = Duration::from_secs(60);
const NAMESPACE: &str = "bench-snap";
/// ctr's default, and what the fixture is unpacked into.
const SNAPSHOTTER: &str = "overlayfs";
/// The parent's image: a few small layers, so the prepared snapshot has a real chain below it.
const FIXTURE_IMAGE: &str = "docker.io/berth/bench-snap:1";
const FIXTURE_LAYERS: usize = 3;
const FIXTURE_BYTES: u64 = 96 << 10;
const SEED: u64 = 11;

pub struct Snapshots {
    /// Prepare+remove pairs per daemon and view.
    pub ops: usize,
}

impl Snapshots {
    /// Imports (and unpacks) the fixture into the namespace on both daemons and checks the
    /// chain; returns the top layer's chain id, the parent of every prepared snapshot.
    fn prepare_fixture(
        &self,
        bench: &Bench,
        tarball: &str,
        image: &ImageInfo,
    ) -> anyhow::Result<String> {
        for side in Side::BOTH {
            let ctr = bench.daemons.ctr(side, NAMESPACE, OP_TIMEOUT);
            ctr.ok(&["images", "import", tarball])
                .with_context(|| format!("{}: import the snapshot fixture", side.label()))?;
            unpack::check_chain(&ctr, side, image, FIXTURE_BYTES)?;
        }
        chain_ids(&image.diff_ids)
            .pop()
            .context("the fixture has no layers")
    }

    fn run_ctr(&self, bench: &Bench, parent: &str) -> anyhow::Result<[Samples; 2]> {
        let ctrs = Side::BOTH.map(|side| bench.daemons.ctr(side, NAMESPACE, OP_TIMEOUT));
        let mut samples = [Samples::default(), Samples::default()];
        for i in 0..self.ops {
            for side in Side::order(i) {
                interrupt::check()?;
                let ctr = &ctrs[side.index()];
                let key = format!("bench-ctr-{i}");
                let (prepare, _) = ctr.run(&["snapshots", "prepare", &key, parent])?;
                if i == 0 {
                    check_ctr_active(ctr, side, &key, parent)?;
                }
                let (remove, _) = ctr.run(&["snapshots", "rm", &key])?;
                if i == 0 {
                    let left = unpack::list(ctr)?;
                    ensure!(
                        !left.iter().any(|l| l.key == key),
                        "{}: snapshot {key} still listed after ctr snapshots rm",
                        side.label()
                    );
                }
                samples[side.index()].add(prepare, remove);
            }
        }
        Ok(samples)
    }

    /// The gRPC view; also returns how each daemon's first Prepare answered (for the notes).
    fn run_grpc(&self, bench: &Bench, parent: &str) -> anyhow::Result<([Samples; 2], [String; 2])> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("build a tokio runtime")?;
        runtime.block_on(async {
            let mut clients = Vec::new();
            for side in Side::BOTH {
                let client =
                    SnapshotRpc::connect(bench.daemons.address(side), NAMESPACE, SNAPSHOTTER)
                        .await
                        .with_context(|| format!("{}: connect", side.label()))?;
                clients.push(client);
            }
            let mut samples = [Samples::default(), Samples::default()];
            let mut mounts = [String::new(), String::new()];
            for i in 0..self.ops {
                for side in Side::order(i) {
                    interrupt::check()?;
                    let client = &mut clients[side.index()];
                    let key = format!("bench-grpc-{i}");
                    let start = Instant::now();
                    let prepared = client.prepare(&key, parent).await;
                    let prepare = start.elapsed();
                    let prepared = prepared
                        .with_context(|| format!("{}: Prepare {key} on {parent}", side.label()))?;
                    ensure!(
                        !prepared.is_empty(),
                        "{}: Prepare {key} returned no mounts",
                        side.label()
                    );
                    if i == 0 {
                        mounts[side.index()] = describe_mounts(&prepared);
                        let info = client.stat(&key).await?;
                        check_active(side, &key, parent, info.as_ref())?;
                    }
                    let start = Instant::now();
                    let removed = client.remove(&key).await;
                    let remove = start.elapsed();
                    removed.with_context(|| format!("{}: Remove {key}", side.label()))?;
                    if i == 0 {
                        ensure!(
                            client.stat(&key).await?.is_none(),
                            "{}: snapshot {key} still there after Remove",
                            side.label()
                        );
                    }
                    samples[side.index()].add(prepare, remove);
                }
            }
            Ok((samples, mounts))
        })
    }

    /// Checks the namespace holds only the fixture's chain again, then removes the image and
    /// the namespace (containerd's snapshots go with them).
    fn clean_up(&self, bench: &Bench, image: &ImageInfo) -> anyhow::Result<()> {
        for side in Side::BOTH {
            let ctr = bench.daemons.ctr(side, NAMESPACE, OP_TIMEOUT);
            unpack::check_chain(&ctr, side, image, FIXTURE_BYTES)
                .context("after the workload, only the fixture's snapshots should be left")?;
            ctr.ok(&["images", "rm", "--sync", &image.name])?;
            unpack::wait_until_no_snapshots(&ctr, side)?;
            ctr.ok(&["namespaces", "rm", NAMESPACE])
                .with_context(|| format!("{}: remove namespace {NAMESPACE}", side.label()))?;
        }
        Ok(())
    }
}

/// `ctr snapshots info KEY` shows an active snapshot on `parent` with ctr's gc.root label.
fn check_ctr_active(ctr: &TimedCtr, side: Side, key: &str, parent: &str) -> anyhow::Result<()> {
    let out = ctr.ok(&["snapshots", "info", key])?;
    let info: serde_json::Value = serde_json::from_str(&out)
        .with_context(|| format!("{}: ctr snapshots info {key}: {out:?}", side.label()))?;
    ensure!(
        info["Kind"] == "Active"
            && info["Parent"] == parent
            && info["Labels"].get(GC_ROOT).is_some(),
        "{}: after ctr snapshots prepare, {key} is not active on {parent} with {GC_ROOT}: {info}",
        side.label()
    );
    Ok(())
}

/// Snapshots.Stat shows an active snapshot on `parent` with ctr's gc.root label.
fn check_active(
    side: Side,
    key: &str,
    parent: &str,
    info: Option<&api::Info>,
) -> anyhow::Result<()> {
    let info =
        info.with_context(|| format!("{}: snapshot {key} not found after Prepare", side.label()))?;
    ensure!(
        info.kind == api::Kind::Active as i32
            && info.parent == parent
            && info.labels.contains_key(GC_ROOT),
        "{}: after Prepare, {key} is not active on {parent} with {GC_ROOT}: {info:?}",
        side.label()
    );
    Ok(())
}

/// Mount types and how many lower layers an overlay mount has, e.g. `overlay (3 lowerdirs)`.
fn describe_mounts(mounts: &[berth_api::containerd::types::Mount]) -> String {
    mounts
        .iter()
        .map(|m| {
            let lowers = m
                .options
                .iter()
                .find_map(|o| o.strip_prefix("lowerdir="))
                .map(|l| l.split(':').count());
            match lowers {
                Some(n) => format!("{} ({n} lowerdirs)", m.r#type),
                None => m.r#type.clone(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Section for Snapshots {
    fn name(&self) -> &'static str {
        "snapshots"
    }

    fn summary(&self) -> String {
        format!(
            "{} snapshot prepare+remove pairs on a committed parent via ctr and via an in-process gRPC client",
            self.ops
        )
    }

    fn run(&self, bench: &Bench) -> anyhow::Result<SectionReport> {
        let path = bench.work.join("snapshots.tar");
        let image = generated_image_tar(&path, FIXTURE_IMAGE, FIXTURE_LAYERS, FIXTURE_BYTES, SEED)
            .context("generate the snapshot fixture")?;
        let tarball = path.to_str().context("temp path is not utf-8")?;
        let parent = self.prepare_fixture(bench, tarball, &image)?;
        let _ = std::fs::remove_file(&path);

        eprintln!("bench: snapshots: {} prepare+rm pairs via ctr...", self.ops);
        let via_ctr = self.run_ctr(bench, &parent)?;
        eprintln!(
            "bench: snapshots: {} Prepare+Remove pairs via gRPC...",
            self.ops
        );
        let (via_grpc, mounts) = self.run_grpc(bench, &parent)?;
        self.clean_up(bench, &image)?;

        let seen = Seen {
            ops: self.ops,
            parent: &parent,
            layers: FIXTURE_LAYERS,
            mounts: &mounts,
        };
        figures::report(&seen, &via_ctr, &via_grpc)
    }
}
