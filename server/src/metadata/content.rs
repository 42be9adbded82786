//! Each namespace's view of the content store: which blobs it holds (with labels), its ingests,
//! and the lease bookkeeping of writes. The bytes themselves live in [`crate::content`].

use berth_api::containerd::events::ContentDelete;

use super::leases::{self, Resource};
use super::{
    check_key_part, encode, key, now_nanos, prefix, set_or_remove, Batch, BlobRec, IngestRec, Kind,
    Labels,
};
use crate::content::{Digest, IngestStatus, Writer};
use crate::error::{Error, Kind as ErrKind, Result};
use crate::filters::{label_field, Adaptor, Filter};
use crate::identifiers;
use crate::Meta;

pub const TOPIC_DELETE: &str = "/content/delete";

impl Adaptor for BlobRec {
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("digest", []) => Some(self.digest.clone()),
            ("size", []) => Some(self.size.to_string()),
            ("labels", rest) => label_field(&self.labels, rest),
            _ => None,
        }
    }
}

impl Adaptor for IngestStatus {
    fn field(&self, path: &[String]) -> Option<String> {
        match path {
            [f] if f == "ref" => Some(self.reference.clone()),
            [f] if f == "expected" => self.expected.as_ref().map(|d| d.to_string()),
            _ => None,
        }
    }
}

fn not_found(d: &Digest) -> Error {
    Error::not_found(format!("content {d}: not found"))
}

/// The content store's ref for a namespace's ingest: namespaces never share an ingest.
fn backend_ref(ns: &str, r: &str) -> String {
    format!("{ns}\0{r}")
}

pub fn info(m: &Meta, ns: &str, d: &Digest) -> Result<BlobRec> {
    m.db.get(&key(Kind::Blob, &[ns, d.as_str()]))?
        .ok_or_else(|| not_found(d))
}

pub fn list(m: &Meta, ns: &str, filter: &Filter) -> Result<Vec<BlobRec>> {
    Ok(m.db
        .scan::<BlobRec>(&prefix(Kind::Blob, &[ns]))?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| filter.matches(r))
        .collect())
}

/// Only labels can change: `labels` or `labels.<k>`; an empty mask replaces all labels.
pub fn update(m: &Meta, ns: &str, d: &Digest, labels: Labels, paths: &[String]) -> Result<BlobRec> {
    identifiers::validate_labels(&labels)?;
    let _w = m.db.write_lock();
    let k = key(Kind::Blob, &[ns, d.as_str()]);
    let mut rec: BlobRec = m.db.get(&k)?.ok_or_else(|| not_found(d))?;
    if paths.is_empty() {
        rec.labels = labels;
    } else {
        for p in paths {
            if let Some(lk) = p.strip_prefix("labels.") {
                set_or_remove(&mut rec.labels, lk, labels.get(lk));
            } else if p == "labels" {
                rec.labels = labels.clone();
            } else {
                return Err(Error::invalid(format!(
                    "cannot update {p:?} field on content info {d}"
                )));
            }
        }
    }
    identifiers::validate_labels(&rec.labels)?;
    rec.updated_at = now_nanos();
    let mut b = Batch::default();
    b.insert(k, encode(&rec));
    m.db.commit(b)?;
    Ok(rec)
}

/// Removes the namespace's record; the blob leaves the disk with the collection that follows,
/// once no namespace holds it.
pub fn delete(m: &Meta, ns: &str, d: &Digest) -> Result<()> {
    {
        let _w = m.db.write_lock();
        let k = key(Kind::Blob, &[ns, d.as_str()]);
        if !m.db.contains(&k)? {
            return Err(not_found(d));
        }
        let mut b = Batch::default();
        b.remove(k);
        m.db.commit(b)?;
    }
    m.events.publish(
        ns,
        TOPIC_DELETE,
        &ContentDelete {
            digest: d.to_string(),
        },
    );
    m.gc.after_delete(m, false)
}

/// A blob the namespace holds, opened for streaming reads.
pub fn open(m: &Meta, ns: &str, d: &Digest) -> Result<(BlobRec, std::fs::File)> {
    let rec = info(m, ns, d)?;
    Ok((rec, m.content.open_blob(d)?))
}

fn ingest_key(ns: &str, r: &str) -> Vec<u8> {
    key(Kind::Ingest, &[ns, r])
}

fn check_ref(r: &str) -> Result<()> {
    if r.is_empty() {
        return Err(Error::invalid("ref must not be empty"));
    }
    check_key_part("ref", r)
}

pub fn status(m: &Meta, ns: &str, r: &str) -> Result<IngestStatus> {
    check_ref(r)?;
    if !m.db.contains(&ingest_key(ns, r))? {
        return Err(Error::not_found(format!("ingest {r:?}: not found")));
    }
    let mut st = m.content.status(&backend_ref(ns, r))?;
    st.reference = r.to_string();
    Ok(st)
}

