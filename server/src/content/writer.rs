//! `Writer`: appends to one ingest and commits it into the blob store.
//!
//! Crash safety rests on three facts: data only ever goes to `ingest/<id>/data`; a blob appears
//! under `blobs/` by a single rename of a file that was already fsynced, verified and made
//! read-only; and on resume the digest is recomputed from what is actually on disk.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags};
use sha2::{Digest as _, Sha256};

use super::ingest::{self, Meta, RefLock};
use super::{io_error, Digest, IngestStatus};
use crate::error::{Error, Kind, Result};

/// A live ingest. It holds the ref's lock; dropping it releases the lock and leaves the ingest
/// on disk to be resumed by the next `ContentStore::writer` for the same ref.
pub struct Writer {
    /// Held only for its `Drop`, which frees the ref.
    _lock: RefLock,
    dir: PathBuf,
    blobs: PathBuf,
    data: File,
    hasher: Sha256,
    offset: i64,
    meta: Meta,
    updated_at: SystemTime,
}

impl Writer {
    /// Resumes the ingest in `dir` if it is whole and agrees with `total` and `expected`;
    /// otherwise starts it over, as containerd does when a ref comes back with another size.
    pub(super) fn open(
        lock: RefLock,
        dir: PathBuf,
        blobs: PathBuf,
        total: i64,
        expected: Option<Digest>,
    ) -> Result<Writer> {
        let reference = lock.reference().to_owned();
        let what = || format!("ingest ref {reference:?}");
        let data_path = dir.join(ingest::DATA);
        // A crash between commit's chmod and its rename leaves a read-only data file behind.
        match fs::set_permissions(&data_path, Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(io_error(e, what())),
            _ => {}
        }
        let old = Meta::read(&dir).ok().filter(|m| {
            m.reference == reference
                && data_path.is_file()
                && !(total > 0 && m.total > 0 && m.total != total)
                && !matches!((&expected, &m.expected), (Some(a), Some(b)) if a != b)
        });
        if let Err(e) = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
        {
            return Err(io_error(e, what()));
        }
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(old.is_none())
            .mode(0o600)
            .open(&data_path)
            .map_err(|e| io_error(e, what()))?;

        let mut w = Writer {
            meta: Meta {
                reference,
                total,
                expected,
                started_at: SystemTime::now(),
            },
            _lock: lock,
            dir,
            blobs,
            data,
            hasher: Sha256::new(),
            offset: 0,
            updated_at: SystemTime::now(),
        };
        match old {
            Some(old) => {
                w.rehash()?;
                // Fill in what the first writer didn't know, keeping what it did.
                let merged = Meta {
                    total: if old.total > 0 {
                        old.total
                    } else {
                        w.meta.total
                    },
                    expected: old.expected.clone().or_else(|| w.meta.expected.clone()),
                    ..old.clone()
                };
                w.meta = merged;
                if w.meta != old {
                    w.meta.write(&w.dir)?;
                }
                if let Ok(mtime) = w.data.metadata().and_then(|m| m.modified()) {
                    w.updated_at = mtime.max(w.meta.started_at);
                }
            }
            None => w.meta.write(&w.dir)?,
        }
        Ok(w)
    }

