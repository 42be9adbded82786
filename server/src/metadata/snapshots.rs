//! Namespaced snapshots over the snapshotter backends. A namespace's key `k` is the backend key
//! `<ns>/k`: namespaces are identifiers (no `/`), so two namespaces never share a backend key.
//! The backends keep their own records; this layer adds the namespace view, lease references
//! and events. Mutations hold the metadata writer lock so a collection never sees a snapshot
//! before its lease reference.

use std::sync::Arc;

use berth_api::containerd::events::{SnapshotCommit, SnapshotPrepare, SnapshotRemove};
use berth_snapshotter::{Info, Labels, Mount, Snapshotter, Usage};

use super::leases::{self, Resource};
use super::{check_key_part, set_or_remove, Batch};
use crate::error::{Error, Result};
use crate::filters::{label_field, Adaptor, Filter};
use crate::identifiers;
use crate::Meta;

pub const TOPIC_PREPARE: &str = "/snapshot/prepare";
pub const TOPIC_COMMIT: &str = "/snapshot/commit";
pub const TOPIC_REMOVE: &str = "/snapshot/remove";

/// A snapshot as its namespace sees it.
pub struct NsInfo(pub Info);

impl Adaptor for NsInfo {
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("kind", []) => Some(self.0.kind.as_str().to_string()),
            ("name", []) => Some(self.0.name.clone()),
            ("parent", []) => Some(self.0.parent.clone().unwrap_or_default()),
            ("labels", rest) => label_field(&self.0.labels, rest),
            _ => None,
        }
    }
}

pub fn backend_key(ns: &str, key: &str) -> String {
    format!("{ns}/{key}")
}

/// The namespace and key of a backend key.
pub fn split_backend_key(k: &str) -> Option<(&str, &str)> {
    k.split_once('/')
}

/// A backend's error as the namespace sees it: backends name snapshots by backend key
/// (`"ns/key"`), which is an internal detail, so the namespace prefix is taken out of the
/// message; one that does not name the snapshot gets it in front.
fn backend_error(ns: &str, key: &str, e: berth_snapshotter::Error) -> Error {
    let mut e = Error::from(e);
    e.msg = e.msg.replace(&format!("\"{ns}/"), "\"");
    let named = format!("{key:?}");
    if e.msg.contains(&named) {
        e
    } else {
        e.context(format!("snapshot {named}"))
    }
}

fn check_key(what: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid(format!("snapshot {what} must not be empty")));
    }
    check_key_part(what, key)
}

pub fn snapshotter(m: &Meta, name: &str) -> Result<Arc<dyn Snapshotter>> {
    let name = if name.is_empty() { "overlayfs" } else { name };
    m.snapshotters
        .get(name)
        .cloned()
        .ok_or_else(|| Error::invalid(format!("snapshotter {name:?}: not loaded")))
}

/// Strips the namespace from a backend record.
fn ns_view(ns: &str, mut i: Info) -> Info {
    let p = format!("{ns}/");
    if let Some(n) = i.name.strip_prefix(&p) {
        i.name = n.to_string();
    }
    i.parent = i
        .parent
        .map(|x| x.strip_prefix(&p).map(str::to_string).unwrap_or(x));
    i
}

fn lease_resource(sn: &str, key: &str) -> Resource {
    Resource {
        id: key.to_string(),
        kind: format!("snapshots/{sn}"),
    }
}

/// Records `key` under the caller's lease, in its own batch after the backend change: if the
/// daemon dies in between, the snapshot is unreferenced and the next collection removes it.
fn add_to_lease(m: &Meta, ns: &str, lease: Option<&str>, sn: &str, key: &str) -> Result<()> {
    let mut b = Batch::default();
    m.db.ensure_namespace(&mut b, ns)?;
    if let Some(l) = lease {
        leases::add_to_batch(m, &mut b, ns, l, &lease_resource(sn, key))?;
    }
    m.db.commit(b)
}

