//! Store and writer behaviour, against a real directory.

mod store;
mod writer;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::ContentStore;
use crate::error::{Error, Kind};

fn store() -> (tempfile::TempDir, ContentStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ContentStore::open(dir.path()).expect("open store");
    (dir, store)
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn kind_of<T>(r: Result<T, Error>) -> (Kind, String) {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => (e.kind, e.msg),
    }
}

/// Deterministic bytes that don't compress to a pattern a bug could hide behind.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn ingest_dirs(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root.join("ingest"))
        .expect("read ingest dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}
