//! The overlayfs snapshotter (clients call it `overlayfs`), laid out and mounted like
//! containerd's: each snapshot's `fs/` is one layer; an active snapshot with parents is an
//! `overlay` mount of its `fs/` (upper) over its ancestors' (lower, nearest first); a snapshot
//! without parents, or a view of one parent, is a bind mount. Committing keeps the layer in place.
//!
//! Mounts are performed by other processes (`ctr` reads an image's `/etc/group` through them, the
//! shim mounts the rootfs), with a plain `mount(2)` whose data is limited to one page. Absolute
//! lowerdir paths of 128 layers do not fit a page under a realistic root (about 55 bytes each
//! under `/var/lib/berth/snapshots/overlayfs`). So when the plain form does not fit, lowerdirs
//! name layers through an *alias*: one symlink at a short absolute path (by default
//! `/run/berth-l/<6 chars from a hash of the root>`) to `<root>/snapshots`, making each entry
//! about 30 bytes. The alias is made at open (it lives on tmpfs and is rebuilt at every start)
//! and removed when the snapshotter is dropped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::mount::page_size;
use crate::storage::{remove_dir_logged, usage, DirSpec, Snapshot, Store};
use crate::{Error, Info, Kind, Labels, Mount, Result, Snapshotter, Usage};

pub const NAME: &str = "overlayfs";

/// Where aliases live unless told otherwise.
pub const DEFAULT_ALIAS_DIR: &str = "/run/berth-l";

pub struct Overlay {
    store: Store,
    layout: Layout,
}

/// Everything needed to turn a snapshot into its mounts.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `<root>/snapshots`, absolute.
    pub snapshots: PathBuf,
    /// A short symlink to `snapshots`, used when plain lowerdir paths do not fit a page.
    pub alias: Option<PathBuf>,
    /// Add `index=off` (as containerd does wherever the kernel knows the option).
    pub index_off: bool,
}

/// Can overlay be mounted with layers on `root`'s filesystem (creating `root` if needed)?
/// Tried for real with two lower layers, as containerd does.
pub fn supported(root: &Path) -> bool {
    match try_overlay(root) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("overlayfs is not usable under {}: {e}", root.display());
            false
        }
    }
}

fn try_overlay(root: &Path) -> Result<()> {
    std::fs::create_dir_all(root)
        .map_err(|e| Error::io(format_args!("create {}", root.display()), e))?;
    let dir = nix::unistd::mkdtemp(&root.join("overlay-check-XXXXXX"))?;
    let result = (|| {
        for d in ["lower1", "lower2", "upper", "work", "merged"] {
            std::fs::create_dir(dir.join(d))
                .map_err(|e| Error::io(format_args!("create {}", dir.join(d).display()), e))?;
        }
        let p = |d: &str| dir.join(d).display().to_string();
        let m = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: vec![
                format!("workdir={}", p("work")),
                format!("upperdir={}", p("upper")),
                format!("lowerdir={}:{}", p("lower2"), p("lower1")),
            ],
        };
        crate::mount::mount(&m, &dir.join("merged"))?;
        crate::mount::unmount(&dir.join("merged"))
    })();
    remove_dir_logged(&dir);
    result
}

/// The default alias path for a root: short, and distinct for distinct roots.
pub fn default_alias(root: &Path) -> PathBuf {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in root.as_os_str().as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let name: String = (0..6)
        .map(|i| DIGITS[((h >> (i * 10)) % 36) as usize] as char)
        .collect();
    Path::new(DEFAULT_ALIAS_DIR).join(name)
}

impl Overlay {
    /// Opens the snapshotter at `root` with its alias at [`default_alias`].
    pub fn open(root: &Path) -> Result<Overlay> {
        let root = absolute_root(root)?;
        let alias = default_alias(&root);
        Self::open_with_alias(&root, Some(&alias))
    }

