//! The content store through `ctr content` and the Write protocol: ingest, list, read, label,
//! remove; commits that do not match what was promised; ingests that stop half way and resume,
//! are aborted, or meet a second writer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_api::containerd::services::content::v1 as api;
use berth_tests::e2e::{self, ctr_with_input, ingest, pseudo_random};
use berth_tests::grpc::{abort_ingest, expect_code, read_blob, req, runtime, Grpc, Ingest};
use berth_tests::image::sha256_digest;
use berth_tests::store::{active_refs, blob_path, blobs_on_disk, content_digests, content_labels};
use tonic::Code;

#[test]
fn ingest_list_get_label_remove() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("blobs");
    let data = pseudo_random(1, 300_000);
    let digest = sha256_digest(&data);
    ingest(&ctr, "first-ref", &data);

    let listing = ctr.ok(&["content", "ls"]);
    let line = listing
        .lines()
        .find(|l| l.starts_with(&digest))
        .unwrap_or_else(|| panic!("{digest} not listed:\n{listing}"));
    assert!(line.contains("300kB"), "size column: {line}");
    assert_eq!(
        std::fs::read(blob_path(&berthd.root, &digest)).expect("blob file"),
        data
    );
    assert!(active_refs(&ctr).is_empty(), "the ingest is done");

    let got = ctr.run(&["content", "get", &digest]);
    assert!(got.status.success());
    assert_eq!(got.stdout, data, "ctr content get returns the bytes");

    ctr.ok(&["content", "label", &digest, "a=1", "b=2"]);
    assert_eq!(content_labels(&ctr)[&digest], "a=1,b=2");
    // Change one, clear the other with an empty value.
    ctr.ok(&["content", "label", &digest, "a=3", "b="]);
    assert_eq!(content_labels(&ctr)[&digest], "a=3");

    // Ingesting the same bytes again is a no-op, not an error (ctr treats AlreadyExists as done).
    ingest(&ctr, "second-ref", &data);
    assert_eq!(content_digests(&ctr).len(), 1);

    let out = ctr.ok(&["content", "rm", &digest]);
    assert_eq!(out.trim(), digest);
    assert!(content_digests(&ctr).is_empty());
    let err = ctr.fails(&["content", "get", &digest]);
    assert!(err.contains("not found"), "{err}");
    // The file goes with the collection that follows a delete, soon after.
    let deadline = Instant::now() + Duration::from_secs(10);
    while blob_path(&berthd.root, &digest).exists() {
        assert!(
            Instant::now() < deadline,
            "blob still on disk 10 s after its delete"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn commit_with_wrong_digest_or_size_is_refused_and_leaves_nothing() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("strict");
    let data = b"the real bytes\n";
    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = ctr_with_input(
        &ctr,
        &[
            "content",
            "ingest",
            "--expected-digest",
            &wrong,
            "bad-digest",
        ],
        data,
    );
    assert!(!out.status.success(), "a wrong digest was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unexpected commit digest") && err.contains("failed precondition"),
        "{err}"
    );

    let out = ctr_with_input(
        &ctr,
        &["content", "ingest", "--expected-size", "3", "bad-size"],
        data,
    );
    assert!(!out.status.success(), "a wrong size was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("size"), "{err}");

    // Nothing is visible: not listed, not readable, not on disk.
    assert!(content_digests(&ctr).is_empty());
    let err = ctr.fails(&["content", "get", &sha256_digest(data)]);
    assert!(err.contains("not found"), "{err}");
    assert!(blobs_on_disk(&berthd.root).is_empty());

    // The refused ingests stay for the client to retry or abort.
    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        let refused = active_refs(&ctr);
        assert!(refused.contains("bad-digest"), "{refused:?}");
        for r in refused {
            abort_ingest(&grpc, "strict", &r)
                .await
                .expect("abort refused ingest");
        }
    });
    assert!(active_refs(&ctr).is_empty());
    let ingests = berthd.root.join("content").join("ingest");
    assert_eq!(
        std::fs::read_dir(&ingests).expect("ingest dir").count(),
        0,
        "aborted ingests left files"
    );
}

