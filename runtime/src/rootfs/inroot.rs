//! `mkdir -p` inside the container root, on the same in-root resolution as every other path operation
//! (pathrs: openat2 `RESOLVE_IN_ROOT`, or its safe fallback).
//!
//! pathrs' own `Root::mkdir_all` re-opens every handle through its hardened procfs, about fifty
//! syscalls per call even when the directory already exists; a container start makes a few dozen of
//! these calls (every mount point, every device's parent), which was most of the syscalls of the
//! container setup. Here an existing directory costs one resolution, and each missing component a
//! resolution of its parent, a `mkdirat` under that handle and a resolution of the result.
//!
//! Paths that may not exist are first looked up with `probe`: the same openat2 call pathrs makes, but a
//! miss costs nothing, where pathrs gathers procfs details for its error message (about ten syscalls).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{fstat, Mode, SFlag};
use pathrs::{Handle, Root};

use crate::error::{Context, Error, Result};

/// Creates `path` (absolute or relative, always taken inside `root`) and any missing parents with
/// `mode`, and returns an `O_PATH` handle on the directory. An existing directory is reused; an
/// existing non-directory is an error.
pub fn mkdir_all(root: &Root, path: &Path, mode: u32) -> Result<Handle> {
    if let Some(h) = probe(root, path, true) {
        return require_dir(h, path);
    }
    // `..` in a path that does not exist yet would need the resolver's clamping rules at every step;
    // leave such paths to pathrs, which handles them (and they are rare: hostile bundles).
    if path.components().any(|c| c == Component::ParentDir) {
        let perm = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(mode);
        return root
            .mkdir_all(path, &perm)
            .ctx(|| format!("create directory {}", path.display()));
    }
    let names: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    // The deepest existing ancestor: walk up until a prefix resolves.
    let mut existing = names.len();
    let mut parent = loop {
        if existing == 0 {
            break root.resolve("/").ctx(|| "resolve the container root")?;
        }
        existing -= 1;
        let prefix: PathBuf = std::iter::once(Component::RootDir.as_os_str())
            .chain(names[..existing].iter().copied())
            .collect();
        if let Some(h) = probe(root, &prefix, true) {
            break require_dir(h, &prefix)?;
        }
    };
    let mut done: PathBuf = std::iter::once(Component::RootDir.as_os_str())
        .chain(names[..existing].iter().copied())
        .collect();
    for name in &names[existing..] {
        match nix::sys::stat::mkdirat(
            Some(parent.as_fd().as_raw_fd()),
            *name,
            Mode::from_bits_truncate(mode),
        ) {
            // EEXIST: created meanwhile, or something else is there; the resolution below decides.
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => {
                return Err(e).ctx(|| format!("create directory {}", done.join(name).display()))
            }
        }
        done.push(name);
        // Resolved again from the root, so a component swapped for a symlink in between is still
        // followed only inside the root.
        parent = require_dir(
            root.resolve(&done)
                .ctx(|| format!("resolve created directory {}", done.display()))?,
            &done,
        )?;
    }
    Ok(parent)
}

/// The kernel's `struct open_how` (openat2(2); libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `path` resolved inside `root` (following a trailing symlink, inside the root, when `follow`), or
/// `None` if it does not resolve. openat2 with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` and `O_PATH`,
/// exactly pathrs' resolution; without openat2 (or if it keeps reporting racing renames with EAGAIN),
/// pathrs' own resolver answers.
pub fn probe(root: &Root, path: &Path, follow: bool) -> Option<Handle> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut flags = libc::O_PATH | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    for _ in 0..16 {
        // SAFETY: openat2 reads the NUL-terminated path and `how`, whose size is passed alongside.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_fd().as_raw_fd(),
                c_path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: openat2 just returned this descriptor and nothing else owns it.
            return Some(Handle::from_fd(unsafe { OwnedFd::from_raw_fd(fd as i32) }));
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) => continue,
            Some(libc::ENOSYS | libc::E2BIG | libc::EPERM) => break,
            _ => return None,
        }
    }
    if follow {
        root.resolve(path).ok()
    } else {
        root.resolve_nofollow(path).ok()
    }
}

fn require_dir(h: Handle, path: &Path) -> Result<Handle> {
    let st = fstat(h.as_fd().as_raw_fd()).ctx(|| format!("stat {}", path.display()))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        return Err(Error::invalid(format!(
            "{} exists in the container root and is not a directory",
            path.display()
        )));
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = Root::open(dir.path()).expect("open root");
        (dir, root)
    }

    #[test]
    fn creates_missing_components_and_reuses_existing_ones() {
        let (dir, root) = root();
        std::fs::create_dir(dir.path().join("a")).expect("mkdir a");
        mkdir_all(&root, Path::new("/a/b/c"), 0o755).expect("mkdir_all");
        assert!(dir.path().join("a/b/c").is_dir());
        mkdir_all(&root, Path::new("/a/b/c"), 0o755).expect("again");
        mkdir_all(&root, Path::new("d"), 0o755).expect("relative");
        assert!(dir.path().join("d").is_dir());
    }

    #[test]
    fn symlinks_are_followed_inside_the_root_only() {
        let (dir, root) = root();
        let outside = tempfile::tempdir().expect("outside");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("esc")).expect("symlink");
        // The link's target is taken inside the root, where it does not exist: refused, like pathrs.
        assert!(mkdir_all(&root, Path::new("/esc/x"), 0o755).is_err());
        let inside = dir
            .path()
            .join(outside.path().strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(&inside).expect("in-root target");
        mkdir_all(&root, Path::new("/esc/x"), 0o755).expect("mkdir through symlink");
        assert!(inside.join("x").is_dir());
        assert!(!outside.path().join("x").exists(), "escaped the root");
        mkdir_all(&root, Path::new("/../../y"), 0o755).expect("dotdot clamps");
        assert!(dir.path().join("y").is_dir());
    }

    #[test]
    fn a_file_in_the_way_is_an_error_and_probe_misses_cleanly() {
        let (dir, root) = root();
        std::fs::write(dir.path().join("f"), "").expect("file");
        assert!(mkdir_all(&root, Path::new("/f"), 0o755).is_err());
        assert!(mkdir_all(&root, Path::new("/f/g"), 0o755).is_err());
        assert!(probe(&root, Path::new("/missing"), true).is_none());
        std::os::unix::fs::symlink("/nowhere", dir.path().join("dangling")).expect("symlink");
        assert!(probe(&root, Path::new("/dangling"), true).is_none());
        assert!(probe(&root, Path::new("/dangling"), false).is_some());
    }
}