    /// Opens the snapshotter at `root`; `alias` is where the short symlink to its snapshots
    /// goes (`None`: no alias, so very long chains cannot be mounted).
    pub fn open_with_alias(root: &Path, alias: Option<&Path>) -> Result<Overlay> {
        let root = absolute_root(root)?;
        let mut store = Store::open(&root)?;
        store.keep_spares(ACTIVE_DIRS.to_vec())?;
        let snapshots = store.snapshots_dir().to_path_buf();
        let alias = alias.and_then(|a| match make_alias(a, &snapshots) {
            Ok(()) => Some(a.to_path_buf()),
            Err(e) => {
                tracing::warn!(
                    "overlay alias {}: {e}; long chains will not mount",
                    a.display()
                );
                None
            }
        });
        Ok(Overlay {
            store,
            layout: Layout {
                snapshots,
                alias,
                index_off: Path::new("/sys/module/overlay/parameters/index").exists(),
            },
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn create(
        &self,
        kind: Kind,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
    ) -> Result<Vec<Mount>> {
        let snapshots = &self.layout.snapshots;
        let snap =
            self.store
                .create_empty(kind, key, parent, labels, dirs_of(kind), |parents| {
                    // The merged root takes its owner from the upper dir: keep the parent's.
                    let Some(p) = parents.first() else {
                        return Ok(None);
                    };
                    let pfs = snapshots.join(p.to_string()).join("fs");
                    let md = std::fs::symlink_metadata(&pfs)
                        .map_err(|e| Error::io(format_args!("stat {}", pfs.display()), e))?;
                    Ok(Some((md.uid(), md.gid())))
                })?;
        mounts_for(&self.layout, key, &snap)
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Some(a) = &self.layout.alias {
            if std::fs::read_link(a).is_ok_and(|t| t == self.layout.snapshots) {
                let _ = std::fs::remove_file(a);
                if let Some(parent) = a.parent() {
                    // Only succeeds when no other snapshotter has an alias there.
                    let _ = std::fs::remove_dir(parent);
                }
            }
        }
    }
}

/// An active snapshot's directories: the upper layer and overlay's work dir.
pub(crate) const ACTIVE_DIRS: [DirSpec; 2] = [
    DirSpec {
        name: "fs",
        mode: 0o755,
    },
    DirSpec {
        name: "work",
        mode: 0o711,
    },
];

/// What a new snapshot of `kind` is made of: a view needs no work dir.
fn dirs_of(kind: Kind) -> &'static [DirSpec] {
    match kind {
        Kind::Active => &ACTIVE_DIRS,
        _ => &ACTIVE_DIRS[..1],
    }
}

fn absolute_root(root: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(root)
        .map_err(|e| Error::io(format_args!("create {}", root.display()), e))?;
    let abs = std::fs::canonicalize(root)
        .map_err(|e| Error::io(format_args!("resolve {}", root.display()), e))?;
    let text = abs.to_str().unwrap_or(",");
    // Overlay's option syntax separates with `,` and `:`; containerd does not escape them either.
    if text.contains([',', ':']) {
        return Err(Error::invalid(format!(
            "overlay root {}: path must not contain ',' or ':'",
            abs.display()
        )));
    }
    Ok(abs)
}

/// Points `alias` at `target`, replacing a stale link atomically (never a non-symlink).
fn make_alias(alias: &Path, target: &Path) -> Result<()> {
    if std::fs::read_link(alias).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let parent = alias
        .parent()
        .ok_or_else(|| Error::invalid("alias has no parent"))?;
    prune_dangling(parent);
    let tmp = parent.join(format!(
        ".{}.{}",
        alias
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("alias"),
        std::process::id()
    ));
    // A concurrent drop of another snapshotter may remove the (empty) parent between the
    // create and the symlink: try again once.
    for attempt in 0..2 {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format_args!("create {}", parent.display()), e))?;
        let _ = std::fs::remove_file(&tmp);
        match std::os::unix::fs::symlink(target, &tmp) {
            Ok(()) => break,
            Err(e) if attempt == 0 && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format_args!("symlink {}", tmp.display()), e)),
        }
    }
    if let Ok(md) = std::fs::symlink_metadata(alias) {
        if !md.file_type().is_symlink() {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::precondition(format!(
                "{}: exists and is not a symlink",
                alias.display()
            )));
        }
    }
    std::fs::rename(&tmp, alias)
        .map_err(|e| Error::io(format_args!("rename to {}", alias.display()), e))
}

/// Removes the aliases in `dir` whose roots are gone. A snapshotter that is killed (SIGKILL, a
/// crash) never drops its alias; with its root deleted too (test and benchmark roots are temp
/// dirs) the alias would stay on /run until reboot. An alias whose target exists is kept: it
/// may belong to a daemon that is running.
fn prune_dangling(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
        // `exists` follows the link: false when its target is gone.
        if is_link && !path.exists() {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::debug!("removed stale overlay alias {}", path.display()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => tracing::warn!("remove stale alias {}: {err}", path.display()),
            }
        }
    }
}

