//! Bad input, one kind per test: each gets containerd's error kind with a clear message, changes
//! nothing, and leaves a daemon that keeps serving.

use std::collections::HashMap;

use berth_api::containerd::services as svc;
use berth_api::containerd::types::Descriptor;
use berth_tests::e2e;
use berth_tests::grpc::{expect_code, req, runtime, write_blob, Grpc, Ingest};
use prost_types::{Any, FieldMask};
use svc::containers::v1 as containers;
use svc::content::v1 as content;
use svc::images::v1 as images;
use svc::leases::v1 as leases;
use svc::namespaces::v1 as namespaces;
use tonic::{Code, Request};

fn container(id: &str, labels: HashMap<String, String>) -> containers::Container {
    containers::Container {
        id: id.into(),
        labels,
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

fn image(name: &str, digest: &str, labels: HashMap<String, String>) -> images::Image {
    images::Image {
        name: name.into(),
        labels,
        target: Some(Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: digest.into(),
            size: 2,
            annotations: HashMap::new(),
        }),
        ..Default::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A digest that is well formed, so only the thing under test is wrong.
const SOME_DIGEST: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

#[test]
fn missing_namespace_is_failed_precondition() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        let calls = [
            grpc.images()
                .list(images::ListImagesRequest::default())
                .await
                .map(|_| ()),
            grpc.containers()
                .list(containers::ListContainersRequest::default())
                .await
                .map(|_| ()),
            grpc.leases()
                .create(leases::CreateRequest::default())
                .await
                .map(|_| ()),
            grpc.content()
                .list(content::ListContentRequest::default())
                .await
                .map(|_| ()),
            grpc.images()
                .create(images::CreateImageRequest {
                    image: Some(image("docker.io/x/y:1", SOME_DIGEST, HashMap::new())),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ];
        for res in calls {
            let msg = expect_code(res, Code::FailedPrecondition);
            assert!(msg.contains("namespace"), "{msg}");
        }
        // A Write stream fails on its first message.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let res = grpc
            .content()
            .write(Request::new(tokio_stream::wrappers::ReceiverStream::new(
                rx,
            )))
            .await;
        drop(tx);
        expect_code(res, Code::FailedPrecondition);
    });
    // Nothing was created in any namespace.
    assert_eq!(berthd.ctr("default").ok(&["ns", "ls", "-q"]).trim(), "");
}

#[test]
fn invalid_identifiers_are_invalid_argument() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("default");
    let long = "a".repeat(77);
    for bad in ["bad..name", "_lead", "trail-", "with space", long.as_str()] {
        let err = ctr.fails(&["ns", "create", bad]);
        assert!(err.contains("invalid argument"), "{bad}: {err}");
    }
    // 76 characters is the limit, not over it.
    ctr.ok(&["ns", "create", &"a".repeat(76)]);

    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        for bad in ["bad/id", "..", "UPPER_ok-but.then.", long.as_str(), ""] {
            let res = grpc
                .containers()
                .create(req(
                    "ids",
                    containers::CreateContainerRequest {
                        container: Some(container(bad, HashMap::new())),
                    },
                ))
                .await;
            let msg = expect_code(res, Code::InvalidArgument);
            assert!(msg.contains("identifier"), "{bad:?}: {msg}");
        }
        // Lease ids are any text, as containerd takes them (ctr names a mount's lease after its
        // target path), but not with control characters and not beyond 4096 bytes (an empty one
        // is generated, as containerd does).
        let huge = "x".repeat(4097);
        for bad in ["a\nb", "nul\0inside", huge.as_str()] {
            let res = grpc
                .leases()
                .create(req(
                    "ids",
                    leases::CreateRequest {
                        id: bad.to_string(),
                        labels: HashMap::new(),
                    },
                ))
                .await;
            expect_code(res, Code::InvalidArgument);
        }
        // An invalid namespace in the header.
        let res = grpc
            .images()
            .list(req("no good", images::ListImagesRequest::default()))
            .await;
        expect_code(res, Code::InvalidArgument);
        let listed = grpc
            .containers()
            .list(req("ids", containers::ListContainersRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .containers;
        assert!(listed.is_empty(), "{listed:?}");
    });
}

#[test]
fn oversized_labels_are_invalid_argument() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("labels");
    // Key and value together may take 4096 bytes.
    let fits = format!("k={}", "v".repeat(4095));
    let over = format!("k={}", "v".repeat(4096));
    ctr.ok(&["ns", "create", "fits", &fits]);
    let err = ctr.fails(&["ns", "create", "over", &over]);
    assert!(
        err.contains("invalid argument") && err.contains("4096"),
        "{err}"
    );
    let err = ctr.fails(&["ns", "label", "fits", &over]);
    assert!(err.contains("invalid argument"), "{err}");

    let big = labels(&[("k", &"v".repeat(4096))]);
    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        let res = grpc
            .containers()
            .create(req(
                "labels",
                containers::CreateContainerRequest {
                    container: Some(container("c1", big.clone())),
                },
            ))
            .await;
        expect_code(res, Code::InvalidArgument);
        let res = grpc
            .images()
            .create(req(
                "labels",
                images::CreateImageRequest {
                    image: Some(image("docker.io/x/y:1", SOME_DIGEST, big.clone())),
                    ..Default::default()
                },
            ))
            .await;
        expect_code(res, Code::InvalidArgument);
        let res = grpc
            .leases()
            .create(req(
                "labels",
                leases::CreateRequest {
                    id: "l1".into(),
                    labels: big.clone(),
                },
            ))
            .await;
        expect_code(res, Code::InvalidArgument);

        let digest = write_blob(&grpc, "labels", None, "blob", b"labelled")
            .await
            .expect("write blob");
        let res = grpc
            .content()
            .update(req(
                "labels",
                content::UpdateRequest {
                    info: Some(content::Info {
                        digest: digest.clone(),
                        labels: big.clone(),
                        ..Default::default()
                    }),
                    update_mask: Some(FieldMask {
                        paths: vec!["labels.k".into()],
                    }),
                },
            ))
            .await;
        expect_code(res, Code::InvalidArgument);
        // Labels on commit are checked too, and the refused commit commits nothing.
        let mut w = Ingest::open(&grpc, "labels", None, "labelled-commit")
            .await
            .expect("open");
        let data = b"other bytes";
        let res = w.commit(0, data, data.len() as i64, "", big.clone()).await;
        expect_code(res, Code::InvalidArgument);
        let info = grpc
            .content()
            .info(req("labels", content::InfoRequest { digest }))
            .await
            .expect("info")
            .into_inner()
            .info
            .expect("info");
        assert!(info.labels.is_empty(), "refused update applied");
        let listed = grpc
            .content()
            .list(req("labels", content::ListContentRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .message()
            .await
            .expect("list message")
            .map(|m| m.info.len());
        assert_eq!(listed, Some(1), "only the first blob is there");
    });
    assert_eq!(ctr.ok(&["ns", "ls", "-q"]).trim(), "fits\nlabels");
}

