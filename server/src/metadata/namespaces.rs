//! Namespaces: created explicitly or by the first write into them; deletable only when empty.

use berth_api::containerd::events::{NamespaceCreate, NamespaceDelete, NamespaceUpdate};

use super::{encode, key, prefix, Batch, Kind, Labels, NamespaceRec};
use crate::error::{Error, Result};
use crate::identifiers;
use crate::Meta;

pub const TOPIC_CREATE: &str = "/namespaces/create";
pub const TOPIC_UPDATE: &str = "/namespaces/update";
pub const TOPIC_DELETE: &str = "/namespaces/delete";

/// containerd answers Get of an unknown namespace with empty labels (dockerd depends on it).
pub fn get(m: &Meta, name: &str) -> Result<Labels> {
    identifiers::validate(name)?;
    Ok(m.db
        .get::<NamespaceRec>(&key(Kind::Namespace, &[name]))?
        .map(|r| r.labels)
        .unwrap_or_default())
}

pub fn list(m: &Meta) -> Result<Vec<(String, Labels)>> {
    Ok(m.db
        .scan::<NamespaceRec>(&[Kind::Namespace as u8, 0])?
        .into_iter()
        .map(|(n, r)| (n, r.labels))
        .collect())
}

pub fn create(m: &Meta, name: &str, labels: Labels) -> Result<Labels> {
    identifiers::validate(name)?;
    identifiers::validate_labels(&labels)?;
    {
        let _w = m.db.write_lock();
        let k = key(Kind::Namespace, &[name]);
        if m.db.contains(&k)? {
            return Err(Error::exists(format!("namespace {name:?}: already exists")));
        }
        let mut b = Batch::default();
        b.insert(
            k,
            encode(&NamespaceRec {
                labels: labels.clone(),
            }),
        );
        m.db.commit(b)?;
    }
    m.events.publish(
        name,
        TOPIC_CREATE,
        &NamespaceCreate {
            name: name.to_string(),
            labels: labels.clone(),
        },
    );
    Ok(labels)
}

/// Only label paths can be updated; an empty mask replaces all labels.
pub fn update(m: &Meta, name: &str, labels: Labels, paths: &[String]) -> Result<Labels> {
    identifiers::validate(name)?;
    identifiers::validate_labels(&labels)?;
    let updated = {
        let _w = m.db.write_lock();
        let k = key(Kind::Namespace, &[name]);
        let mut rec = m.db.get::<NamespaceRec>(&k)?.unwrap_or_default();
        if paths.is_empty() {
            rec.labels = labels;
        } else {
            for p in paths {
                match p.strip_prefix("labels.") {
                    Some(lk) => super::set_or_remove(&mut rec.labels, lk, labels.get(lk)),
                    None if p == "labels" => rec.labels = labels.clone(),
                    None => {
                        return Err(Error::invalid(format!(
                            "cannot update {p:?} field on namespace {name:?}"
                        )))
                    }
                }
            }
        }
        let mut b = Batch::default();
        b.insert(k, encode(&rec));
        m.db.commit(b)?;
        rec.labels
    };
    m.events.publish(
        name,
        TOPIC_UPDATE,
        &NamespaceUpdate {
            name: name.to_string(),
            labels: updated.clone(),
        },
    );
    Ok(updated)
}

pub fn delete(m: &Meta, name: &str) -> Result<()> {
    identifiers::validate(name)?;
    {
        let _w = m.db.write_lock();
        let k = key(Kind::Namespace, &[name]);
        if !m.db.contains(&k)? {
            return Err(Error::not_found(format!("namespace {name:?}: not found")));
        }
        let mut remaining: Vec<String> = Vec::new();
        for (kind, what) in [
            (Kind::Image, "images"),
            (Kind::Blob, "blobs"),
            (Kind::Container, "containers"),
            (Kind::Lease, "leases"),
            (Kind::Ingest, "ingests"),
        ] {
            if m.db.any_under(&prefix(kind, &[name]))? {
                remaining.push(what.to_string());
            }
        }
        for sn in super::snapshots::backends_holding(m, name)? {
            remaining.push(format!("snapshots on {sn:?} snapshotter"));
        }
        if !remaining.is_empty() {
            return Err(Error::precondition(format!(
                "namespace {name:?} must be empty, but it still has {}",
                remaining.join(", ")
            )));
        }
        let mut b = Batch::default();
        b.remove(k);
        m.db.commit(b)?;
    }
    m.events.publish(
        name,
        TOPIC_DELETE,
        &NamespaceDelete {
            name: name.to_string(),
        },
    );
    Ok(())
}
