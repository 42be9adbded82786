//! Crash safety: berthd is killed with SIGKILL in the middle of a stream of content writes and
//! image creates and updates, then restarted on the same root. Everything it acknowledged is there,
//! every object is whole (each image's target is a real blob of the recorded size, each blob's
//! bytes hash to its digest), nothing half written is visible, and the ingests the crash cut
//! short can be resumed or aborted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_api::containerd::services::content::v1 as content;
use berth_api::containerd::services::images::v1 as images;
use berth_api::containerd::types::Descriptor;
use berth_tests::e2e::{self, pseudo_random};
use berth_tests::grpc::{abort_ingest, read_blob, req, runtime, Grpc, Ingest};
use berth_tests::image::sha256_digest;
use berth_tests::store::{active_refs, blob_path, blobs_on_disk, content_digests};
use prost_types::FieldMask;
use tonic::Status;

const NS: &str = "crash";
const MEDIA_TYPE: &str = "application/vnd.berth.test.blob";
/// Small chunks, so the kill is likely to land inside an ingest.
const CHUNK: usize = 64 << 10;

/// The bytes of the worker's `i`th blob: sizes vary from a few bytes to ~700 KiB.
fn blob_data(i: usize) -> Vec<u8> {
    let len = 7 + (i * 104_729) % (700 << 10);
    pseudo_random(1000 + i as u64, len)
}

fn blob_ref(i: usize) -> String {
    format!("blob-{i}")
}

/// What the daemon acknowledged before it died.
#[derive(Default, Debug)]
struct Acked {
    blobs: BTreeSet<String>,
    /// Image name to the targets it may have: the last acknowledged one, or a newer one whose
    /// update was in flight.
    images: BTreeMap<String, Vec<String>>,
}

async fn write_chunked(grpc: &Grpc, i: usize) -> Result<String, Status> {
    let data = blob_data(i);
    let digest = sha256_digest(&data);
    let mut w = Ingest::open(grpc, NS, None, &blob_ref(i)).await?;
    let mut off = 0;
    while data.len() - off > CHUNK {
        w.write(off as i64, &data[off..off + CHUNK]).await?;
        off += CHUNK;
    }
    w.commit(
        off as i64,
        &data[off..],
        data.len() as i64,
        &digest,
        HashMap::new(),
    )
    .await?;
    Ok(digest)
}

fn target(digest: &str, size: usize) -> Option<Descriptor> {
    Some(Descriptor {
        media_type: MEDIA_TYPE.into(),
        digest: digest.into(),
        size: size as i64,
        annotations: HashMap::new(),
    })
}

