//! The lower layers under an overlay upperdir a layer is applied into. A layer may add
//! `home/user/f` without listing `home/user/` (hand-made layers do); the upperdir then lacks
//! the directory and the applier must create it. Created as a plain 0755 root-owned directory
//! it would hide the lower layer's mode and owner in the merged view (a 0700 home made
//! world-readable), so a created directory takes them from the topmost lower layer that has
//! the same path as a directory, as containerd's `mkparent` does with `WithParents`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::stat::{fchmod, futimens, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, Gid, Uid};

use super::sys::{is_dir, lstat_at, open_dir_in_root, owned};
use crate::{Error, Result};

/// Lower layer roots, topmost first. Only ever read: metadata is looked up, nothing changes.
#[derive(Default)]
pub(crate) struct Lowers {
    roots: Vec<OwnedFd>,
}

impl Lowers {
    pub(crate) fn open(paths: &[&Path]) -> Result<Lowers> {
        let flags = nix::fcntl::OFlag::O_RDONLY
            | nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_CLOEXEC;
        let mut roots = Vec::with_capacity(paths.len());
        for p in paths {
            let fd = nix::fcntl::open(*p, flags, Mode::empty())
                .map_err(|e| Error::io(format!("open lower layer {}", p.display()), e.into()))?;
            roots.push(owned(fd));
        }
        Ok(Lowers { roots })
    }

    /// Gives the directory `dir`, just created at `path` (components below the root, symlinks
    /// already resolved), the mode, owner and times of the topmost lower directory at `path`.
    /// A lower layer with something else there (a file, a whiteout device, a non-directory
    /// parent) replaced the directory: layers below it do not count, and `dir` keeps 0755.
    pub(crate) fn copy_attrs(&self, path: &[Vec<u8>], dir: &OwnedFd) -> nix::Result<()> {
        let Some((base, parents)) = path.split_last() else {
            return Ok(());
        };
        let parent = parents.join(&b'/');
        for root in &self.roots {
            let st = match open_dir_in_root(root.as_fd(), &parent) {
                Ok(p) => lstat_at(p.as_fd(), base)?,
                Err(Errno::ENOENT) => None,
                // Replaced by a non-directory, or unresolvable: nothing to copy.
                Err(Errno::ENOTDIR | Errno::ELOOP | Errno::EXDEV | Errno::ENAMETOOLONG) => {
                    return Ok(())
                }
                Err(e) => return Err(e),
            };
            match st {
                None => continue,
                Some(st) if is_dir(&st) => {
                    // Owner first: chown may clear the set-id bits chmod then restores.
                    fchown(
                        dir.as_raw_fd(),
                        Some(Uid::from_raw(st.st_uid)),
                        Some(Gid::from_raw(st.st_gid)),
                    )?;
                    fchmod(
                        dir.as_raw_fd(),
                        Mode::from_bits_truncate(st.st_mode & 0o7777),
                    )?;
                    let atime = TimeSpec::new(st.st_atime, st.st_atime_nsec);
                    let mtime = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
                    return futimens(dir.as_raw_fd(), &atime, &mtime);
                }
                Some(_) => return Ok(()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    use std::path::Path;

    use crate::archive::{apply_over, Limits, WhiteoutMode};

    fn layer(names: &[&str]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for name in names {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(1);
            b.append_data(&mut h, name, &b"x"[..]).expect("tar entry");
        }
        b.into_inner().expect("tar")
    }

    fn mkdir(path: &Path, mode: u32, owner: u32) {
        std::fs::DirBuilder::new()
            .mode(mode)
            .create(path)
            .expect("mkdir");
        std::os::unix::fs::chown(path, Some(owner), Some(owner)).expect("chown");
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .expect("chmod");
    }

    #[test]
    fn created_parents_copy_the_topmost_lower_directory() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: chown needs root");
            return;
        }
        let t = tempfile::tempdir().expect("temp dir");
        let (upper, top, bottom) = (t.path().join("u"), t.path().join("l1"), t.path().join("l2"));
        for d in [&upper, &top, &bottom] {
            std::fs::create_dir(d).expect("mkdir");
        }
        // `a/b` is a 0700 directory of uid 7 in the top lower layer, 0777 below it.
        mkdir(&top.join("a"), 0o751, 5);
        mkdir(&top.join("a/b"), 0o700, 7);
        mkdir(&bottom.join("a"), 0o777, 9);
        mkdir(&bottom.join("a/b"), 0o777, 9);
        // `c` is a directory only in the bottom layer, and the top one replaced it by a file.
        std::fs::write(top.join("c"), "file").expect("write");
        mkdir(&bottom.join("c"), 0o700, 9);
        // `d` exists nowhere below.
        let tar = layer(&["a/b/f", "c/f", "d/f"]);
        apply_over(
            &upper,
            &[&top, &bottom],
            tar.as_slice(),
            WhiteoutMode::Overlay,
            &Limits::default(),
        )
        .expect("apply");
        let attrs = |p: &str| {
            let md = std::fs::symlink_metadata(upper.join(p)).expect("stat");
            (md.mode() & 0o7777, md.uid())
        };
        assert_eq!(attrs("a"), (0o751, 5));
        assert_eq!(attrs("a/b"), (0o700, 7));
        assert_eq!(attrs("c"), (0o755, 0));
        assert_eq!(attrs("d"), (0o755, 0));
    }
}
