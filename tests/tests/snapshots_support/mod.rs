//! Shared by the `snapshots_*` end-to-end tests: running what `ctr snapshots mounts` prints (and
//! undoing it), looking at a snapshotter's directories on disk, and listing snapshots exactly
//! through gRPC (ctr's table cannot show keys with spaces, which unpack uses).

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_api::containerd::services::leases::v1 as leases;
use berth_api::containerd::services::snapshots::v1 as snapshots;
use berth_tests::grpc::{req, runtime, Grpc};
use berth_tests::harness::{mounts_under, Berthd, Ctr};
use berth_tests::image::layered::{walk_tree, Tree};
use berth_tests::image::ImageInfo;
use berth_tests::store::blobs_on_disk;
use nix::mount::{umount2, MntFlags};
use snapshots::snapshots_client::SnapshotsClient;

/// `ctr snapshots ls` as key to (parent, kind); keys here have no spaces.
pub fn ls(ctr: &Ctr) -> BTreeMap<String, (String, String)> {
    ctr.ok(&["snapshots", "ls"])
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            match cols.as_slice() {
                [key, kind] => (key.to_string(), (String::new(), kind.to_string())),
                [key, parent, kind] => (key.to_string(), (parent.to_string(), kind.to_string())),
                _ => panic!("unexpected ctr snapshots ls row {l:?}"),
            }
        })
        .collect()
}

/// `ctr snapshots --snapshotter SN` followed by `args`.
pub fn sn_args<'a>(sn: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut out = vec!["snapshots", "--snapshotter", sn];
    out.extend_from_slice(args);
    out
}

/// What `ctr snapshots mounts` printed, run by a shell, mounted at `target` until drop.
pub struct Mounted {
    target: PathBuf,
}

impl Mounted {
    /// Runs `sh -c "$(ctr snapshots --snapshotter SN mounts TARGET KEY)"` as a user would.
    /// The guard exists before the mount runs, so a half-done mount is undone too.
    pub fn by_hand(ctr: &Ctr, sn: &str, target: &Path, key: &str) -> Mounted {
        std::fs::create_dir_all(target).expect("create mount target");
        let target_str = target.to_str().expect("utf-8 mount target");
        let script = ctr.ok(&sn_args(sn, &["mounts", target_str, key]));
        assert!(
            script.starts_with("mount -t "),
            "ctr snapshots mounts printed no mount command:\n{script}"
        );
        let guard = Mounted {
            target: target.to_path_buf(),
        };
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "mounting {key:?} failed ({}): {script}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !mounts_under(target).is_empty(),
            "{script} mounted nothing at {target_str}"
        );
        guard
    }

    /// Guards a mount someone else makes at `target` (`ctr images mount`).
    pub fn adopt(target: &Path) -> Mounted {
        Mounted {
            target: target.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for _ in 0..3 {
            let mounts = mounts_under(&self.target);
            if mounts.is_empty() {
                return;
            }
            for m in mounts {
                if let Err(e) = umount2(&m, MntFlags::empty()) {
                    eprintln!("unmount {}: {e}; detaching", m.display());
                    let _ = umount2(&m, MntFlags::MNT_DETACH);
                }
            }
        }
    }
}

/// Adds the snapshot `key` of backend `sn` to `lease` (which must exist), through the Leases
/// gRPC. A lease may name a snapshot before it exists: tests hold the views they make with
/// `ctr snapshots view` this way first, because ctr gives views no gc.root label (unlike
/// prepare and commit), so a collection scheduled by an earlier delete (`ctr images import`
/// drops two leases on its way out) could otherwise remove a view while a test walks it, as
/// it could with containerd.
pub async fn hold(grpc: &Grpc, ns: &str, lease: &str, sn: &str, key: &str) {
    grpc.leases()
        .add_resource(req(
            ns,
            leases::AddResourceRequest {
                id: lease.into(),
                resource: Some(leases::Resource {
                    id: key.into(),
                    r#type: format!("snapshots/{sn}"),
                }),
            },
        ))
        .await
        .expect("add snapshot to lease");
}

/// Makes views of committed snapshots with ctr, mounts them the way a user would and walks
/// them. Its views are held by a lease of their own (see [`hold`]).
pub struct Viewer<'a> {
    berthd: &'a Berthd,
    ctr: Ctr,
    rt: tokio::runtime::Runtime,
    grpc: Grpc,
}

/// The lease that holds a [`Viewer`]'s views.
pub const VIEW_LEASE: &str = "berth-tests-views";