fn check_lease(m: &Meta, ns: &str, lease: Option<&str>) -> Result<()> {
    if let Some(l) = lease {
        leases::get(m, ns, l)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn create(
    m: &Meta,
    ns: &str,
    sn: &str,
    key: &str,
    parent: &str,
    labels: Labels,
    lease: Option<&str>,
    view: bool,
) -> Result<Vec<Mount>> {
    check_key("key", key)?;
    if !parent.is_empty() {
        check_key_part("parent", parent)?;
    }
    identifiers::validate_labels(&labels)?;
    let s = snapshotter(m, sn)?;
    let mounts = {
        let _w = m.db.write_lock();
        check_lease(m, ns, lease)?;
        let bk = backend_key(ns, key);
        let bp = (!parent.is_empty()).then(|| backend_key(ns, parent));
        let mounts = if view {
            s.view(&bk, bp.as_deref(), labels)
        } else {
            s.prepare(&bk, bp.as_deref(), labels)
        }
        .map_err(|e| backend_error(ns, key, e))?;
        add_to_lease(m, ns, lease, s.name(), key)?;
        mounts
    };
    m.events.publish(
        ns,
        TOPIC_PREPARE,
        &SnapshotPrepare {
            key: key.into(),
            parent: parent.into(),
            snapshotter: s.name().into(),
        },
    );
    Ok(mounts)
}

#[allow(clippy::too_many_arguments)]
pub fn prepare(
    m: &Meta,
    ns: &str,
    sn: &str,
    key: &str,
    parent: &str,
    labels: Labels,
    lease: Option<&str>,
) -> Result<Vec<Mount>> {
    create(m, ns, sn, key, parent, labels, lease, false)
}

#[allow(clippy::too_many_arguments)]
pub fn view(
    m: &Meta,
    ns: &str,
    sn: &str,
    key: &str,
    parent: &str,
    labels: Labels,
    lease: Option<&str>,
) -> Result<Vec<Mount>> {
    create(m, ns, sn, key, parent, labels, lease, true)
}

pub fn mounts(m: &Meta, ns: &str, sn: &str, key: &str) -> Result<Vec<Mount>> {
    check_key("key", key)?;
    snapshotter(m, sn)?
        .mounts(&backend_key(ns, key))
        .map_err(|e| backend_error(ns, key, e))
}

pub fn commit(
    m: &Meta,
    ns: &str,
    sn: &str,
    name: &str,
    key: &str,
    labels: Labels,
    lease: Option<&str>,
) -> Result<()> {
    check_key("name", name)?;
    check_key("key", key)?;
    identifiers::validate_labels(&labels)?;
    let s = snapshotter(m, sn)?;
    {
        let _w = m.db.write_lock();
        check_lease(m, ns, lease)?;
        s.commit(&backend_key(ns, name), &backend_key(ns, key), labels)
            .map_err(|e| backend_error(ns, key, e))?;
        add_to_lease(m, ns, lease, s.name(), name)?;
    }
    m.events.publish(
        ns,
        TOPIC_COMMIT,
        &SnapshotCommit {
            key: key.into(),
            name: name.into(),
            snapshotter: s.name().into(),
        },
    );
    Ok(())
}

pub fn remove(m: &Meta, ns: &str, sn: &str, key: &str) -> Result<()> {
    check_key("key", key)?;
    let s = snapshotter(m, sn)?;
    {
        let _w = m.db.write_lock();
        s.remove(&backend_key(ns, key))
            .map_err(|e| backend_error(ns, key, e))?;
    }
    m.events.publish(
        ns,
        TOPIC_REMOVE,
        &SnapshotRemove {
            key: key.into(),
            snapshotter: s.name().into(),
        },
    );
    // The layer's tree goes with the collector's cleanup, soon after.
    m.gc.after_delete(m, false)
}

pub fn stat(m: &Meta, ns: &str, sn: &str, key: &str) -> Result<Info> {
    check_key("key", key)?;
    let i = snapshotter(m, sn)?
        .stat(&backend_key(ns, key))
        .map_err(|e| backend_error(ns, key, e))?;
    Ok(ns_view(ns, i))
}

/// Labels only: `labels` or `labels.<k>`; an empty mask replaces them all.
pub fn update(
    m: &Meta,
    ns: &str,
    sn: &str,
    key: &str,
    labels: Labels,
    paths: &[String],
) -> Result<Info> {
    check_key("key", key)?;
    identifiers::validate_labels(&labels)?;
    let s = snapshotter(m, sn)?;
    let bk = backend_key(ns, key);
    let cur = s.stat(&bk).map_err(|e| backend_error(ns, key, e))?;
    let mut next = cur.labels.clone();
    if paths.is_empty() {
        next = labels;
    } else {
        for p in paths {
            if let Some(k) = p.strip_prefix("labels.") {
                set_or_remove(&mut next, k, labels.get(k));
            } else if p == "labels" {
                next = labels.clone();
            } else {
                return Err(Error::invalid(format!(
                    "cannot update {p:?} field on snapshot {key:?}"
                )));
            }
        }
    }
    identifiers::validate_labels(&next)?;
    let _w = m.db.write_lock();
    let i = s
        .update(&bk, next, &[])
        .map_err(|e| backend_error(ns, key, e))?;
    Ok(ns_view(ns, i))
}

pub fn usage(m: &Meta, ns: &str, sn: &str, key: &str) -> Result<Usage> {
    check_key("key", key)?;
    snapshotter(m, sn)?
        .usage(&backend_key(ns, key))
        .map_err(|e| backend_error(ns, key, e))
}

/// The namespace's snapshots in one backend.
pub fn list(m: &Meta, ns: &str, sn: &str, filter: &Filter) -> Result<Vec<Info>> {
    let p = format!("{ns}/");
    Ok(snapshotter(m, sn)?
        .list()?
        .into_iter()
        .filter(|i| i.name.starts_with(&p))
        .map(|i| NsInfo(ns_view(ns, i)))
        .filter(|i| filter.matches(i))
        .map(|i| i.0)
        .collect())
}

pub fn cleanup(m: &Meta, sn: &str) -> Result<()> {
    let s = snapshotter(m, sn)?;
    let _w = m.db.write_lock();
    Ok(s.cleanup()?)
}

/// Whether the namespace has snapshots in any backend (namespace delete), naming the backends.
pub fn backends_holding(m: &Meta, ns: &str) -> Result<Vec<String>> {
    let p = format!("{ns}/");
    let mut out = Vec::new();
    for (name, s) in &m.snapshotters {
        if s.list()?.iter().any(|i| i.name.starts_with(&p)) {
            out.push(name.clone());
        }
    }
    out.sort();
    Ok(out)
}