pub fn statuses(m: &Meta, ns: &str, filter: &Filter) -> Result<Vec<IngestStatus>> {
    let mut out = Vec::new();
    for r in m.db.keys(&prefix(Kind::Ingest, &[ns]))? {
        match m.content.status(&backend_ref(ns, &r)) {
            Ok(mut st) => {
                st.reference = r;
                if filter.matches(&st) {
                    out.push(st);
                }
            }
            Err(e) if e.is(ErrKind::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

pub fn abort(m: &Meta, ns: &str, r: &str) -> Result<()> {
    check_ref(r)?;
    let _w = m.db.write_lock();
    let k = ingest_key(ns, r);
    if !m.db.contains(&k)? {
        return Err(Error::not_found(format!("ingest {r:?}: not found")));
    }
    match m.content.abort(&backend_ref(ns, r)) {
        Ok(()) => {}
        Err(e) if e.is(ErrKind::NotFound) => {}
        Err(e) => return Err(e),
    }
    let mut b = Batch::default();
    b.remove(k);
    m.db.commit(b)
}

/// An ingest opened in a namespace, optionally under a lease.
pub struct NsWriter {
    pub inner: Writer,
    ns: String,
    reference: String,
    lease: Option<String>,
}

/// Makes a blob that is already on disk (written in another namespace) visible in `ns`.
fn adopt(m: &Meta, ns: &str, d: &Digest, lease: Option<&str>, labels: Labels) -> Result<()> {
    let size = m.content.size(d)? as i64;
    let now = now_nanos();
    let mut b = Batch::default();
    m.db.ensure_namespace(&mut b, ns)?;
    if let Some(l) = lease {
        let res = Resource {
            id: d.to_string(),
            kind: "content".into(),
        };
        leases::add_to_batch(m, &mut b, ns, l, &res)?;
    }
    let rec = BlobRec {
        digest: d.to_string(),
        size,
        labels,
        created_at: now,
        updated_at: now,
    };
    b.insert(key(Kind::Blob, &[ns, d.as_str()]), encode(&rec));
    m.db.commit(b)
}

fn exists_err(d: &Digest) -> Error {
    Error::exists(format!("content {d}: already exists"))
}

/// Opens (or resumes) the ingest `r`. When the expected blob is already there the answer is
/// AlreadyExists, which clients treat as done.
pub fn writer(
    m: &Meta,
    ns: &str,
    r: &str,
    total: i64,
    expected: Option<Digest>,
    lease: Option<&str>,
) -> Result<NsWriter> {
    check_ref(r)?;
    let _w = m.db.write_lock();
    if let Some(d) = &expected {
        if m.db.contains(&key(Kind::Blob, &[ns, d.as_str()]))? {
            return Err(exists_err(d));
        }
        if m.content.exists(d) {
            adopt(m, ns, d, lease, Labels::new())?;
            return Err(exists_err(d));
        }
    }
    let k = ingest_key(ns, r);
    let mut b = Batch::default();
    let mut dirty = false;
    if !m.db.contains(&k)? {
        m.db.ensure_namespace(&mut b, ns)?;
        let rec = IngestRec {
            expected: expected.as_ref().map(|d| d.to_string()).unwrap_or_default(),
            created_at: now_nanos(),
            expires_at: 0,
        };
        b.insert(k, encode(&rec));
        dirty = true;
    }
    if let Some(l) = lease {
        let res = Resource {
            id: r.to_string(),
            kind: "ingests".into(),
        };
        leases::add_to_batch(m, &mut b, ns, l, &res)?;
        dirty = true;
    }
    let inner = m.content.writer(&backend_ref(ns, r), total, expected)?;
    if dirty {
        m.db.commit(b)?;
    }
    Ok(NsWriter {
        inner,
        ns: ns.to_string(),
        reference: r.to_string(),
        lease: lease.map(str::to_string),
    })
}

impl NsWriter {
    pub fn reference(&self) -> &str {
        &self.reference
    }

    pub fn status(&self) -> IngestStatus {
        let mut st = self.inner.status();
        st.reference = self.reference.clone();
        st
    }

    /// Verifies and commits the blob, then records it in the namespace (and the lease) in one
    /// batch. The writer lock covers both, so a collection can never see the blob unrecorded.
    pub fn commit(
        self,
        m: &Meta,
        size: i64,
        expected: Option<Digest>,
        labels: Labels,
    ) -> Result<Digest> {
        identifiers::validate_labels(&labels)?;
        let _w = m.db.write_lock();
        let ns = self.ns.clone();
        let r = self.reference.clone();
        let lease = self.lease.clone();
        // The store checks size and digest before it finds the blob already there, so on
        // AlreadyExists the bytes written are that blob: record it in this namespace all the same.
        let written = self.inner.digest();
        let d = match self.inner.commit(size, expected) {
            Ok(d) => d,
            Err(e) if e.is(ErrKind::AlreadyExists) => written,
            Err(e) => return Err(e),
        };
        let bk = key(Kind::Blob, &[&ns, d.as_str()]);
        let already = m.db.contains(&bk)?;
        let mut b = Batch::default();
        b.remove(ingest_key(&ns, &r));
        if let Some(l) = &lease {
            let res = Resource {
                id: d.to_string(),
                kind: "content".into(),
            };
            leases::add_to_batch(m, &mut b, &ns, l, &res)?;
            b.remove(key(Kind::LeaseResource, &[&ns, l, "ingests", &r]));
        }
        if !already {
            let now = now_nanos();
            let size = m.content.size(&d)? as i64;
            let rec = BlobRec {
                digest: d.to_string(),
                size,
                labels,
                created_at: now,
                updated_at: now,
            };
            m.db.ensure_namespace(&mut b, &ns)?;
            b.insert(bk, encode(&rec));
        }
        m.db.commit(b)?;
        if already {
            return Err(exists_err(&d));
        }
        // No /content/create event: containerd 1.6 has none, and its ctr cannot decode 2.x's.
        Ok(d)
    }
}