impl<'a> Viewer<'a> {
    pub fn new(berthd: &'a Berthd, ns: &str) -> Viewer<'a> {
        let ctr = berthd.ctr(ns);
        ctr.ok(&["leases", "create", "--id", VIEW_LEASE, "-x", "0"]);
        let rt = runtime();
        let grpc = rt
            .block_on(Grpc::connect(&berthd.address))
            .expect("connect");
        Viewer {
            berthd,
            ctr,
            rt,
            grpc,
        }
    }

    /// The tree of the committed snapshot `parent`, through a view named `view` made with
    /// `ctr snapshots view`, mounted by hand, walked, unmounted and removed.
    pub fn tree(&self, sn: &str, parent: &str, view: &str) -> Tree {
        let ns = self.ctr.namespace.clone();
        self.rt
            .block_on(hold(&self.grpc, &ns, VIEW_LEASE, sn, view));
        self.ctr.ok(&sn_args(sn, &["view", view, parent]));
        let target = self.berthd.temp_dir().join(format!("mnt-{view}"));
        let tree = {
            let mounted = Mounted::by_hand(&self.ctr, sn, &target, view);
            walk_tree(mounted.path()).expect("walk the mounted view")
        };
        assert!(
            mounts_under(&target).is_empty(),
            "view {view} still mounted"
        );
        std::fs::remove_dir(&target).expect("remove mount target");
        self.ctr.ok(&sn_args(sn, &["rm", view]));
        tree
    }
}

/// Everything in backend `sn`'s snapshot directory under berthd's root: layer directories
/// (numbered) and any being built (`tmp-*`) or on their way out (`rm-*`, removed by the next
/// collection). Not the overlay's spares (`spare-*`: a few empty directories kept ready for the
/// next prepares, never snapshots).
pub fn snapshot_entries(root: &Path, sn: &str) -> BTreeSet<String> {
    let dir = root.join("snapshots").join(sn).join("snapshots");
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("spare-"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
        Err(e) => panic!("list {}: {e}", dir.display()),
    }
}

/// The layer directories of backend `sn`: the numbered ones, one per snapshot.
pub fn snapshot_dirs(root: &Path, sn: &str) -> BTreeSet<String> {
    snapshot_entries(root, sn)
        .into_iter()
        .filter(|name| name.parse::<u64>().is_ok())
        .collect()
}

/// Every snapshot of `sn` in namespace `ns`, through the Snapshots gRPC List.
pub async fn list(grpc: &Grpc, ns: &str, sn: &str) -> Vec<snapshots::Info> {
    let mut stream = SnapshotsClient::new(grpc.channel.clone())
        .list(req(
            ns,
            snapshots::ListSnapshotsRequest {
                snapshotter: sn.into(),
                filters: Vec::new(),
            },
        ))
        .await
        .expect("list snapshots")
        .into_inner();
    let mut out = Vec::new();
    while let Some(batch) = stream.message().await.expect("list snapshots stream") {
        out.extend(batch.info);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Names of the committed snapshots among `infos`.
pub fn committed(infos: &[snapshots::Info]) -> Vec<String> {
    infos
        .iter()
        .filter(|i| i.kind == snapshots::Kind::Committed as i32)
        .map(|i| i.name.clone())
        .collect()
}

/// Asserts nothing is mounted under berthd's temp dir (the tests' mount targets live there).
pub fn assert_no_mounts(berthd: &Berthd) {
    let left = mounts_under(berthd.temp_dir());
    assert!(left.is_empty(), "mounts left behind: {left:?}");
}

/// The blobs an imported image keeps: manifest, config and layers.
pub fn image_blobs(image: &ImageInfo) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = image.layer_digests.iter().cloned().collect();
    out.insert(image.manifest_digest.clone());
    out.insert(image.config_digest.clone());
    out
}

/// Waits until berthd's background collector has run after an import: `ctr images import`
/// drops its lease on the way out, which schedules a collection that removes the OCI index
/// blob (nothing references it). Until then a snapshot that nothing holds, such as a view made
/// with `ctr snapshots view` (ctr gives views no gc.root label, unlike prepare and commit),
/// could be collected under the test's feet, as it could with containerd.
pub fn wait_for_collection(root: &Path, keep: &BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let extra: Vec<String> = blobs_on_disk(root).difference(keep).cloned().collect();
        if extra.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "background collection never removed {extra:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The busybox test image as an OCI tarball in a temp dir of its own, removed with it.
pub struct BusyboxTar {
    _work: tempfile::TempDir,
    pub path: PathBuf,
    pub image: ImageInfo,
}

impl BusyboxTar {
    pub fn new(name: &str) -> BusyboxTar {
        let work = tempfile::tempdir().expect("work dir");
        let path = work.path().join("busybox.tar");
        let image = berth_tests::image::busybox_oci_tar(&path, name).expect("busybox image");
        BusyboxTar {
            _work: work,
            path,
            image,
        }
    }

    /// The path as a ctr argument.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }
}
