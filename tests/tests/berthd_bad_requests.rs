//! Malformed requests, one kind per test: unknown field-mask paths, digests that try to leave the
//! blob store, messages over the 16 MiB limit, and bytes that are not gRPC at all. Each is refused
//! with a clear error, changes nothing, and the daemon keeps serving.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_api::containerd::services as svc;
use berth_api::containerd::types::Descriptor;
use berth_tests::e2e;
use berth_tests::grpc::{expect_code, req, runtime, write_blob, Grpc, Ingest};
use berth_tests::harness::Berthd;
use berth_tests::store::tree;
use prost_types::{Any, FieldMask};
use svc::containers::v1 as containers;
use svc::content::v1 as content;
use svc::images::v1 as images;
use svc::leases::v1 as leases;
use svc::namespaces::v1 as namespaces;
use tonic::Code;

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

fn container(id: &str, spec: Vec<u8>) -> containers::Container {
    containers::Container {
        id: id.into(),
        runtime: Some(containers::container::Runtime {
            name: "io.containerd.runc.v2".into(),
            options: None,
        }),
        spec: Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
            value: spec,
        }),
        ..Default::default()
    }
}

/// The daemon still answers: ctr and a fresh gRPC connection both get through.
fn assert_serving(berthd: &Berthd) {
    let out = berthd.ctr("default").ok(&["version"]);
    assert!(out.contains("berth"), "{out}");
    runtime().block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        grpc.namespaces()
            .list(namespaces::ListNamespacesRequest::default())
            .await
            .expect("list namespaces");
    });
}

#[test]
fn unknown_field_mask_paths_are_invalid_argument() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ns = "masks";
    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        let c = grpc
            .containers()
            .create(req(
                ns,
                containers::CreateContainerRequest {
                    container: Some(container("c1", b"{}".to_vec())),
                },
            ))
            .await
            .expect("create container")
            .into_inner()
            .container
            .expect("container");
        let mut change = c.clone();
        change.image = "changed".into();
        let res = grpc
            .containers()
            .update(req(
                ns,
                containers::UpdateContainerRequest {
                    container: Some(change),
                    update_mask: mask(&["image", "nonsense"]),
                },
            ))
            .await;
        let msg = expect_code(res, Code::InvalidArgument);
        assert!(msg.contains("nonsense"), "{msg}");
        let got = grpc
            .containers()
            .get(req(ns, containers::GetContainerRequest { id: "c1".into() }))
            .await
            .expect("get")
            .into_inner()
            .container
            .expect("container");
        assert_eq!(got, c, "a refused update was partly applied");

        let digest = write_blob(&grpc, ns, None, "b", b"masked")
            .await
            .expect("write blob");
        let target = Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: digest.clone(),
            size: 6,
            annotations: HashMap::new(),
        };
        let img = images::Image {
            name: "docker.io/x/masked:1".into(),
            target: Some(target),
            ..Default::default()
        };
        grpc.images()
            .create(req(
                ns,
                images::CreateImageRequest {
                    image: Some(img.clone()),
                    ..Default::default()
                },
            ))
            .await
            .expect("create image");
        let res = grpc
            .images()
            .update(req(
                ns,
                images::UpdateImageRequest {
                    image: Some(img),
                    update_mask: mask(&["bogus"]),
                    ..Default::default()
                },
            ))
            .await;
        expect_code(res, Code::InvalidArgument);

        let res = grpc
            .content()
            .update(req(
                ns,
                content::UpdateRequest {
                    info: Some(content::Info {
                        digest,
                        size: 1,
                        ..Default::default()
                    }),
                    update_mask: mask(&["size"]),
                },
            ))
            .await;
        expect_code(res, Code::InvalidArgument);

        let res = grpc
            .namespaces()
            .update(namespaces::UpdateNamespaceRequest {
                namespace: Some(namespaces::Namespace {
                    name: ns.into(),
                    labels: HashMap::new(),
                }),
                update_mask: mask(&["name"]),
            })
            .await;
        expect_code(res, Code::InvalidArgument);
    });
    let ctr = berthd.ctr(ns);
    assert!(ctr.ok(&["images", "ls"]).contains("docker.io/x/masked:1"));
    assert!(ctr.ok(&["content", "ls"]).contains("6B"), "size unchanged");
}