/// The mounts of an active snapshot or view, as containerd's overlay snapshotter gives them.
pub fn mounts_for(layout: &Layout, key: &str, snap: &Snapshot) -> Result<Vec<Mount>> {
    let fs = |id: u64| layout.snapshots.join(id.to_string()).join("fs");
    let bind = |path: PathBuf, ro: bool| Mount {
        kind: "bind".into(),
        source: path.display().to_string(),
        target: String::new(),
        options: vec![if ro { "ro" } else { "rw" }.into(), "rbind".into()],
    };
    match (snap.kind, snap.parent_ids.as_slice()) {
        (Kind::Committed, _) => {
            return Err(Error::precondition(format!(
                "snapshot {key:?}: committed, only active snapshots and views have mounts"
            )))
        }
        (kind, []) => return Ok(vec![bind(fs(snap.id), kind == Kind::View)]),
        (Kind::View, [only]) => return Ok(vec![bind(fs(*only), true)]),
        _ => {}
    }
    let mut options = Vec::new();
    if layout.index_off {
        options.push("index=off".to_string());
    }
    if snap.kind == Kind::Active {
        let dir = layout.snapshots.join(snap.id.to_string());
        options.push(format!("workdir={}", dir.join("work").display()));
        options.push(format!("upperdir={}", dir.join("fs").display()));
    }
    let lowerdir = |base: &Path| {
        let dirs: Vec<String> = snap
            .parent_ids
            .iter()
            .map(|id| format!("{}/{id}/fs", base.display()))
            .collect();
        format!("lowerdir={}", dirs.join(":"))
    };
    let fits = |opts: &[String], lower: &str| {
        opts.iter().map(|o| o.len() + 1).sum::<usize>() + lower.len() < page_size()
    };
    let mut lower = lowerdir(&layout.snapshots);
    if !fits(&options, &lower) {
        let alias = layout.alias.as_deref().ok_or_else(|| too_long(key, snap))?;
        lower = lowerdir(alias);
        if !fits(&options, &lower) {
            return Err(too_long(key, snap));
        }
    }
    options.push(lower);
    Ok(vec![Mount {
        kind: "overlay".into(),
        source: "overlay".into(),
        target: String::new(),
        options,
    }])
}

fn too_long(key: &str, snap: &Snapshot) -> Error {
    Error::exhausted(format!(
        "snapshot {key:?}: {} parent layers do not fit in one overlay mount",
        snap.parent_ids.len()
    ))
}

impl Snapshotter for Overlay {
    fn name(&self) -> &str {
        NAME
    }

    fn stat(&self, key: &str) -> Result<Info> {
        self.store.stat(key)
    }

    fn update(&self, key: &str, labels: Labels, paths: &[String]) -> Result<Info> {
        self.store.update(key, labels, paths)
    }

    fn usage(&self, key: &str) -> Result<Usage> {
        self.store.usage(key)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        mounts_for(&self.layout, key, &self.store.snapshot(key)?)
    }

    fn prepare(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>> {
        self.create(Kind::Active, key, parent, labels)
    }

    fn view(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>> {
        self.create(Kind::View, key, parent, labels)
    }

    fn commit(&self, name: &str, key: &str, labels: Labels) -> Result<()> {
        let snapshots = &self.layout.snapshots;
        let snap = self.store.commit(name, key, labels, |s| {
            usage::disk_usage(&snapshots.join(s.id.to_string()).join("fs"))
        })?;
        // A committed layer is only ever a lowerdir: its work dir is dead weight.
        remove_dir_logged(&snapshots.join(snap.id.to_string()).join("work"));
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<()> {
        self.store.remove(key).map(|_| ())
    }

    fn list(&self) -> Result<Vec<Info>> {
        self.store.list()
    }

    fn cleanup(&self) -> Result<()> {
        self.store.cleanup()?;
        for (_, rec) in self.store.records()? {
            if rec.kind() == Kind::Committed {
                let work = self.store.dir(rec.id).join("work");
                if work.exists() {
                    remove_dir_logged(&work);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
