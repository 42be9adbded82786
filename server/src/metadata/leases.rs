//! Leases: client-held roots for garbage collection. Content, ingests and (later) snapshots written
//! under a lease, or added to it, live at least as long as the lease.

use super::{check_key_part, encode, key, now_nanos, prefix, Batch, Kind, Labels, LeaseRec};
use crate::content::Digest;
use crate::error::{Error, Result};
use crate::filters::{label_field, Adaptor, Filter};
use crate::identifiers;
use crate::Meta;

/// The label that makes a lease expire; its value is an RFC 3339 time.
pub const LABEL_EXPIRE: &str = "containerd.io/gc.expire";
/// A flat lease holds its resources but not what their gc references point at.
pub const LABEL_FLAT: &str = "containerd.io/gc.flat";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Resource {
    pub id: String,
    pub kind: String,
}

impl Adaptor for LeaseRec {
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("id", []) => Some(self.id.clone()),
            ("labels", rest) => label_field(&self.labels, rest),
            _ => None,
        }
    }
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("lease {id:?}: not found"))
}

/// Checks a resource's type and id the way containerd parses them.
pub fn validate_resource(r: &Resource) -> Result<()> {
    check_key_part("resource id", &r.id)?;
    check_key_part("resource type", &r.kind)?;
    if r.id.is_empty() {
        return Err(Error::invalid("resource id must not be empty"));
    }
    match r.kind.as_str() {
        "content" => {
            Digest::parse(&r.id)?;
        }
        "ingests" => {}
        t => match t.strip_prefix("snapshots/") {
            Some(s) if !s.is_empty() && !s.contains('/') => {}
            _ => {
                return Err(Error::invalid(format!(
                    "resource type {t:?}: unsupported (content, ingests or snapshots/<snapshotter>)"
                )))
            }
        },
    }
    Ok(())
}

/// An empty id gets a generated one, as containerd's lease service does (`ctr leases create`
/// sends none).
pub fn create(m: &Meta, ns: &str, id: &str, labels: Labels) -> Result<LeaseRec> {
    let id = if id.is_empty() {
        generate_id()
    } else {
        id.to_string()
    };
    identifiers::validate_lease_id(&id)?;
    identifiers::validate_labels(&labels)?;
    if let Some(v) = labels.get(LABEL_EXPIRE) {
        parse_expire(v)?;
    }
    let _w = m.db.write_lock();
    let k = key(Kind::Lease, &[ns, &id]);
    if m.db.contains(&k)? {
        return Err(Error::exists(format!("lease {id:?}: already exists")));
    }
    let rec = LeaseRec {
        id,
        labels,
        created_at: now_nanos(),
    };
    let mut b = Batch::default();
    m.db.ensure_namespace(&mut b, ns)?;
    b.insert(k, encode(&rec));
    m.db.commit(b)?;
    Ok(rec)
}

fn generate_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", now_nanos(), &u[..12])
}

/// Parses `containerd.io/gc.expire` into unix nanos.
pub fn parse_expire(v: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map_err(|e| Error::invalid(format!("lease label {LABEL_EXPIRE} {v:?}: {e}")))?
        .timestamp_nanos_opt()
        .ok_or_else(|| Error::invalid(format!("lease label {LABEL_EXPIRE} {v:?}: out of range")))
}

pub fn get(m: &Meta, ns: &str, id: &str) -> Result<LeaseRec> {
    m.db.get(&key(Kind::Lease, &[ns, id]))?
        .ok_or_else(|| not_found(id))
}

pub fn list(m: &Meta, ns: &str, filter: &Filter) -> Result<Vec<LeaseRec>> {
    Ok(m.db
        .scan::<LeaseRec>(&prefix(Kind::Lease, &[ns]))?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| filter.matches(r))
        .collect())
}

/// Removes the lease and its resource records; what they held goes with the next collection.
pub fn delete(m: &Meta, ns: &str, id: &str, sync: bool) -> Result<()> {
    {
        let _w = m.db.write_lock();
        let k = key(Kind::Lease, &[ns, id]);
        if !m.db.contains(&k)? {
            return Err(not_found(id));
        }
        let mut b = Batch::default();
        b.remove(k);
        for (full, _) in resource_keys(m, ns, id)? {
            b.remove(full);
        }
        m.db.commit(b)?;
    }
    m.gc.after_delete(m, sync)
}

/// The lease's resource records: each full key with its `<type>\0<id>` part.
pub fn resource_keys(m: &Meta, ns: &str, lease: &str) -> Result<Vec<(Vec<u8>, String)>> {
    let p = prefix(Kind::LeaseResource, &[ns, lease]);
    Ok(m.db
        .keys(&p)?
        .into_iter()
        .map(|rest| {
            let mut full = p.clone();
            full.extend_from_slice(rest.as_bytes());
            (full, rest)
        })
        .collect())
}

fn resource_key(ns: &str, lease: &str, r: &Resource) -> Vec<u8> {
    key(Kind::LeaseResource, &[ns, lease, &r.kind, &r.id])
}

/// Adds `r` to the lease inside a caller's batch (content commits and ingests under the
/// `containerd-lease` header use this); the lease must exist.
pub fn add_to_batch(m: &Meta, b: &mut Batch, ns: &str, lease: &str, r: &Resource) -> Result<()> {
    if !m.db.contains(&key(Kind::Lease, &[ns, lease]))? {
        return Err(not_found(lease));
    }
    b.insert(resource_key(ns, lease, r), Vec::<u8>::new());
    Ok(())
}

pub fn add_resource(m: &Meta, ns: &str, lease: &str, r: &Resource) -> Result<()> {
    validate_resource(r)?;
    let _w = m.db.write_lock();
    let mut b = Batch::default();
    add_to_batch(m, &mut b, ns, lease, r)?;
    m.db.commit(b)
}

pub fn delete_resource(m: &Meta, ns: &str, lease: &str, r: &Resource) -> Result<()> {
    validate_resource(r)?;
    {
        let _w = m.db.write_lock();
        if !m.db.contains(&key(Kind::Lease, &[ns, lease]))? {
            return Err(not_found(lease));
        }
        let mut b = Batch::default();
        b.remove(resource_key(ns, lease, r));
        m.db.commit(b)?;
    }
    m.gc.after_delete(m, false)
}

pub fn resources(m: &Meta, ns: &str, lease: &str) -> Result<Vec<Resource>> {
    if !m.db.contains(&key(Kind::Lease, &[ns, lease]))? {
        return Err(not_found(lease));
    }
    Ok(resource_keys(m, ns, lease)?
        .into_iter()
        .filter_map(|(_, rest)| {
            let (kind, id) = rest.split_once('\0')?;
            Some(Resource {
                id: id.to_string(),
                kind: kind.to_string(),
            })
        })
        .collect())
}
