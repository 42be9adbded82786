//! The metadata store: namespaces, images, containers, leases and the references that keep content
//! (and, later, snapshots) alive, in one sled tree.
//!
//! Schema, version 1. Every key starts with a one-byte kind and its parts are joined by NUL, so a
//! namespace's objects of one kind form one prefix range. User text never contains NUL (checked at
//! the edge by [`check_key_part`]).
//!
//! ```text
//! m \0 version                                  -> u32 (big endian), the schema version
//! m \0 uuid                                     -> the server's UUID (utf-8)
//! n \0 <ns>                                     -> NamespaceRec
//! i \0 <ns> \0 <image name>                     -> ImageRec
//! c \0 <ns> \0 <container id>                   -> ContainerRec
//! l \0 <ns> \0 <lease id>                       -> LeaseRec
//! r \0 <ns> \0 <lease id> \0 <type> \0 <id>     -> empty; a resource held by a lease
//! b \0 <ns> \0 <digest>                         -> BlobRec; the namespace's view of a content blob
//! g \0 <ns> \0 <ingest ref>                     -> IngestRec; an ingest started in the namespace
//! ```
//!
//! Mutations are serialised by one writer lock (as bbolt has one writer): a mutation reads what it
//! needs, builds one [`Batch`], applies it atomically and flushes before the caller replies.
//! Readers never take the lock. Garbage collection takes the same lock for mark and sweep.

mod batch;
pub mod containers;
pub mod content;
pub mod images;
pub mod leases;
pub mod namespaces;
mod records;
pub mod snapshots;

pub use batch::Batch;
pub use records::*;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Namespace = b'n' as isize,
    Image = b'i' as isize,
    Container = b'c' as isize,
    Lease = b'l' as isize,
    LeaseResource = b'r' as isize,
    Blob = b'b' as isize,
    Ingest = b'g' as isize,
}

/// The sled database and the writer lock.
pub struct Db {
    tree: sled::Db,
    wlock: Mutex<()>,
    /// Holders of the writer lock plus those waiting for it (see [`Db::writer_busy`]).
    writers: AtomicUsize,
}

/// The writer lock, held; counted in [`Db::writer_busy`] from before the wait until dropped.
pub struct WriteGuard<'a> {
    _held: MutexGuard<'a, ()>,
    writers: &'a AtomicUsize,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.writers.fetch_sub(1, Ordering::Release);
    }
}

