//! Leases through `ctr leases` and the `containerd-lease` header: content and ingests written
//! under a lease survive garbage collection for as long as the lease does, and no longer.
//!
//! Collections are run synchronously by deleting another lease with `--sync`, so nothing here
//! waits on the background collector.

use berth_api::containerd::services::leases::v1 as api;
use berth_tests::e2e::{self, pseudo_random};
use berth_tests::grpc::{expect_code, read_blob, req, runtime, write_blob, Grpc, Ingest};
use berth_tests::store::{active_refs, blob_path, content_digests, row};
use tonic::Code;

#[test]
fn create_list_remove() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("leases");
    let generated = ctr.ok(&["leases", "create"]).trim().to_string();
    assert!(!generated.is_empty());
    assert_eq!(
        ctr.ok(&["leases", "create", "--id", "pinned", "-x", "0", "owner=me"])
            .trim(),
        "pinned"
    );
    let listing = ctr.ok(&["leases", "ls"]);
    // ctr's default is a lease that expires in 24 h; `-x 0` never expires.
    let line = row(&listing, &generated).unwrap_or_else(|| panic!("{listing}"));
    assert!(line.contains("containerd.io/gc.expire="), "{line}");
    let line = row(&listing, "pinned").unwrap_or_else(|| panic!("{listing}"));
    assert!(
        line.contains("owner=me") && !line.contains("gc.expire"),
        "{line}"
    );
    let quiet = ctr.ok(&["leases", "ls", "-q"]);
    let mut ids: Vec<&str> = quiet.lines().collect();
    ids.sort_unstable();
    let mut want = vec![generated.as_str(), "pinned"];
    want.sort_unstable();
    assert_eq!(ids, want);

    let err = ctr.fails(&["leases", "create", "--id", "pinned"]);
    assert!(err.contains("already exists"), "{err}");

    ctr.ok(&["leases", "rm", &generated, "pinned"]);
    assert_eq!(ctr.ok(&["leases", "ls", "-q"]).trim(), "");
    let err = ctr.fails(&["leases", "rm", "pinned"]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn leased_content_survives_gc_until_the_lease_goes() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("leased");
    ctr.ok(&["leases", "create", "--id", "keep", "-x", "0"]);
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&berthd.address))
        .expect("connect");

    let kept_data = pseudo_random(10, 200_000);
    let loose_data = pseudo_random(11, 200_000);
    let (kept, loose) = rt.block_on(async {
        let kept = write_blob(&grpc, "leased", Some("keep"), "kept-blob", &kept_data)
            .await
            .expect("write under lease");
        let loose = write_blob(&grpc, "leased", None, "loose-blob", &loose_data)
            .await
            .expect("write without lease");
        // An ingest under the lease, left half done.
        let mut w = Ingest::open(&grpc, "leased", Some("keep"), "kept-ingest")
            .await
            .expect("open leased ingest");
        w.write(0, &kept_data[..1000]).await.expect("write");
        drop(w);

        let resources = grpc
            .leases()
            .list_resources(req(
                "leased",
                api::ListResourcesRequest { id: "keep".into() },
            ))
            .await
            .expect("list resources")
            .into_inner()
            .resources;
        let mut got: Vec<(String, String)> =
            resources.into_iter().map(|r| (r.r#type, r.id)).collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("content".to_string(), kept.clone()),
                ("ingests".to_string(), "kept-ingest".to_string()),
            ]
        );
        (kept, loose)
    });
    assert!(content_digests(&ctr).contains(&loose));

    // Unreferenced content goes with the next collection; leased content and ingests stay.
    e2e::collect_garbage(&ctr);
    let listed = content_digests(&ctr);
    assert!(listed.contains(&kept), "leased blob collected");
    assert!(!listed.contains(&loose), "unleased blob survived gc");
    assert!(blob_path(&berthd.root, &kept).exists());
    assert!(!blob_path(&berthd.root, &loose).exists());
    assert!(active_refs(&ctr).contains("kept-ingest"));
    let got = rt.block_on(read_blob(&grpc, "leased", &kept));
    assert_eq!(got.expect("read leased blob"), kept_data);

    // Without its lease the blob is garbage: deleting the lease with --sync collects it.
    ctr.ok(&["leases", "rm", "--sync", "keep"]);
    assert!(
        !content_digests(&ctr).contains(&kept),
        "blob outlived lease"
    );
    assert!(
        !blob_path(&berthd.root, &kept).exists(),
        "blob file outlived its lease"
    );
}

#[test]
fn lease_header_must_name_a_lease_and_resources_are_managed_by_hand() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        // Writing under a lease that does not exist would leave content nobody holds.
        let res = write_blob(&grpc, "nolease", Some("ghost"), "r", b"data").await;
        let msg = expect_code(res, Code::NotFound);
        assert!(msg.contains("ghost"), "{msg}");

        // Resources can be added and removed by hand.
        grpc.leases()
            .create(req(
                "nolease",
                api::CreateRequest {
                    id: "manual".into(),
                    labels: Default::default(),
                },
            ))
            .await
            .expect("create lease");
        let digest = write_blob(&grpc, "nolease", None, "r2", b"by hand")
            .await
            .expect("write");
        let resource = api::Resource {
            id: digest.clone(),
            r#type: "content".into(),
        };
        grpc.leases()
            .add_resource(req(
                "nolease",
                api::AddResourceRequest {
                    id: "manual".into(),
                    resource: Some(resource.clone()),
                },
            ))
            .await
            .expect("add resource");
        let listed = grpc
            .leases()
            .list_resources(req(
                "nolease",
                api::ListResourcesRequest {
                    id: "manual".into(),
                },
            ))
            .await
            .expect("list")
            .into_inner()
            .resources;
        assert_eq!(listed, std::slice::from_ref(&resource));
        grpc.leases()
            .delete_resource(req(
                "nolease",
                api::DeleteResourceRequest {
                    id: "manual".into(),
                    resource: Some(resource),
                },
            ))
            .await
            .expect("delete resource");
        let listed = grpc
            .leases()
            .list_resources(req(
                "nolease",
                api::ListResourcesRequest {
                    id: "manual".into(),
                },
            ))
            .await
            .expect("list")
            .into_inner()
            .resources;
        assert!(listed.is_empty());
    });
}
