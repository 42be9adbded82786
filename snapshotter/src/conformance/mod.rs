//! The conformance suite every [`Snapshotter`] must pass, modelled on containerd's snapshotter
//! testsuite: each case gets a fresh root from the factory, mounts for real (the caller must be
//! root), and undoes every mount and removes every directory it made even when it fails.
//!
//! Use [`run_all`], or [`snapshotter_conformance!`](crate::snapshotter_conformance) to get one
//! `#[test]` per case:
//!
//! ```ignore
//! berth_snapshotter::snapshotter_conformance!(overlay, |root: &std::path::Path| {
//!     Box::new(berth_snapshotter::overlay::Overlay::open(root).expect("open overlay"))
//!         as Box<dyn berth_snapshotter::Snapshotter>
//! });
//! ```

mod concurrency;
mod layers;
mod lifecycle;

pub use concurrency::*;
pub use layers::*;
pub use lifecycle::*;

use std::cell::Cell;
use std::fmt::Display;
use std::path::{Path, PathBuf};

use crate::{ErrorKind, Labels, Mount, Snapshotter};

/// Makes a snapshotter rooted at the given directory (which may already hold one: reopening).
pub type Factory<'a> = &'a dyn Fn(&Path) -> Box<dyn Snapshotter>;

/// A conformance case.
pub type Case = fn(Factory);

/// Every case, by name.
pub const CASES: &[(&str, Case)] = &[
    ("basic_lifecycle", basic_lifecycle),
    ("stat_active_and_committed", stat_active_and_committed),
    ("remove_twice_and_missing", remove_twice_and_missing),
    ("refusals", refusals),
    ("update_labels", update_labels),
    ("list_everything", list_everything),
    ("keys_are_not_paths", keys_are_not_paths),
    ("reopen_keeps_state", reopen_keeps_state),
    ("parent_chains", parent_chains),
    ("views_are_read_only", views_are_read_only),
    ("deleted_and_changed_files", deleted_and_changed_files),
    ("ownership_and_modes_kept", ownership_and_modes_kept),
    ("usage_figures", usage_figures),
    ("chain_of_128_layers", chain_of_128_layers),
    ("concurrent_prepares_same_key", concurrent_prepares_same_key),
    (
        "concurrent_prepares_other_keys",
        concurrent_prepares_other_keys,
    ),
    ("cleanup_removes_orphans", cleanup_removes_orphans),
];

/// Runs every case in turn; panics naming the first that fails.
pub fn run_all(factory: Factory) {
    for (name, case) in CASES {
        eprintln!("snapshotter conformance: {name}");
        case(factory);
    }
}

/// One `#[test]` per conformance case, in a module named `$module`.
#[macro_export]
macro_rules! snapshotter_conformance {
    ($module:ident, $factory:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::snapshotter_conformance!(@cases $factory;
                basic_lifecycle, stat_active_and_committed, remove_twice_and_missing, refusals,
                update_labels, list_everything, keys_are_not_paths, reopen_keeps_state,
                parent_chains, views_are_read_only, deleted_and_changed_files,
                ownership_and_modes_kept, usage_figures, chain_of_128_layers,
                concurrent_prepares_same_key, concurrent_prepares_other_keys,
                cleanup_removes_orphans);
        }
    };
    (@cases $factory:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::$case(&$factory)
            }
        )*
    };
}

/// Unwrapping with the error in the panic message.
pub trait Must<T> {
    fn must(self, what: impl Display) -> T;
}

impl<T, E: Display> Must<T> for Result<T, E> {
    #[track_caller]
    fn must(self, what: impl Display) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// The kind of the error `r` must be.
#[track_caller]
pub fn err_kind<T: std::fmt::Debug>(r: crate::Result<T>, what: impl Display) -> ErrorKind {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e.kind,
    }
}

pub fn labels(kv: &[(&str, &str)]) -> Labels {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One case's world: a temp dir (its path padded to a realistic length, so mount option
/// strings are as long as in production) with the snapshotter's root inside. Dropping it drops
/// the snapshotter, unmounts anything left under the temp dir and removes it.
pub struct Env {
    // Declared first: dropped before the directory it lives in.
    sn: Option<Box<dyn Snapshotter>>,
    base: PathBuf,
    root: PathBuf,
    seq: Cell<u32>,
}

impl Env {
    pub fn new(factory: Factory) -> Env {
        let base = nix::unistd::mkdtemp("/tmp/berth-conformance-XXXXXX").must("make temp dir");
        let root = base.join("var/lib/berth/snapshots/conformance");
        std::fs::create_dir_all(&root).must("create root");
        let mut env = Env {
            sn: None,
            base,
            root,
            seq: Cell::new(0),
        };
        env.sn = Some(factory(&env.root));
        env
    }

    pub fn sn(&self) -> &dyn Snapshotter {
        self.sn.as_deref().expect("snapshotter is open")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Closes the snapshotter and opens a new one on the same root.
    pub fn reopen(&mut self, factory: Factory) {
        self.sn = None;
        self.sn = Some(factory(&self.root));
    }

    /// Mounts `mounts` on a fresh directory; unmounted when the guard drops.
    pub fn mount(&self, mounts: &[Mount]) -> Mounted {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        let target = self.base.join(format!("mnt-{n}"));
        std::fs::create_dir(&target).must("create mount point");
        if let Err(e) = crate::mount::mount_all(mounts, &target) {
            let _ = std::fs::remove_dir(&target);
            panic!("mount {mounts:?}: {e}");
        }
        Mounted { target }
    }

    /// Prepares `key` on `parent`, lets `write` change it through a mount, commits it as `name`.
    pub fn layer(&self, name: &str, parent: Option<&str>, write: impl FnOnce(&Path)) {
        let key = format!("{name}-active");
        let mounts = self
            .sn()
            .prepare(&key, parent, Labels::new())
            .must("prepare layer");
        {
            let m = self.mount(&mounts);
            write(m.path());
        }
        self.sn()
            .commit(name, &key, Labels::new())
            .must("commit layer");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.sn = None;
        for m in crate::mount::mounts_under(&self.base) {
            if let Err(e) = crate::mount::unmount_all(&m) {
                eprintln!("conformance: {e}");
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.base) {
            eprintln!("conformance: remove {}: {e}", self.base.display());
        }
    }
}

/// A mount made by a case: unmounted, and its mount point removed, on drop.
pub struct Mounted {
    target: PathBuf,
}

impl Mounted {
    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = crate::mount::unmount_all(&self.target) {
            eprintln!("conformance: {e}");
        }
        let _ = std::fs::remove_dir(&self.target);
    }
}

/// Writes `content` to `dir/rel`, creating parent directories.
pub fn put(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).must(format_args!("create {}", parent.display()));
    }
    std::fs::write(&p, content).must(format_args!("write {}", p.display()));
}

/// The content of `dir/rel`, or None if it does not exist.
pub fn get(dir: &Path, rel: &str) -> Option<String> {
    let p = dir.join(rel);
    match std::fs::read_to_string(&p) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("read {}: {e}", p.display()),
    }
}
