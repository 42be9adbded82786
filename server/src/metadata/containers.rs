//! Container records: what to run (spec, runtime, snapshot), not the running task.

use berth_api::containerd::events::{
    container_create, ContainerCreate, ContainerDelete, ContainerUpdate,
};

use super::{encode, key, now_nanos, prefix, set_or_remove, Batch, ContainerRec, Kind};
use crate::error::{Error, Result};
use crate::filters::{label_field, Adaptor, Filter};
use crate::identifiers;
use crate::Meta;

pub const TOPIC_CREATE: &str = "/containers/create";
pub const TOPIC_UPDATE: &str = "/containers/update";
pub const TOPIC_DELETE: &str = "/containers/delete";

impl Adaptor for ContainerRec {
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("id", []) => Some(self.id.clone()),
            ("image", []) => Some(self.image.clone()),
            ("snapshotter", []) => Some(self.snapshotter.clone()),
            ("snapshotkey", []) | ("snapshot_key", []) => Some(self.snapshot_key.clone()),
            ("sandbox", []) => Some(self.sandbox.clone()),
            ("runtime", [f]) if f == "name" => Some(self.runtime_name.clone()),
            ("labels", rest) => label_field(&self.labels, rest),
            _ => None,
        }
    }
}

fn validate(c: &ContainerRec) -> Result<()> {
    identifiers::validate(&c.id)?;
    identifiers::validate_labels(&c.labels)?;
    if c.extensions.keys().any(|k| k.is_empty()) {
        return Err(Error::invalid(format!(
            "container {:?}: extension keys must not be empty",
            c.id
        )));
    }
    if c.runtime_name.is_empty() {
        return Err(Error::invalid(format!(
            "container {:?}: must specify a runtime name",
            c.id
        )));
    }
    if c.spec.is_none() {
        return Err(Error::invalid(format!(
            "container {:?}: must specify a spec",
            c.id
        )));
    }
    if !c.snapshot_key.is_empty() && c.snapshotter.is_empty() {
        return Err(Error::invalid(format!(
            "container {:?}: must set snapshotter when using a snapshot key",
            c.id
        )));
    }
    Ok(())
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("container {id:?}: not found"))
}

pub fn get(m: &Meta, ns: &str, id: &str) -> Result<ContainerRec> {
    identifiers::validate(id)?;
    m.db.get(&key(Kind::Container, &[ns, id]))?
        .ok_or_else(|| not_found(id))
}

pub fn list(m: &Meta, ns: &str, filter: &Filter) -> Result<Vec<ContainerRec>> {
    Ok(m.db
        .scan::<ContainerRec>(&prefix(Kind::Container, &[ns]))?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| filter.matches(r))
        .collect())
}

pub fn create(m: &Meta, ns: &str, mut c: ContainerRec) -> Result<ContainerRec> {
    validate(&c)?;
    {
        let _w = m.db.write_lock();
        let k = key(Kind::Container, &[ns, &c.id]);
        if m.db.contains(&k)? {
            return Err(Error::exists(format!(
                "container {:?}: already exists",
                c.id
            )));
        }
        let now = now_nanos();
        c.created_at = now;
        c.updated_at = now;
        let mut b = Batch::default();
        m.db.ensure_namespace(&mut b, ns)?;
        b.insert(k, encode(&c));
        m.db.commit(b)?;
    }
    m.events.publish(
        ns,
        TOPIC_CREATE,
        &ContainerCreate {
            id: c.id.clone(),
            image: c.image.clone(),
            runtime: Some(container_create::Runtime {
                name: c.runtime_name.clone(),
                options: c.runtime_options.clone(),
            }),
        },
    );
    Ok(c)
}

/// Field paths: `labels[.k]`, `extensions[.k]`, `spec`, `image`, `snapshotkey`; the runtime and the
/// snapshotter are fixed at creation. An empty mask replaces every mutable field.
pub fn update(m: &Meta, ns: &str, c: ContainerRec, paths: &[String]) -> Result<ContainerRec> {
    identifiers::validate(&c.id)?;
    let updated = {
        let _w = m.db.write_lock();
        let k = key(Kind::Container, &[ns, &c.id]);
        let mut cur: ContainerRec = m.db.get(&k)?.ok_or_else(|| not_found(&c.id))?;
        if paths.is_empty() {
            if c.runtime_name != cur.runtime_name {
                return Err(immutable(&c.id, "runtime"));
            }
            if c.snapshotter != cur.snapshotter {
                return Err(immutable(&c.id, "snapshotter"));
            }
            let created = cur.created_at;
            cur = c.clone();
            cur.created_at = created;
        } else {
            for p in paths {
                apply_path(&mut cur, &c, p)?;
            }
        }
        validate(&cur)?;
        cur.updated_at = now_nanos();
        let mut b = Batch::default();
        b.insert(k, encode(&cur));
        m.db.commit(b)?;
        cur
    };
    m.events.publish(
        ns,
        TOPIC_UPDATE,
        &ContainerUpdate {
            id: updated.id.clone(),
            image: updated.image.clone(),
            labels: updated.labels.clone(),
            snapshot_key: updated.snapshot_key.clone(),
        },
    );
    Ok(updated)
}

fn immutable(id: &str, field: &str) -> Error {
    Error::invalid(format!("container {id:?}: {field} field is immutable"))
}

fn apply_path(cur: &mut ContainerRec, c: &ContainerRec, p: &str) -> Result<()> {
    if let Some(k) = p.strip_prefix("labels.") {
        set_or_remove(&mut cur.labels, k, c.labels.get(k));
        return Ok(());
    }
    if let Some(k) = p.strip_prefix("extensions.") {
        match c.extensions.get(k) {
            Some(v) => {
                cur.extensions.insert(k.to_string(), v.clone());
            }
            None => {
                cur.extensions.remove(k);
            }
        }
        return Ok(());
    }
    match p {
        "labels" => cur.labels = c.labels.clone(),
        "extensions" => cur.extensions = c.extensions.clone(),
        "spec" => cur.spec = c.spec.clone(),
        "image" => cur.image = c.image.clone(),
        "snapshotkey" => cur.snapshot_key = c.snapshot_key.clone(),
        "runtime" => return Err(immutable(&c.id, "runtime")),
        "snapshotter" => return Err(immutable(&c.id, "snapshotter")),
        _ => {
            return Err(Error::invalid(format!(
                "cannot update {p:?} field on container {:?}",
                c.id
            )))
        }
    }
    Ok(())
}

pub fn delete(m: &Meta, ns: &str, id: &str) -> Result<()> {
    identifiers::validate(id)?;
    {
        let _w = m.db.write_lock();
        let k = key(Kind::Container, &[ns, id]);
        if !m.db.contains(&k)? {
            return Err(not_found(id));
        }
        let mut b = Batch::default();
        b.remove(k);
        m.db.commit(b)?;
    }
    m.events
        .publish(ns, TOPIC_DELETE, &ContainerDelete { id: id.to_string() });
    m.gc.after_delete(m, false)
}
