//! `ContentStore`: blob lookups and the bookkeeping of ingests (open, status, list, abort).
//! Writing an ingest and committing it are in `writer.rs`.

use std::fs::{self, DirBuilder, File, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ingest::{self, Locks, Meta};
use super::{io_error, Digest, IngestStatus, Writer};
use crate::error::{Error, Kind, Result};

/// One per root; share it through an `Arc`. The ref locks live here, so two stores opened on the
/// same root would not see each other's writers: the daemon guarantees a single owner per root.
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
    locks: Arc<Locks>,
}

impl ContentStore {
    /// Creates the layout if needed, tightens its modes, and clears what a crash can leave
    /// behind: half-written metadata and ingests that never got (or already gave up) their data.
    pub fn open(root: &Path) -> Result<Self> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        for dir in [root, &root.join("blobs"), &blobs, &ingest] {
            private_dir(dir)?;
        }
        let store = ContentStore {
            blobs,
            ingest,
            locks: Arc::new(Locks::default()),
        };
        store.clean_ingests()?;
        Ok(store)
    }

    /// Where the blob for `d` lives (or would live). The digest is validated, so this can't
    /// escape the store.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(d.hex())
    }

    pub fn size(&self, d: &Digest) -> Result<u64> {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) if m.is_file() => Ok(m.len()),
            Ok(_) => Err(not_found(d)),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(not_found(d)),
            Err(e) => Err(io_error(e, format!("content {d}"))),
        }
    }

    pub fn exists(&self, d: &Digest) -> bool {
        self.size(d).is_ok()
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.blob_path(d)).map_err(|e| match e.kind() {
            ErrorKind::NotFound => not_found(d),
            _ => io_error(e, format!("content {d}")),
        })
    }

    /// Up to `len` bytes from `offset`; fewer at the end of the blob, none at exactly its end.
    pub fn read_at(&self, d: &Digest, offset: u64, len: usize) -> Result<Vec<u8>> {
        let file = self.open_blob(d)?;
        let size = file
            .metadata()
            .map_err(|e| io_error(e, format!("content {d}")))?
            .len();
        if offset > size {
            return Err(Error::new(
                Kind::OutOfRange,
                format!("content {d}: offset {offset} is past the end ({size} bytes)"),
            ));
        }
        let want = usize::try_from(size - offset).map_or(len, |left| left.min(len));
        let mut buf = vec![0; want];
        let mut got = 0;
        while got < want {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, format!("content {d}: read"))),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    /// Removes a blob. Readers that already opened it keep their view until they close it.
    pub fn delete(&self, d: &Digest) -> Result<()> {
        fs::remove_file(self.blob_path(d)).map_err(|e| match e.kind() {
            ErrorKind::NotFound => not_found(d),
            _ => io_error(e, format!("content {d}: delete")),
        })
    }

    /// Every committed blob, sorted; names that aren't digests are skipped, never deleted.
    pub fn blobs(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.blobs).map_err(|e| io_error(e, "list blobs"))? {
            let entry = entry.map_err(|e| io_error(e, "list blobs"))?;
            let name = entry.file_name();
            match name
                .to_str()
                .map(|hex| Digest::parse(&format!("sha256:{hex}")))
            {
                Some(Ok(d)) => out.push(d),
                _ => tracing::warn!(path = ?entry.path(), "unexpected file in the blob store"),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Opens the ingest for `reference`, resuming it if one is on disk. If `expected` is already
    /// committed the write is pointless: AlreadyExists, and the ingest is left alone.
    pub fn writer(&self, reference: &str, total: i64, expected: Option<Digest>) -> Result<Writer> {
        if reference.is_empty() {
            return Err(Error::invalid("ref must not be empty"));
        }
        if total < 0 {
            return Err(Error::invalid(format!(
                "ref {reference}: negative total {total}"
            )));
        }
        let lock = self.locks.try_lock(reference)?;
        if let Some(d) = &expected {
            if self.exists(d) {
                return Err(Error::exists(format!("content {d}: already exists")));
            }
        }
        let dir = ingest::dir_for(&self.ingest, reference);
        Writer::open(lock, dir, self.blobs.clone(), total, expected)
    }

    pub fn status(&self, reference: &str) -> Result<IngestStatus> {
        let st = ingest::read_status(&ingest::dir_for(&self.ingest, reference))
            .map_err(|e| ingest_error(e, reference))?;
        if st.reference != reference {
            // Only a sha256 collision between two refs could get here.
            return Err(ingest_not_found(reference));
        }
        Ok(st)
    }

    /// Every ingest on disk, sorted by ref, live or not.
    pub fn ingests(&self) -> Result<Vec<IngestStatus>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.ingest).map_err(|e| io_error(e, "list ingests"))? {
            let entry = entry.map_err(|e| io_error(e, "list ingests"))?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match ingest::read_status(&entry.path()) {
                Ok(st) => out.push(st),
                // Committed or aborted while we looked, or still being set up.
                Err(e) if e.is(Kind::NotFound) => {}
                Err(e) if e.is(Kind::DataLoss) => {
                    tracing::warn!(path = ?entry.path(), "skipping ingest: {e}");
                }
                Err(e) => return Err(e.context("list ingests")),
            }
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Deletes an ingest and its data. A live writer keeps its ingest: Unavailable.
    pub fn abort(&self, reference: &str) -> Result<()> {
        let _lock = self.locks.try_lock(reference)?;
        let dir = ingest::dir_for(&self.ingest, reference);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(ingest_not_found(reference)),
            Err(e) => Err(io_error(e, format!("ingest ref {reference:?}: abort"))),
        }
    }

    fn clean_ingests(&self) -> Result<()> {
        for entry in fs::read_dir(&self.ingest).map_err(|e| io_error(e, "list ingests"))? {
            let dir = entry.map_err(|e| io_error(e, "list ingests"))?.path();
            if !dir.is_dir() {
                continue;
            }
            match fs::remove_file(dir.join(ingest::META_TMP)) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(io_error(e, format!("remove stale {}", dir.display())));
                }
                _ => {}
            }
            // Without data there is nothing to lose; without readable metadata nobody can name
            // the ingest again to resume or abort it, so it could only leak.
            let keep = dir.join(ingest::DATA).is_file() && Meta::read(&dir).is_ok();
            if !keep {
                tracing::info!(path = ?dir, "removing incomplete ingest");
                fs::remove_dir_all(&dir).map_err(|e| {
                    io_error(e, format!("remove incomplete ingest {}", dir.display()))
                })?;
            }
        }
        Ok(())
    }
}

/// Creates `dir` 0700 if missing and makes sure an existing one is a directory with that mode.
fn private_dir(dir: &Path) -> Result<()> {
    let what = || format!("content store dir {}", dir.display());
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error(e, what())),
    }
    if !fs::metadata(dir).map_err(|e| io_error(e, what()))?.is_dir() {
        return Err(Error::precondition(format!("{}: not a directory", what())));
    }
    fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(|e| io_error(e, what()))
}

fn not_found(d: &Digest) -> Error {
    Error::not_found(format!("content {d}: not found"))
}

fn ingest_not_found(reference: &str) -> Error {
    Error::not_found(format!("ingest ref {reference:?}: not found"))
}

fn ingest_error(e: Error, reference: &str) -> Error {
    if e.is(Kind::NotFound) {
        ingest_not_found(reference)
    } else {
        e.context(format!("ingest ref {reference:?}"))
    }
}
