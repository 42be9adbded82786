//! Garbage collection as containerd does it: mark everything reachable from the roots (images,
//! containers, live leases and `containerd.io/gc.root` labels) through `containerd.io/gc.ref.*`
//! labels, sweep the rest in one batch, then remove what no namespace holds from disk.
//!
//! Resources are named `(type, id)` so snapshots can join the same collector: a label
//! `containerd.io/gc.ref.snapshot.<snapshotter>` marks `("snapshots/<snapshotter>", key)`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::content::Digest;
use crate::error::{Kind as ErrKind, Result};
use berth_snapshotter::Info;

use crate::metadata::leases::{self, LABEL_EXPIRE, LABEL_FLAT};
use crate::metadata::snapshots;
use crate::metadata::{
    key, now_nanos, prefix, Batch, BlobRec, ContainerRec, ImageRec, Kind, Labels, LeaseRec,
};
use crate::Meta;

pub const LABEL_ROOT: &str = "containerd.io/gc.root";
const REF_PREFIX: &str = "containerd.io/gc.ref.";

/// What one collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub blob_records: usize,
    pub leases: usize,
    pub blobs_on_disk: usize,
    pub ingests: usize,
    pub snapshots: usize,
}

/// Schedules collections: at once for `sync` deletes, shortly after other deletes, and when the
/// next lease expires.
#[derive(Default)]
pub struct Gc {
    wake: Notify,
}

