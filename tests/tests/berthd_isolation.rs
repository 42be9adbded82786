//! Two namespaces on one daemon see nothing of each other: images, containers, leases, content and
//! ingests are listed, read and removed only in the namespace that made them, and the same names
//! can be used in both.

use std::collections::{BTreeSet, HashMap};

use berth_api::containerd::services as svc;
use berth_tests::e2e::{self, pseudo_random};
use berth_tests::grpc::{expect_code, read_blob, req, runtime, write_blob, Grpc, Ingest};
use berth_tests::harness::Ctr;
use berth_tests::image::{busybox_oci_tar, sha256_digest};
use berth_tests::store::{active_refs, content_digests, image_names};
use prost_types::Any;
use svc::containers::v1 as containers;
use svc::content::v1 as content;
use svc::images::v1 as images;
use svc::leases::v1 as leases;
use tonic::Code;

const A: &str = "tenant-a";
const B: &str = "tenant-b";

fn container(id: &str, owner: &str) -> containers::Container {
    containers::Container {
        id: id.into(),
        labels: HashMap::from([("owner".to_string(), owner.to_string())]),
        runtime: Some(containers::container::Runtime {
            name: "io.containerd.runc.v2".into(),
            options: None,
        }),
        spec: Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
            value: b"{}".to_vec(),
        }),
        ..Default::default()
    }
}