    /// Recomputes the digest and offset from the data file: after a crash the file, not any
    /// record of it, says what was written.
    fn rehash(&mut self) -> Result<()> {
        let mut buf = vec![0; 1 << 20];
        let mut read = 0i64;
        let mut f = &self.data;
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.hasher.update(&buf[..n]);
                    read += n as i64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, self.what("resume"))),
            }
        }
        self.offset = read;
        Ok(())
    }

    pub fn status(&self) -> IngestStatus {
        IngestStatus {
            reference: self.meta.reference.clone(),
            offset: self.offset,
            total: self.meta.total,
            expected: self.meta.expected.clone(),
            started_at: self.meta.started_at,
            updated_at: self.updated_at,
        }
    }

    /// The digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        Digest::from_sha256(&self.hasher.clone().finalize())
    }

    /// Records the expected total size (0 = unknown) in the ingest's metadata.
    pub fn set_total(&mut self, total: i64) -> Result<()> {
        if total < 0 {
            return Err(Error::invalid(format!(
                "{}: negative total {total}",
                self.what("set total")
            )));
        }
        if total != self.meta.total {
            self.meta.total = total;
            self.meta.write(&self.dir)?;
        }
        Ok(())
    }

    /// Appends `data` at `offset`, which must be the current offset; 0 instead throws away what
    /// was written and starts over. A write that would pass a known total is refused before it
    /// touches the file, so the ingest stays resumable. Returns the new offset.
    pub fn write_at(&mut self, offset: i64, data: &[u8]) -> Result<i64> {
        if offset != self.offset && offset != 0 {
            return Err(Error::new(
                Kind::OutOfRange,
                format!(
                    "{}: write at {offset} must occur at current offset {}",
                    self.what("write"),
                    self.offset
                ),
            ));
        }
        let end = i64::try_from(data.len())
            .ok()
            .and_then(|n| offset.checked_add(n))
            .ok_or_else(|| Error::invalid(format!("{}: write too large", self.what("write"))))?;
        if self.meta.total > 0 && end > self.meta.total {
            return Err(Error::invalid(format!(
                "{}: {} bytes at offset {offset} pass the total of {}",
                self.what("write"),
                data.len(),
                self.meta.total
            )));
        }
        if offset == 0 && self.offset > 0 {
            self.data
                .set_len(0)
                .map_err(|e| io_error(e, self.what("restart")))?;
            self.hasher = Sha256::new();
            self.offset = 0;
        }
        if data.is_empty() {
            return Ok(self.offset);
        }
        if let Err(e) = self.data.write_all_at(data, offset as u64) {
            // Cut back whatever part of the write landed, so the file still matches the hash.
            if let Err(e) = self.data.set_len(self.offset as u64) {
                tracing::warn!(reference = %self.meta.reference, "rolling back a failed write: {e}");
            }
            return Err(io_error(e, self.what("write")));
        }
        self.hasher.update(data);
        self.offset = end;
        self.updated_at = SystemTime::now();
        Ok(end)
    }

    /// Verifies and publishes the ingest as a blob. `size` 0 and `expected` None skip those
    /// checks. On a mismatch the ingest stays exactly as it was (the client may resume or
    /// abort it); if the blob already exists the ingest is removed and AlreadyExists returned.
    pub fn commit(self, size: i64, expected: Option<Digest>) -> Result<Digest> {
        let what = self.what("commit");
        if size < 0 {
            return Err(Error::invalid(format!("{what}: negative size {size}")));
        }
        self.data.sync_all().map_err(|e| io_error(e, &what))?;
        let on_disk = self.data.metadata().map_err(|e| io_error(e, &what))?.len();
        if on_disk != self.offset as u64 {
            return Err(Error::new(
                Kind::DataLoss,
                format!(
                    "{what}: data file holds {on_disk} bytes but {} were written",
                    self.offset
                ),
            ));
        }
        if size > 0 && size != self.offset {
            return Err(Error::precondition(format!(
                "unexpected commit size {}, expected {size}",
                self.offset
            )));
        }
        let dgst = self.digest();
        if let Some(exp) = expected.filter(|e| *e != dgst) {
            return Err(Error::precondition(format!(
                "unexpected commit digest {dgst}, expected {exp}"
            )));
        }

        let target = self.blobs.join(dgst.hex());
        if target.exists() {
            self.remove_ingest();
            return Err(Error::exists(format!("content {dgst}: already exists")));
        }
        // Make the file final (read-only, stamped with the commit time, durable) before the
        // rename, so nothing can observe a blob that is still changing.
        let publish = || -> std::io::Result<()> {
            self.data.set_permissions(Permissions::from_mode(0o444))?;
            self.data.set_modified(SystemTime::now())?;
            self.data.sync_all()
        };
        publish().map_err(|e| io_error(e, &what))?;
        match rename_noreplace(&self.dir.join(ingest::DATA), &target) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                // Another ref committed the same bytes first.
                self.remove_ingest();
                return Err(Error::exists(format!("content {dgst}: already exists")));
            }
            Err(e) => {
                let _ = self.data.set_permissions(Permissions::from_mode(0o600));
                return Err(io_error(e, &what));
            }
        }
        let synced = ingest::sync_dir(&self.blobs);
        self.remove_ingest();
        synced.map_err(|e| io_error(e, format!("content {dgst}: sync blob dir")))?;
        Ok(dgst)
    }

    /// Best effort: a leftover dir without data is removed by the next `ContentStore::open`.
    fn remove_ingest(&self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(reference = %self.meta.reference, "removing committed ingest: {e}");
        }
    }

    fn what(&self, action: &str) -> String {
        format!("ingest ref {:?}: {action}", self.meta.reference)
    }
}

/// Renames without replacing, so a blob is never overwritten under a reader. Filesystems that
/// lack RENAME_NOREPLACE fall back to a plain rename, which is safe here because the caller
/// already checked the target is absent and any racing writer holds the same bytes.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    match renameat2(None, from, None, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL | Errno::ENOSYS) => fs::rename(from, to),
        Err(e) => Err(std::io::Error::from(e)),
    }
}
