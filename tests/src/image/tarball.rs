//! Deterministic tar writing shared by the layer and archive builders.
//!
//! Every header gets the same mtime and root ownership, so two builds of the same content are
//! byte-identical and hash to the same digest.

use std::io::Write;

use anyhow::Context;
use tar::{EntryType, Header};

/// Fixed mtime for every entry (2023-11-14T22:13:20Z): any constant works, zero upsets some tools.
pub const MTIME: u64 = 1_700_000_000;
/// The same instant, for the config's `created` and history fields.
pub const CREATED: &str = "2023-11-14T22:13:20Z";

/// A tar stream whose entries all carry fixed metadata.
pub struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter {
            builder: tar::Builder::new(out),
        }
    }

    fn header(kind: EntryType, mode: u32, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(MTIME);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> anyhow::Result<()> {
        let mut header = Self::header(EntryType::Directory, mode, 0);
        let name = format!("{}/", path.trim_end_matches('/'));
        self.builder
            .append_data(&mut header, &name, std::io::empty())
            .with_context(|| format!("tar entry {name:?}"))
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> anyhow::Result<()> {
        let mut header = Self::header(EntryType::Regular, mode, data.len() as u64);
        self.builder
            .append_data(&mut header, path, data)
            .with_context(|| format!("tar entry {path:?}"))
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> anyhow::Result<()> {
        let mut header = Self::header(EntryType::Symlink, 0o777, 0);
        self.builder
            .append_link(&mut header, path, target)
            .with_context(|| format!("tar symlink {path:?}"))
    }

    /// Writes the end-of-archive marker and returns the sink.
    pub fn finish(self) -> anyhow::Result<W> {
        self.builder.into_inner().context("finish tar stream")
    }
}
