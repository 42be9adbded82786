//! Disk usage of a directory tree, counted as containerd does (continuity's `fs.DiskUsage`):
//! every distinct inode once, its allocated blocks times 512 bytes, the root included.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result, Usage};

/// Walks `root` without following symlinks.
pub fn disk_usage(root: &Path) -> Result<Usage> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut size: i64 = 0;
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let md = std::fs::symlink_metadata(&path)
            .map_err(|e| Error::io(format_args!("stat {}", path.display()), e))?;
        if seen.insert((md.dev(), md.ino())) {
            size = size.saturating_add((md.blocks() as i64).saturating_mul(512));
        }
        if md.is_dir() {
            let entries = std::fs::read_dir(&path)
                .map_err(|e| Error::io(format_args!("read directory {}", path.display()), e))?;
            for entry in entries {
                let entry = entry
                    .map_err(|e| Error::io(format_args!("read directory {}", path.display()), e))?;
                stack.push(entry.path());
            }
        }
    }
    Ok(Usage {
        size,
        inodes: seen.len() as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![7u8; 64 * 1024]).unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("c")).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let u = disk_usage(dir.path()).unwrap();
        // root, a (= b), c, d
        assert_eq!(u.inodes, 4);
        assert!(u.size >= 64 * 1024, "{u:?}");
        assert!(u.size < 2 * 64 * 1024 + 4 * 4096 * 2, "{u:?}");
    }
}