impl Db {
    pub fn open(dir: &Path) -> Result<Db> {
        let tree = sled::Config::new()
            .path(dir)
            .cache_capacity(4 << 20)
            // Every mutation flushes before it answers; sled's timer would only wake an idle
            // daemon twice a second to sync nothing.
            .flush_every_ms(None)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|e| Error::internal(format!("open metadata at {}: {e}", dir.display())))?;
        let db = Db {
            tree,
            wlock: Mutex::new(()),
            writers: AtomicUsize::new(0),
        };
        db.migrate()?;
        Ok(db)
    }

    fn migrate(&self) -> Result<()> {
        let key = meta_key("version");
        match self.tree.get(&key)? {
            None => {
                self.tree.insert(key, &SCHEMA_VERSION.to_be_bytes())?;
                self.tree.flush()?;
            }
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0xff; 4]));
                if found != SCHEMA_VERSION {
                    return Err(Error::precondition(format!(
                        "metadata schema version {found} is not supported (this berthd reads version {SCHEMA_VERSION})"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The server UUID, created once and kept for the life of the root.
    pub fn uuid(&self) -> Result<String> {
        let key = meta_key("uuid");
        if let Some(v) = self.tree.get(&key)? {
            return Ok(String::from_utf8_lossy(&v).into_owned());
        }
        let _w = self.write_lock();
        let id = uuid::Uuid::new_v4().to_string();
        self.tree.insert(key, id.as_bytes())?;
        self.tree.flush()?;
        Ok(id)
    }

    pub fn write_lock(&self) -> WriteGuard<'_> {
        self.writers.fetch_add(1, Ordering::Acquire);
        // A panic while holding the lock leaves no half-applied batch (batches are atomic), so the
        // poisoned state carries no meaning here.
        let held = self.wlock.lock().unwrap_or_else(|p| p.into_inner());
        WriteGuard {
            _held: held,
            writers: &self.writers,
        }
    }

    /// Whether a writer holds the lock or waits for it: a short mutation started now would wait
    /// (for a collection, possibly milliseconds). A hint, not a reservation.
    pub fn writer_busy(&self) -> bool {
        self.writers.load(Ordering::Acquire) > 0
    }

    /// Applies one mutation atomically and makes it durable before returning. An empty batch
    /// has nothing to make durable: every earlier mutation flushed before its writer let go of
    /// the lock.
    pub fn commit(&self, batch: Batch) -> Result<()> {
        match batch.into_writes() {
            batch::Writes::None => return Ok(()),
            batch::Writes::One(k, Some(v)) => {
                self.tree.insert(k, v)?;
            }
            batch::Writes::One(k, None) => {
                self.tree.remove(k)?;
            }
            batch::Writes::Many(b) => self.tree.apply_batch(b)?,
        }
        self.tree.flush()?;
        Ok(())
    }

    pub fn get<R: prost::Message + Default>(&self, key: &[u8]) -> Result<Option<R>> {
        match self.tree.get(key)? {
            None => Ok(None),
            Some(v) => R::decode(v.as_ref())
                .map(Some)
                .map_err(|e| Error::internal(format!("corrupt metadata record: {e}"))),
        }
    }

    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.tree.contains_key(key)?)
    }

    /// All records under a prefix, with the last key part (after the prefix) decoded as text.
    pub fn scan<R: prost::Message + Default>(&self, prefix: &[u8]) -> Result<Vec<(String, R)>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(prefix) {
            let (k, v) = item?;
            let rest = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let rec = R::decode(v.as_ref())
                .map_err(|e| Error::internal(format!("corrupt metadata record: {e}")))?;
            out.push((rest, rec));
        }
        Ok(out)
    }

    /// Keys (after the prefix) under a prefix.
    pub fn keys(&self, prefix: &[u8]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(prefix) {
            let (k, _) = item?;
            out.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    pub fn any_under(&self, prefix: &[u8]) -> Result<bool> {
        Ok(self.tree.scan_prefix(prefix).next().transpose()?.is_some())
    }

    /// Names of every namespace that has a record.
    pub fn namespaces(&self) -> Result<Vec<String>> {
        self.keys(&[Kind::Namespace as u8, 0])
    }

    /// Adds the namespace record to `batch` unless it exists: writing into a namespace creates it,
    /// as in containerd.
    pub fn ensure_namespace(&self, batch: &mut Batch, ns: &str) -> Result<()> {
        let k = key(Kind::Namespace, &[ns]);
        if !self.contains(&k)? {
            batch.insert(k, encode(&NamespaceRec::default()));
        }
        Ok(())
    }
}

fn meta_key(name: &str) -> Vec<u8> {
    let mut k = vec![b'm', 0];
    k.extend_from_slice(name.as_bytes());
    k
}

/// `kind \0 part \0 part ...`
pub fn key(kind: Kind, parts: &[&str]) -> Vec<u8> {
    let mut k = vec![kind as u8];
    for p in parts {
        k.push(0);
        k.extend_from_slice(p.as_bytes());
    }
    k
}

/// The prefix of every key of `kind` under the given parts (ends with a separator).
pub fn prefix(kind: Kind, parts: &[&str]) -> Vec<u8> {
    let mut k = key(kind, parts);
    k.push(0);
    k
}

pub fn encode<R: prost::Message>(r: &R) -> Vec<u8> {
    r.encode_to_vec()
}

/// Names, refs and resource ids become key parts: NUL would split them.
pub fn check_key_part(what: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(Error::invalid(format!("{what} must not contain NUL")));
    }
    Ok(())
}

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Applies one `labels.<key>` path of a field mask: the key is set from the update, or removed
/// when the update does not carry it or carries it empty (containerd's ways of deleting a label:
/// `ctr ... label NAME key=` sends the empty value).
pub fn set_or_remove(labels: &mut Labels, k: &str, v: Option<&String>) {
    match v {
        Some(v) if !v.is_empty() => {
            labels.insert(k.to_string(), v.clone());
        }
        _ => {
            labels.remove(k);
        }
    }
}

impl Db {
    /// Makes everything written so far durable (shutdown).
    pub fn flush(&self) -> Result<()> {
        self.tree.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `writer_busy` is what lets a short mutation run on the async worker: it must be set
    /// while the lock is held or waited for, and clear once every holder is gone.
    #[test]
    fn writer_busy_tracks_holders_and_waiters() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(dir.path()).expect("open");
        assert!(!db.writer_busy());
        let held = db.write_lock();
        assert!(db.writer_busy());
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let _w = db.write_lock();
            });
            // The waiter counts before it gets the lock.
            while db.writers.load(Ordering::Acquire) < 2 {
                std::thread::yield_now();
            }
            drop(held);
            waiter.join().expect("waiter");
        });
        assert!(!db.writer_busy());
    }
}