/// Writes blobs and creates images pointing at them, and every third round moves an older image
/// to the new blob, until the daemon goes away. Records what was acknowledged.
async fn workload(grpc: Grpc, progress: Arc<AtomicUsize>) -> Acked {
    let mut acked = Acked::default();
    for i in 0.. {
        let Ok(digest) = write_chunked(&grpc, i).await else {
            break;
        };
        acked.blobs.insert(digest.clone());
        let size = blob_data(i).len();
        let name = format!("docker.io/berth/crash:{i}");
        let created = grpc
            .images()
            .create(req(
                NS,
                images::CreateImageRequest {
                    image: Some(images::Image {
                        name: name.clone(),
                        target: target(&digest, size),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ))
            .await;
        if created.is_err() {
            break;
        }
        acked.images.insert(name, vec![digest.clone()]);
        if i >= 2 && i % 3 == 2 {
            let older = format!("docker.io/berth/crash:{}", i - 2);
            acked
                .images
                .get_mut(&older)
                .expect("older image acknowledged")
                .push(digest.clone());
            let updated = grpc
                .images()
                .update(req(
                    NS,
                    images::UpdateImageRequest {
                        image: Some(images::Image {
                            name: older.clone(),
                            target: target(&digest, size),
                            ..Default::default()
                        }),
                        update_mask: Some(FieldMask {
                            paths: vec!["target".into()],
                        }),
                        ..Default::default()
                    },
                ))
                .await;
            if updated.is_err() {
                break;
            }
            // Acknowledged: only the new target is right now.
            acked.images.insert(older, vec![digest]);
        }
        progress.store(i + 1, Ordering::SeqCst);
    }
    acked
}

#[test]
fn kill_9_mid_writes_leaves_every_object_whole() {
    let Some(mut berthd) = e2e::berthd() else {
        return;
    };
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&berthd.address))
        .expect("connect");

    // Two ingests the crash will cut short, at a known point.
    let held_data = pseudo_random(77, 1 << 20);
    // Kept open: the daemon dies with these streams live.
    let held: Vec<Ingest> = rt.block_on(async {
        let mut held = Vec::new();
        for r in ["held-resume", "held-abort"] {
            let mut w = Ingest::open(&grpc, NS, None, r).await.expect("open");
            w.write(0, &held_data[..300_000]).await.expect("write");
            held.push(w);
        }
        held
    });

    let progress = Arc::new(AtomicUsize::new(0));
    let socket = berthd.address.clone();
    let seen = progress.clone();
    let worker = std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async move {
            let grpc = Grpc::connect(&socket).await.expect("worker connect");
            workload(grpc, seen).await
        })
    });

    // A different point each run; printed so a failure can be reproduced.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos() as usize;
    let kill_after = 4 + nanos % 24;
    eprintln!("killing berthd after {kill_after} rounds");
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::SeqCst) < kill_after {
        assert!(Instant::now() < deadline, "workload stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Somewhere inside the next round (a round takes tens of milliseconds).
    std::thread::sleep(Duration::from_micros((nanos / 24 % 40_000) as u64));
    berthd.kill9();
    let acked = worker.join().expect("worker thread");
    assert!(acked.blobs.len() >= kill_after);
    drop(held);
    drop(grpc);

    berthd.restart().expect("restart on the same root");
    let ctr = berthd.ctr(NS);
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&berthd.address))
        .expect("connect");
    let listed = content_digests(&ctr);

    rt.block_on(async {
        // Everything acknowledged survived.
        for d in &acked.blobs {
            assert!(listed.contains(d), "acknowledged blob {d} lost");
        }
        let imgs = grpc
            .images()
            .list(req(NS, images::ListImagesRequest::default()))
            .await
            .expect("list images")
            .into_inner()
            .images;
        let names: BTreeSet<&str> = imgs.iter().map(|i| i.name.as_str()).collect();
        for name in acked.images.keys() {
            assert!(
                names.contains(name.as_str()),
                "acknowledged image {name} lost"
            );
        }

        // Every listed blob is whole.
        let mut sizes = HashMap::new();
        for d in &listed {
            let info = grpc
                .content()
                .info(req(NS, content::InfoRequest { digest: d.clone() }))
                .await
                .expect("info")
                .into_inner()
                .info
                .expect("info");
            let bytes = read_blob(&grpc, NS, d).await.expect("read listed blob");
            assert_eq!(bytes.len() as i64, info.size, "{d}: size differs");
            assert_eq!(&sha256_digest(&bytes), d, "{d}: bytes do not hash to it");
            sizes.insert(d.clone(), info.size);
        }

        // Every image is a whole record pointing at a whole blob; acknowledged updates hold,
        // the one in flight is all old or all new.
        for img in &imgs {
            let t = img.target.as_ref().expect("image has a target");
            assert_eq!(t.media_type, MEDIA_TYPE, "{}", img.name);
            assert_eq!(
                sizes.get(&t.digest),
                Some(&t.size),
                "{}: target {} is not a listed blob of its size",
                img.name,
                t.digest
            );
            if let Some(allowed) = acked.images.get(&img.name) {
                assert!(
                    allowed.contains(&t.digest),
                    "{}: target {} is neither the acknowledged nor the in-flight one",
                    img.name,
                    t.digest
                );
            }
        }
    });

    // No half-written blob is visible on disk: every file holds the bytes its name promises.
    for d in blobs_on_disk(&berthd.root) {
        let bytes = std::fs::read(blob_path(&berthd.root, &d)).expect("read blob file");
        assert_eq!(sha256_digest(&bytes), d, "blob file {d} is not whole");
    }

    // The ingests cut short: the held ones and the worker's in-flight one, if it had begun.
    let active = active_refs(&ctr);
    eprintln!("ingests after the crash: {active:?}");
    assert!(
        active.contains("held-resume") && active.contains("held-abort"),
        "{active:?}"
    );
    rt.block_on(async {
        for r in &active {
            let data = match r.as_str() {
                "held-resume" | "held-abort" => held_data.clone(),
                other => {
                    let i: usize = other
                        .strip_prefix("blob-")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| panic!("unexpected ingest {other}"));
                    blob_data(i)
                }
            };
            if r == "held-abort" {
                abort_ingest(&grpc, NS, r).await.expect("abort after crash");
                continue;
            }
            let (mut w, offset) = Ingest::resume(&grpc, NS, None, r)
                .await
                .expect("reopen after crash");
            let off = usize::try_from(offset).expect("offset");
            assert!(off <= data.len(), "{r}: offset {off} beyond its data");
            let digest = sha256_digest(&data);
            let done = w
                .commit(
                    offset,
                    &data[off..],
                    data.len() as i64,
                    &digest,
                    HashMap::new(),
                )
                .await
                .unwrap_or_else(|s| panic!("{r}: resume after crash: {s:?}"));
            assert_eq!(done.digest, digest);
            assert_eq!(read_blob(&grpc, NS, &digest).await.expect("read"), data);
        }
    });
    assert!(active_refs(&ctr).is_empty(), "ingests left");

    // After a collection nothing is on disk that no namespace lists: a blob the crash left
    // unrecorded is cleaned up rather than leaked.
    e2e::collect_garbage(&ctr);
    assert_eq!(blobs_on_disk(&berthd.root), content_digests(&ctr));
    // And it serves writes again.
    rt.block_on(async {
        let d = berth_tests::grpc::write_blob(&grpc, NS, None, "after", b"after the crash")
            .await
            .expect("write after restart");
        assert_eq!(d, sha256_digest(b"after the crash"));
    });
}