#[test]
fn interrupted_ingest_resumes_from_its_offset() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("resume");
    let data = pseudo_random(2, 3 << 20);
    let digest = sha256_digest(&data);
    let half = data.len() / 2;
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&berthd.address))
        .expect("connect");

    rt.block_on(async {
        let mut first = Ingest::open(&grpc, "resume", None, "layer-upload")
            .await
            .expect("open ingest");
        let st = first.stat().await.expect("stat");
        assert_eq!(st.offset, 0);
        first.write(0, &data[..half]).await.expect("first half");
        // The client goes away without committing.
        drop(first);
    });

    let listing = ctr.ok(&["content", "active"]);
    assert!(listing.contains("layer-upload"), "{listing}");
    assert!(content_digests(&ctr).is_empty(), "nothing committed yet");

    rt.block_on(async {
        let st = grpc
            .content()
            .status(req(
                "resume",
                api::StatusRequest {
                    r#ref: "layer-upload".into(),
                },
            ))
            .await
            .expect("status")
            .into_inner()
            .status
            .expect("status in reply");
        assert_eq!(st.offset, half as i64);

        // A new stream on the same ref picks up where the first stopped.
        let (mut second, offset) = Ingest::resume(&grpc, "resume", None, "layer-upload")
            .await
            .expect("reopen ingest");
        assert_eq!(offset, half as i64, "resumed offset");
        let done = second
            .commit(
                offset,
                &data[half..],
                data.len() as i64,
                &digest,
                HashMap::new(),
            )
            .await
            .expect("commit the rest");
        assert_eq!(done.digest, digest);
        assert_eq!(done.offset, data.len() as i64);
        assert_eq!(
            read_blob(&grpc, "resume", &digest).await.expect("read"),
            data
        );
    });
    assert!(active_refs(&ctr).is_empty());
    assert!(content_digests(&ctr).contains(&digest));
}

#[test]
fn abort_discards_an_ingest() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("abort");
    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        let mut w = Ingest::open(&grpc, "abort", None, "doomed")
            .await
            .expect("open ingest");
        w.write(0, b"half a blob").await.expect("write");
        drop(w);
        assert!(active_refs(&ctr).contains("doomed"));

        abort_ingest(&grpc, "abort", "doomed").await.expect("abort");
        let res = grpc
            .content()
            .status(req(
                "abort",
                api::StatusRequest {
                    r#ref: "doomed".into(),
                },
            ))
            .await;
        expect_code(res, Code::NotFound);
        // Aborting again: there is nothing left to abort.
        let res = grpc
            .content()
            .abort(req(
                "abort",
                api::AbortRequest {
                    r#ref: "doomed".into(),
                },
            ))
            .await;
        expect_code(res, Code::NotFound);
    });
    assert!(active_refs(&ctr).is_empty());
    assert!(content_digests(&ctr).is_empty());
    let ingests = berthd.root.join("content").join("ingest");
    assert_eq!(std::fs::read_dir(&ingests).expect("ingest dir").count(), 0);
}

#[test]
fn second_writer_on_a_live_ref_is_unavailable() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        let mut first = Ingest::open(&grpc, "busy", None, "shared-ref")
            .await
            .expect("open first writer");
        first.write(0, b"0123456789").await.expect("write");

        let mut second = Ingest::open(&grpc, "busy", None, "shared-ref")
            .await
            .expect("open second stream");
        let msg = expect_code(second.stat().await, Code::Unavailable);
        assert!(msg.contains("shared-ref"), "{msg}");

        // The first writer is unharmed and commits.
        let data = b"0123456789abcdef";
        let done = first
            .commit(10, &data[10..], 16, &sha256_digest(data), HashMap::new())
            .await
            .expect("first writer commits");
        assert_eq!(done.digest, sha256_digest(data));
    });
}