#[test]
fn duplicate_creates_are_already_exists_and_keep_the_original() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        let ns = "dups";
        let first = labels(&[("v", "first")]);
        let second = labels(&[("v", "second")]);

        grpc.namespaces()
            .create(namespaces::CreateNamespaceRequest {
                namespace: Some(namespaces::Namespace {
                    name: ns.into(),
                    labels: first.clone(),
                }),
            })
            .await
            .expect("create namespace");
        let res = grpc
            .namespaces()
            .create(namespaces::CreateNamespaceRequest {
                namespace: Some(namespaces::Namespace {
                    name: ns.into(),
                    labels: second.clone(),
                }),
            })
            .await;
        let msg = expect_code(res, Code::AlreadyExists);
        assert!(msg.contains(ns), "{msg}");
        let got = grpc
            .namespaces()
            .get(namespaces::GetNamespaceRequest { name: ns.into() })
            .await
            .expect("get namespace")
            .into_inner()
            .namespace
            .expect("namespace");
        assert_eq!(got.labels, first);

        let mut client = grpc.containers();
        let made = client
            .create(req(
                ns,
                containers::CreateContainerRequest {
                    container: Some(container("c1", first.clone())),
                },
            ))
            .await
            .expect("create container")
            .into_inner()
            .container;
        let res = client
            .create(req(
                ns,
                containers::CreateContainerRequest {
                    container: Some(container("c1", second.clone())),
                },
            ))
            .await;
        let msg = expect_code(res, Code::AlreadyExists);
        assert!(msg.contains("c1"), "{msg}");
        let got = client
            .get(req(ns, containers::GetContainerRequest { id: "c1".into() }))
            .await
            .expect("get container")
            .into_inner()
            .container;
        assert_eq!(got, made, "the original container changed");

        let mut client = grpc.images();
        let made = client
            .create(req(
                ns,
                images::CreateImageRequest {
                    image: Some(image("docker.io/x/y:1", SOME_DIGEST, first.clone())),
                    ..Default::default()
                },
            ))
            .await
            .expect("create image")
            .into_inner()
            .image;
        let res = client
            .create(req(
                ns,
                images::CreateImageRequest {
                    image: Some(image("docker.io/x/y:1", SOME_DIGEST, second.clone())),
                    ..Default::default()
                },
            ))
            .await;
        expect_code(res, Code::AlreadyExists);
        let got = client
            .get(req(
                ns,
                images::GetImageRequest {
                    name: "docker.io/x/y:1".into(),
                },
            ))
            .await
            .expect("get image")
            .into_inner()
            .image;
        assert_eq!(got, made, "the original image changed");

        let mut client = grpc.leases();
        client
            .create(req(
                ns,
                leases::CreateRequest {
                    id: "l1".into(),
                    labels: first.clone(),
                },
            ))
            .await
            .expect("create lease");
        let res = client
            .create(req(
                ns,
                leases::CreateRequest {
                    id: "l1".into(),
                    labels: second.clone(),
                },
            ))
            .await;
        expect_code(res, Code::AlreadyExists);
        let listed = client
            .list(req(ns, leases::ListRequest::default()))
            .await
            .expect("list leases")
            .into_inner()
            .leases;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].labels, first);
    });
}
