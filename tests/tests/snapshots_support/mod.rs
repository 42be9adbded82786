//! Shared by the `snapshots_*` end-to-end tests: running what `ctr snapshots mounts` prints (and
//! undoing it), looking at a snapshotter's directories on disk, and listing snapshots exactly
//! through gRPC (ctr's table cannot show keys with spaces, which unpack uses).

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_api::containerd::services::snapshots::v1 as snapshots;
use berth_tests::grpc::{req, Grpc};
use berth_tests::harness::{mounts_under, Berthd, Ctr};
use berth_tests::image::layered::{walk_tree, Tree};
use berth_tests::image::ImageInfo;
use berth_tests::store::blobs_on_disk;
use nix::mount::{umount2, MntFlags};
use snapshots::snapshots_client::SnapshotsClient;

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

/// The tree of the committed snapshot `parent`, through a view made, mounted and walked with
/// ctr and the shell, then unmounted and removed.
pub fn view_tree(berthd: &Berthd, ctr: &Ctr, sn: &str, parent: &str, view: &str) -> Tree {
    ctr.ok(&sn_args(sn, &["view", view, parent]));
    let target = berthd.temp_dir().join(format!("mnt-{view}"));
    let tree = {
        let mounted = Mounted::by_hand(ctr, sn, &target, view);
        walk_tree(mounted.path()).expect("walk the mounted view")
    };
    assert!(mounts_under(&target).is_empty(), "view {view} still mounted");
    std::fs::remove_dir(&target).expect("remove mount target");
    ctr.ok(&sn_args(sn, &["rm", view]));
    tree
}

/// The numbered snapshot directories of backend `sn` under berthd's root.
pub fn snapshot_dirs(root: &Path, sn: &str) -> BTreeSet<String> {
    let dir = root.join("snapshots").join(sn).join("snapshots");
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
        Err(e) => panic!("list {}: {e}", dir.display()),
    }
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
