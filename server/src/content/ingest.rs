//! The on-disk form of an ingest and the in-memory ref locks.
//!
//! An ingest lives in `ingest/<hex(sha256(ref))>/` so the ref, which is client text, never becomes
//! a path. Inside: `data` (the bytes so far; its length is the offset and its mtime the last
//! update) and `meta` (ref, total, expected digest, start time), which is always replaced whole
//! through `meta.tmp` so a crash leaves either the old or the new one.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{io_error, Digest};
use crate::error::{Error, Result};

pub(super) const DATA: &str = "data";
pub(super) const META: &str = "meta";
pub(super) const META_TMP: &str = "meta.tmp";
const MAGIC: &str = "berth-ingest 1";

/// What a client sees of an ingest in progress.
#[derive(Clone, Debug)]
pub struct IngestStatus {
    pub reference: String,
    pub offset: i64,
    pub total: i64,
    pub expected: Option<Digest>,
    pub started_at: SystemTime,
    pub updated_at: SystemTime,
}

/// The fields of an ingest that the data file can't tell.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Meta {
    pub reference: String,
    pub total: i64,
    pub expected: Option<Digest>,
    pub started_at: SystemTime,
}

impl Meta {
    /// Line-based, with the ref last so it may hold any text (newlines included) verbatim.
    fn encode(&self) -> String {
        let started = self
            .started_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let expected = self.expected.as_ref().map_or("-", |d| d.as_str());
        format!(
            "{MAGIC}\ntotal {}\nexpected {expected}\nstarted {}.{:09}\nref {}",
            self.total,
            started.as_secs(),
            started.subsec_nanos(),
            self.reference
        )
    }

    fn decode(text: &str) -> Option<Meta> {
        let mut rest = text.strip_prefix(MAGIC)?.strip_prefix('\n')?;
        let mut field = |name: &str| -> Option<&str> {
            let (line, tail) = rest.split_once('\n')?;
            rest = tail;
            line.strip_prefix(name)?.strip_prefix(' ')
        };
        let total = field("total")?.parse().ok()?;
        let expected = match field("expected")? {
            "-" => None,
            d => Some(Digest::parse(d).ok()?),
        };
        let (secs, nanos) = field("started")?.split_once('.')?;
        let started_at = UNIX_EPOCH + Duration::new(secs.parse().ok()?, nanos.parse().ok()?);
        let reference = rest.strip_prefix("ref ")?.to_owned();
        Some(Meta {
            reference,
            total,
            expected,
            started_at,
        })
    }

    /// Replaces `dir/meta` atomically and durably.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(META_TMP);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| {
                io_error(
                    e,
                    format!("ingest ref {:?}: create metadata", self.reference),
                )
            })?;
        f.write_all(self.encode().as_bytes())
            .and_then(|()| f.sync_all())
            .and_then(|()| fs::rename(&tmp, dir.join(META)))
            .and_then(|()| sync_dir(dir))
            .map_err(|e| {
                io_error(
                    e,
                    format!("ingest ref {:?}: write metadata", self.reference),
                )
            })
    }

    /// Reads `dir/meta`: NotFound if it is missing, DataLoss if it can't be understood.
    pub fn read(dir: &Path) -> Result<Meta> {
        let bytes = fs::read(dir.join(META)).map_err(|e| io_error(e, "ingest metadata"))?;
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(Meta::decode)
            .ok_or_else(|| Error::new(crate::error::Kind::DataLoss, "corrupt ingest metadata"))
    }
}

/// The status of the ingest in `dir`, read from disk, so it is right whether or not a writer is
/// live (writes go straight to `data`).
pub(super) fn read_status(dir: &Path) -> Result<IngestStatus> {
    let meta = Meta::read(dir)?;
    let data = fs::metadata(dir.join(DATA)).map_err(|e| io_error(e, "ingest data"))?;
    Ok(IngestStatus {
        reference: meta.reference,
        offset: i64::try_from(data.len()).unwrap_or(i64::MAX),
        total: meta.total,
        expected: meta.expected,
        started_at: meta.started_at,
        // File times are coarser than the clock, so a fresh ingest's mtime can read as earlier
        // than its start.
        updated_at: data
            .modified()
            .map_or(meta.started_at, |m| m.max(meta.started_at)),
    })
}

/// The directory of `reference`'s ingest under `ingest_root`.
pub(super) fn dir_for(ingest_root: &Path, reference: &str) -> PathBuf {
    ingest_root.join(Digest::of(reference.as_bytes()).hex())
}

/// Makes a rename or create inside `dir` survive a crash.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Refs that have a live writer (or an abort in progress), shared by a store and its writers.
#[derive(Default)]
pub(super) struct Locks(Mutex<HashMap<String, SystemTime>>);

/// Holds a ref until dropped.
pub(super) struct RefLock {
    locks: Arc<Locks>,
    reference: String,
}

impl Locks {
    pub fn try_lock(self: &Arc<Self>, reference: &str) -> Result<RefLock> {
        let mut held = self.map();
        if let Some(since) = held.get(reference) {
            let age = since.elapsed().unwrap_or(Duration::ZERO);
            // The age tells a stuck writer (long) from plain contention (short); clients retry.
            return Err(Error::unavailable(format!(
                "ref {reference} locked (held for {:.1}s)",
                age.as_secs_f64()
            )));
        }
        held.insert(reference.to_owned(), SystemTime::now());
        Ok(RefLock {
            locks: Arc::clone(self),
            reference: reference.to_owned(),
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, SystemTime>> {
        // The map is only ever changed by one insert or remove, so a panic elsewhere while it was
        // held can't leave it half-updated: recovering from poison is safe.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RefLock {
    pub fn reference(&self) -> &str {
        &self.reference
    }
}

impl Drop for RefLock {
    fn drop(&mut self) {
        self.locks.map().remove(&self.reference);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trip_with_awkward_ref() {
        let meta = Meta {
            reference: "layer-sha256:abc\nref evil\n\n../x ".to_owned(),
            total: 12,
            expected: Some(Digest::of(b"x")),
            started_at: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
        };
        assert_eq!(Meta::decode(&meta.encode()), Some(meta.clone()));
        let none = Meta {
            expected: None,
            total: 0,
            ..meta
        };
        assert_eq!(Meta::decode(&none.encode()), Some(none));
    }

    #[test]
    fn meta_rejects_garbage() {
        for bad in [
            "",
            "berth-ingest 1\n",
            "berth-ingest 2\ntotal 1\nexpected -\nstarted 1.0\nref x",
            "berth-ingest 1\ntotal x\nexpected -\nstarted 1.0\nref x",
            "berth-ingest 1\ntotal 1\nexpected sha256:zz\nstarted 1.0\nref x",
        ] {
            assert_eq!(Meta::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn locks_exclude_and_release() {
        let locks = Arc::new(Locks::default());
        let held = locks.try_lock("a").expect("free");
        let e = locks.try_lock("a").err().expect("held");
        assert!(e.is(crate::error::Kind::Unavailable));
        assert!(e.msg.starts_with("ref a locked"), "{}", e.msg);
        assert!(locks.try_lock("b").is_ok());
        drop(held);
        assert!(locks.try_lock("a").is_ok());
    }
}