fn lines(ctr: &Ctr, args: &[&str]) -> BTreeSet<String> {
    ctr.ok(args).lines().map(str::to_string).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn namespaces_see_nothing_of_each_other() {
    let Some(berthd) = e2e::berthd_with_busybox() else {
        return;
    };
    let work = tempfile::tempdir().expect("work dir");
    let tar = work.path().join("busybox.tar");
    let info = busybox_oci_tar(&tar, "docker.io/berth/tenant-a:1").expect("oci image");
    let (a, b) = (berthd.ctr(A), berthd.ctr(B));

    // Tenant A: an imported image, a lease, a blob, an ingest in progress, containers. Tenant B:
    // its own lease and blob, and a container with the name of one of A's.
    a.ok(&[
        "images",
        "import",
        "--no-unpack",
        tar.to_str().expect("utf-8 path"),
    ]);
    a.ok(&["leases", "create", "--id", "lease-a"]);
    b.ok(&["leases", "create", "--id", "lease-b"]);
    // Blobs are written under the leases: unleased, unreferenced content is garbage, and the
    // import's own lease going away starts a collection.
    let blob_a = pseudo_random(21, 5000);
    let digest_a = sha256_digest(&blob_a);
    let blob_b = pseudo_random(22, 5000);
    let digest_b = sha256_digest(&blob_b);
    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        write_blob(&grpc, A, Some("lease-a"), "blob-a", &blob_a)
            .await
            .expect("write A's blob");
        write_blob(&grpc, B, Some("lease-b"), "blob-b", &blob_b)
            .await
            .expect("write B's blob");
        let mut w = Ingest::open(&grpc, A, Some("lease-a"), "upload-a")
            .await
            .expect("open");
        w.write(0, b"partial").await.expect("write");
        drop(w);
        for (ns, id, owner) in [(A, "only-a", "a"), (A, "same", "a"), (B, "same", "b")] {
            grpc.containers()
                .create(req(
                    ns,
                    containers::CreateContainerRequest {
                        container: Some(container(id, owner)),
                    },
                ))
                .await
                .unwrap_or_else(|s| panic!("create {id} in {ns}: {s:?}"));
        }
    });

    // Listings: each sees exactly its own (once the import's leftover index is collected).
    e2e::collect_garbage(&a);
    assert_eq!(image_names(&a), set(&[&info.name]));
    assert!(image_names(&b).is_empty());
    assert_eq!(
        lines(&a, &["containers", "ls", "-q"]),
        set(&["only-a", "same"])
    );
    assert_eq!(lines(&b, &["containers", "ls", "-q"]), set(&["same"]));
    assert_eq!(lines(&a, &["leases", "ls", "-q"]), set(&["lease-a"]));
    assert_eq!(lines(&b, &["leases", "ls", "-q"]), set(&["lease-b"]));
    let in_a = content_digests(&a);
    assert!(in_a.contains(&digest_a) && in_a.contains(&info.manifest_digest));
    assert!(!in_a.contains(&digest_b));
    assert_eq!(content_digests(&b), set(&[&digest_b]));
    assert_eq!(active_refs(&a), set(&["upload-a"]));
    assert!(active_refs(&b).is_empty());

    // By name, from B, A's objects do not exist; nothing B does touches them.
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        let res = grpc
            .images()
            .get(req(
                B,
                images::GetImageRequest {
                    name: info.name.clone(),
                },
            ))
            .await;
        expect_code(res, Code::NotFound);
        let res = grpc
            .images()
            .delete(req(
                B,
                images::DeleteImageRequest {
                    name: info.name.clone(),
                    sync: true,
                    ..Default::default()
                },
            ))
            .await;
        expect_code(res, Code::NotFound);
        let res = grpc
            .containers()
            .get(req(
                B,
                containers::GetContainerRequest {
                    id: "only-a".into(),
                },
            ))
            .await;
        expect_code(res, Code::NotFound);
        let res = grpc
            .containers()
            .delete(req(
                B,
                containers::DeleteContainerRequest {
                    id: "only-a".into(),
                },
            ))
            .await;
        expect_code(res, Code::NotFound);
        let same = grpc
            .containers()
            .get(req(
                B,
                containers::GetContainerRequest { id: "same".into() },
            ))
            .await
            .expect("get B's same")
            .into_inner()
            .container
            .expect("container");
        assert_eq!(same.labels["owner"], "b");

        for d in [&digest_a, &info.manifest_digest] {
            let res = grpc
                .content()
                .info(req(B, content::InfoRequest { digest: d.clone() }))
                .await;
            expect_code(res, Code::NotFound);
            expect_code(read_blob(&grpc, B, d).await, Code::NotFound);
            let res = grpc
                .content()
                .delete(req(B, content::DeleteContentRequest { digest: d.clone() }))
                .await;
            expect_code(res, Code::NotFound);
        }
        let res = grpc
            .content()
            .status(req(
                B,
                content::StatusRequest {
                    r#ref: "upload-a".into(),
                },
            ))
            .await;
        expect_code(res, Code::NotFound);
        let res = grpc
            .content()
            .abort(req(
                B,
                content::AbortRequest {
                    r#ref: "upload-a".into(),
                },
            ))
            .await;
        expect_code(res, Code::NotFound);
        let res = grpc
            .leases()
            .list_resources(req(
                B,
                leases::ListResourcesRequest {
                    id: "lease-a".into(),
                },
            ))
            .await;
        expect_code(res, Code::NotFound);
        let res = grpc
            .leases()
            .delete(req(
                B,
                leases::DeleteRequest {
                    id: "lease-a".into(),
                    sync: true,
                },
            ))
            .await;
        expect_code(res, Code::NotFound);
    });

    // B empties itself, with collections; A is untouched.
    b.ok(&["containers", "rm", "same"]);
    b.ok(&["content", "rm", &digest_b]);
    b.ok(&["leases", "rm", "--sync", "lease-b"]);
    assert!(content_digests(&b).is_empty());
    b.ok(&["ns", "rm", B]);
    assert_eq!(image_names(&a), set(&[&info.name]));
    assert_eq!(
        lines(&a, &["containers", "ls", "-q"]),
        set(&["only-a", "same"])
    );
    assert_eq!(lines(&a, &["leases", "ls", "-q"]), set(&["lease-a"]));
    assert_eq!(content_digests(&a), in_a);
    assert_eq!(active_refs(&a), set(&["upload-a"]));
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        assert_eq!(
            read_blob(&grpc, A, &digest_a).await.expect("read A's blob"),
            blob_a
        );
    });
}