impl Gc {
    pub fn after_delete(&self, m: &Meta, sync: bool) -> Result<()> {
        if sync {
            collect(m)?;
        } else {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The background scheduler; runs until the runtime stops.
    pub async fn run(m: Arc<Meta>, delay: Duration) {
        loop {
            let next = next_expiry(&m).unwrap_or(None);
            let wait = next
                .map(|at| Duration::from_nanos((at - now_nanos()).max(0) as u64))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = m.gc.wake.notified() => tokio::time::sleep(delay).await,
                _ = tokio::time::sleep(wait) => {}
            }
            let mc = m.clone();
            match tokio::task::spawn_blocking(move || collect(&mc)).await {
                Ok(Ok(s)) => {
                    tracing::debug!(?s, "garbage collected");
                    // A collection follows deletes, often of big imports: give back what they
                    // left in the allocator.
                    crate::memory::trim();
                }
                Ok(Err(e)) => tracing::warn!("garbage collection: {e}"),
                Err(e) => tracing::warn!("garbage collection task: {e}"),
            }
        }
    }
}

fn next_expiry(m: &Meta) -> Result<Option<i64>> {
    let mut next: Option<i64> = None;
    for ns in m.db.namespaces()? {
        for (_, l) in m.db.scan::<LeaseRec>(&prefix(Kind::Lease, &[&ns]))? {
            if let Some(at) = l
                .labels
                .get(LABEL_EXPIRE)
                .and_then(|v| leases::parse_expire(v).ok())
            {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
    }
    Ok(next)
}

type Node = (String, String); // (resource type, id)

/// The `gc.ref` labels of an object, as the resources they point at.
fn refs(labels: &Labels) -> Vec<Node> {
    let mut out = Vec::new();
    for (k, v) in labels {
        let Some(rest) = k.strip_prefix(REF_PREFIX) else {
            continue;
        };
        if rest == "content" || rest.starts_with("content.") {
            out.push(("content".to_string(), v.clone()));
        } else if let Some(s) = rest.strip_prefix("snapshot.") {
            let sn = s.split('/').next().unwrap_or(s);
            out.push((format!("snapshots/{sn}"), v.clone()));
        }
    }
    out
}

/// Every backend's snapshots, by namespace and then by node.
type SnapshotIndex = HashMap<String, HashMap<Node, Info>>;

fn snapshot_index(m: &Meta) -> Result<SnapshotIndex> {
    let mut idx: SnapshotIndex = HashMap::new();
    for (sn, s) in &m.snapshotters {
        for info in s.list()? {
            let Some((ns, key)) = snapshots::split_backend_key(&info.name) else {
                continue;
            };
            let node = (format!("snapshots/{sn}"), key.to_string());
            idx.entry(ns.to_string()).or_default().insert(node, info);
        }
    }
    Ok(idx)
}

/// One namespace's reachable set.
fn mark(
    m: &Meta,
    ns: &str,
    now: i64,
    snaps: &HashMap<Node, Info>,
    expired: &mut Vec<Vec<u8>>,
) -> Result<HashSet<Node>> {
    let blobs: HashMap<String, BlobRec> =
        m.db.scan::<BlobRec>(&prefix(Kind::Blob, &[ns]))?
            .into_iter()
            .collect();
    let mut marked: HashSet<Node> = HashSet::new();
    let mut stack: Vec<Node> = Vec::new();
    for (_, img) in m.db.scan::<ImageRec>(&prefix(Kind::Image, &[ns]))? {
        if let Some(t) = &img.target {
            stack.push(("content".into(), t.digest.clone()));
        }
        stack.extend(refs(&img.labels));
    }
    for (_, c) in m.db.scan::<ContainerRec>(&prefix(Kind::Container, &[ns]))? {
        if !c.snapshot_key.is_empty() {
            stack.push((
                format!("snapshots/{}", c.snapshotter),
                c.snapshot_key.clone(),
            ));
        }
        stack.extend(refs(&c.labels));
    }
    for (d, b) in &blobs {
        if b.labels.contains_key(LABEL_ROOT) {
            stack.push(("content".into(), d.clone()));
        }
    }
    for (node, info) in snaps {
        if info.labels.contains_key(LABEL_ROOT) {
            stack.push(node.clone());
        }
    }
    for (id, l) in m.db.scan::<LeaseRec>(&prefix(Kind::Lease, &[ns]))? {
        let exp = l
            .labels
            .get(LABEL_EXPIRE)
            .and_then(|v| leases::parse_expire(v).ok());
        if exp.is_some_and(|at| at <= now) {
            expired.push(key(Kind::Lease, &[ns, &id]));
            for (full, rk) in leases::resource_keys(m, ns, &id)? {
                expired.push(full);
                // An ingest started under the lease goes with it.
                if let Some(r) = rk.strip_prefix("ingests\0") {
                    expired.push(key(Kind::Ingest, &[ns, r]));
                }
            }
            continue;
        }
        let flat = l.labels.contains_key(LABEL_FLAT);
        for r in leases::resources(m, ns, &id)? {
            let node = (r.kind, r.id);
            if flat {
                marked.insert(node);
            } else {
                stack.push(node);
            }
        }
    }
    while let Some(node) = stack.pop() {
        if !marked.insert(node.clone()) {
            continue;
        }
        if node.0 == "content" {
            if let Some(b) = blobs.get(&node.1) {
                stack.extend(refs(&b.labels));
            }
        } else if let Some(info) = snaps.get(&node) {
            // A snapshot holds its parent and whatever its labels point at.
            if let Some(p) = &info.parent {
                if let Some((_, pk)) = snapshots::split_backend_key(p) {
                    stack.push((node.0.clone(), pk.to_string()));
                }
            }
            stack.extend(refs(&info.labels));
        }
    }
    Ok(marked)
}

/// Runs one full collection.
pub fn collect(m: &Meta) -> Result<Stats> {
    let mut stats = Stats::default();
    {
        let _w = m.db.write_lock();
        let now = now_nanos();
        let mut batch = Batch::default();
        let mut held: HashSet<String> = HashSet::new();
        let snaps = snapshot_index(m)?;
        let empty = HashMap::new();
        let mut doomed: Vec<(String, Node)> = Vec::new();
        let mut names: HashSet<String> = m.db.namespaces()?.into_iter().collect();
        names.extend(snaps.keys().cloned());
        for ns in names {
            let mut expired = Vec::new();
            let ns_snaps = snaps.get(&ns).unwrap_or(&empty);
            let marked = mark(m, &ns, now, ns_snaps, &mut expired)?;
            for node in ns_snaps.keys() {
                if !marked.contains(node) {
                    doomed.push((ns.clone(), node.clone()));
                }
            }
            stats.leases += expired.iter().filter(|k| k[0] == Kind::Lease as u8).count();
            for k in expired {
                batch.remove(k);
            }
            for (d, _) in m.db.scan::<BlobRec>(&prefix(Kind::Blob, &[&ns]))? {
                if marked.contains(&("content".to_string(), d.clone())) {
                    held.insert(d);
                } else {
                    batch.remove(key(Kind::Blob, &[&ns, &d]));
                    stats.blob_records += 1;
                }
            }
        }
        m.db.commit(batch)?;
        stats.snapshots = remove_snapshots(m, doomed);
        // Blobs are removed from disk under the lock too: a writer committing the same digest
        // right now would otherwise lose its file after recording it.
        for d in m.content.blobs()? {
            if !held.contains(&d.to_string()) && remove_blob(m, &d) {
                stats.blobs_on_disk += 1;
            }
        }
    }
    stats.ingests = sweep_ingests(m)?;
    cleanup_snapshotters(m);
    Ok(stats)
}

/// Removes unreachable snapshots, children before parents (a backend refuses a parent with
/// children). Returns how many went.
fn remove_snapshots(m: &Meta, doomed: Vec<(String, Node)>) -> usize {
    let mut left: Vec<(String, Node)> = doomed;
    let mut removed = 0;
    loop {
        let before = left.len();
        let mut still = Vec::new();
        for (ns, node) in left {
            let Some(sn) = node.0.strip_prefix("snapshots/") else {
                continue;
            };
            let Some(s) = m.snapshotters.get(sn) else {
                continue;
            };
            let bk = snapshots::backend_key(&ns, &node.1);
            match s.remove(&bk) {
                Ok(()) => removed += 1,
                Err(e) if e.is(berth_snapshotter::ErrorKind::NotFound) => {}
                Err(e) if e.is(berth_snapshotter::ErrorKind::FailedPrecondition) => {
                    still.push((ns, node))
                }
                Err(e) => tracing::warn!("gc: remove snapshot {bk:?}: {e}"),
            }
        }
        if still.is_empty() || still.len() == before {
            if !still.is_empty() {
                tracing::warn!(
                    "gc: {} snapshots kept: they still have children",
                    still.len()
                );
            }
            return removed;
        }
        left = still;
    }
}

/// Removes layer directories no snapshot record names: a crash between a snapshot's record
/// removal and its directory's leaves one behind (containerd's collector cleans up its
/// snapshotters the same way). Outside the metadata lock: the backends guard what they are
/// building themselves, and deleting a big tree must not stall every other mutation.
fn cleanup_snapshotters(m: &Meta) {
    for (name, s) in &m.snapshotters {
        if let Err(e) = s.cleanup() {
            tracing::warn!("gc: clean up snapshotter {name}: {e}");
        }
    }
}

fn remove_blob(m: &Meta, d: &Digest) -> bool {
    match m.content.delete(d) {
        Ok(()) => true,
        Err(e) if e.is(ErrKind::NotFound) => false,
        Err(e) => {
            tracing::warn!("gc: remove blob {d}: {e}");
            false
        }
    }
}

/// Ingests on disk that no namespace records any more (aborted by an expired lease, or left by a
/// crash between the two steps of an abort).
fn sweep_ingests(m: &Meta) -> Result<usize> {
    let _w = m.db.write_lock();
    let mut n = 0;
    for st in m.content.ingests()? {
        let Some((ns, r)) = st.reference.split_once('\0') else {
            continue;
        };
        if m.db.contains(&key(Kind::Ingest, &[ns, r]))? {
            continue;
        }
        if m.content.abort(&st.reference).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}