#[test]
fn digest_that_walks_out_of_the_store_is_invalid_argument() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ns = "walk";
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&berthd.address))
        .expect("connect");
    // Make the namespace and the store exist, so the "before" picture has them.
    rt.block_on(write_blob(&grpc, ns, None, "seed", b"seed"))
        .expect("write seed");
    let before = tree(berthd.temp_dir());
    let tmp_x = Path::new("/tmp/x").exists();
    let bad = [
        "sha256:../../x",
        "sha256:../../../../../../tmp/x",
        "sha256:/etc/passwd",
    ];
    rt.block_on(async {
        let mut c = grpc.content();
        for d in bad {
            let res = c
                .info(req(ns, content::InfoRequest { digest: d.into() }))
                .await;
            expect_code(res, Code::InvalidArgument);
            let res = c
                .delete(req(ns, content::DeleteContentRequest { digest: d.into() }))
                .await;
            expect_code(res, Code::InvalidArgument);
            let res = c
                .read(req(
                    ns,
                    content::ReadContentRequest {
                        digest: d.into(),
                        ..Default::default()
                    },
                ))
                .await;
            expect_code(res, Code::InvalidArgument);
            let res = c
                .update(req(
                    ns,
                    content::UpdateRequest {
                        info: Some(content::Info {
                            digest: d.into(),
                            ..Default::default()
                        }),
                        update_mask: None,
                    },
                ))
                .await;
            expect_code(res, Code::InvalidArgument);

            // As the expected digest of a write, on open or on commit.
            let mut w = Ingest::open(&grpc, ns, None, "walker").await.expect("open");
            let res = w
                .send(content::WriteContentRequest {
                    action: content::WriteAction::Write as i32,
                    expected: d.into(),
                    data: b"x".to_vec(),
                    ..Default::default()
                })
                .await;
            expect_code(res, Code::InvalidArgument);
            let mut w = Ingest::open(&grpc, ns, None, "walker2")
                .await
                .expect("open");
            let res = w.commit(0, b"x", 1, d, HashMap::new()).await;
            expect_code(res, Code::InvalidArgument);

            let res = grpc
                .images()
                .create(req(
                    ns,
                    images::CreateImageRequest {
                        image: Some(images::Image {
                            name: "docker.io/x/walk:1".into(),
                            target: Some(Descriptor {
                                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                                digest: d.into(),
                                size: 1,
                                annotations: HashMap::new(),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ))
                .await;
            expect_code(res, Code::InvalidArgument);
            grpc.leases()
                .create(req(
                    ns,
                    leases::CreateRequest {
                        id: "walk".into(),
                        labels: HashMap::new(),
                    },
                ))
                .await
                .ok();
            let res = grpc
                .leases()
                .add_resource(req(
                    ns,
                    leases::AddResourceRequest {
                        id: "walk".into(),
                        resource: Some(leases::Resource {
                            id: d.into(),
                            r#type: "content".into(),
                        }),
                    },
                ))
                .await;
            expect_code(res, Code::InvalidArgument);
        }
    });
    // Nothing appeared on disk, inside the daemon's dirs or next to them. (The metadata store's
    // files change with the lease; they are the daemon's own.)
    let outside = |t: &BTreeSet<PathBuf>| -> BTreeSet<PathBuf> {
        t.iter()
            .filter(|p| !p.starts_with("root/metadata"))
            .cloned()
            .collect()
    };
    let after = tree(berthd.temp_dir());
    assert_eq!(outside(&after), outside(&before), "files appeared");
    assert_eq!(Path::new("/tmp/x").exists(), tmp_x, "/tmp/x appeared");
    assert_serving(&berthd);
}

#[test]
fn messages_over_16_mib_are_resource_exhausted() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ns = "big";
    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        // A unary call: a container whose spec is 17 MiB.
        let res = grpc
            .containers()
            .create(req(
                ns,
                containers::CreateContainerRequest {
                    container: Some(container("huge", vec![b' '; 17 << 20])),
                },
            ))
            .await;
        let msg = expect_code(res, Code::ResourceExhausted);
        assert!(!msg.is_empty());

        // A stream: one Write message carrying 17 MiB.
        let mut w = Ingest::open(&grpc, ns, None, "huge").await.expect("open");
        let res = w.write(0, &vec![7u8; 17 << 20]).await;
        expect_code(res, Code::ResourceExhausted);

        // Just under the limit is fine, on the same connection.
        let spec = vec![b' '; 15 << 20];
        grpc.containers()
            .create(req(
                ns,
                containers::CreateContainerRequest {
                    container: Some(container("large", spec)),
                },
            ))
            .await
            .expect("a 15 MiB message is accepted");
        let listed = grpc
            .containers()
            .list(req(ns, containers::ListContainersRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .containers;
        let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["large"], "the refused container was created");
    });
    assert_serving(&berthd);
}

/// Writes `bytes` on a fresh connection and reads until the daemon closes it.
fn send_garbage(berthd: &Berthd, bytes: &[u8]) {
    let mut s = UnixStream::connect(&berthd.address).expect("connect to the socket");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    // The daemon may close before reading everything: a broken pipe is an answer too.
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            // Whatever it says first (an HTTP/2 GOAWAY, say), it must then hang up.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the daemon kept a garbage connection open: {e}"),
        }
    }
}

#[test]
fn garbage_on_the_socket_drops_the_connection_only() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    // Not HTTP/2 at all.
    send_garbage(&berthd, b"GET / HTTP/1.1\r\nHost: berth\r\n\r\n");
    send_garbage(&berthd, &e2e::pseudo_random(3, 64 << 10));
    // A valid HTTP/2 preface followed by a frame that makes no sense.
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 8, 0xff, 0, 0, 0, 0, 1]);
    bytes.extend_from_slice(&e2e::pseudo_random(4, 8));
    bytes.extend_from_slice(&e2e::pseudo_random(5, 4096));
    send_garbage(&berthd, &bytes);
    assert_serving(&berthd);
    // A connection that says nothing and goes away is no trouble either.
    drop(UnixStream::connect(&berthd.address).expect("connect"));
    assert_serving(&berthd);
}
