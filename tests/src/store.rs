//! What a daemon's root holds on disk, and what `ctr` lists, for tests that check the two agree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::harness::Ctr;

/// berthd's committed blobs: `<root>/content/blobs/sha256/<hex>`.
pub fn blobs_dir(root: &Path) -> PathBuf {
    root.join("content").join("blobs").join("sha256")
}

/// Where the blob `digest` (`sha256:<hex>`) lives under `root`.
pub fn blob_path(root: &Path, digest: &str) -> PathBuf {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("{digest} is not a sha256 digest"));
    blobs_dir(root).join(hex)
}

/// Digests (`sha256:<hex>`) of every blob file on disk.
pub fn blobs_on_disk(root: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(blobs_dir(root)) {
        Ok(entries) => entries
            .flatten()
            .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
        Err(e) => panic!("list blobs under {}: {e}", root.display()),
    }
}

/// Every path under `dir`, relative to it, so a test can tell what a request created.
pub fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            out.insert(path.strip_prefix(base).unwrap_or(&path).to_path_buf());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// `ctr content ls -q`: the digests the namespace holds.
pub fn content_digests(ctr: &Ctr) -> BTreeSet<String> {
    ctr.ok(&["content", "ls", "-q"])
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `ctr content ls`: digest to the LABELS column with its `k=v` pairs sorted (ctr prints them in
/// map order), `-` when there are none.
pub fn content_labels(ctr: &Ctr) -> BTreeMap<String, String> {
    ctr.ok(&["content", "ls"])
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').filter(|c| !c.is_empty()).collect();
            let mut labels: Vec<&str> = cols.last()?.trim().split(',').collect();
            labels.sort_unstable();
            Some((cols.first()?.to_string(), labels.join(",")))
        })
        .collect()
}

/// `ctr content active`: the refs of ingests in progress.
pub fn active_refs(ctr: &Ctr) -> BTreeSet<String> {
    ctr.ok(&["content", "active"])
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `ctr images ls -q`.
pub fn image_names(ctr: &Ctr) -> BTreeSet<String> {
    ctr.ok(&["images", "ls", "-q"])
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `ctr images check`, whose table is the point. After the table ctr asks the snapshotter whether
/// each image is unpacked; until berthd serves snapshots (the next issue) that fails with "unable
/// to check unpack ..." ("not implemented", or the default snapshotter "not loaded" while it is
/// being added). That one failure is accepted, any other is not.
pub fn images_check(ctr: &Ctr) -> String {
    let out = ctr.run(&["images", "check"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("");
        assert!(
            last.starts_with("ctr: unable to check unpack for "),
            "ctr images check failed for another reason:\n{stderr}\nstdout:\n{stdout}"
        );
    }
    stdout
}

/// The row of a ctr table whose first column is `first`.
pub fn row<'a>(table: &'a str, first: &str) -> Option<&'a str> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
}
