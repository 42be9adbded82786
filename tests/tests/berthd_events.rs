//! `ctr events` against berthd: the create and delete events of namespaces, images, containers
//! and content arrive decoded, which ctr 1.6 can only do when the `Any` type URL is the bare
//! message name. Subscription filters choose what a subscriber sees.

use std::time::Duration;

use berth_api::any::to_any;
use berth_api::containerd::events::NamespaceUpdate;
use berth_api::containerd::services::containers::v1 as containers;
use berth_api::containerd::services::events::v1 as api;
use berth_api::containerd::types::Envelope;
use berth_tests::e2e::{self, ingest};
use berth_tests::events::{CtrEvents, EventLine};
use berth_tests::grpc::{req, runtime, Grpc};
use berth_tests::image::{busybox_oci_tar, sha256_digest};
use tokio::runtime::Runtime;

const WAIT: Duration = Duration::from_secs(10);
const PROBE_TOPIC: &str = "/berth-tests/probe";

/// Publishes probe events until `events` has printed one: only then is its subscription live.
fn wait_subscribed(rt: &Runtime, grpc: &Grpc, events: &CtrEvents, ns: &str) {
    events.wait_subscribed(
        |n| {
            rt.block_on(grpc.events().publish(req(
                ns,
                api::PublishRequest {
                    topic: PROBE_TOPIC.into(),
                    event: Some(to_any(&NamespaceUpdate {
                        name: format!("probe-{n}"),
                        labels: Default::default(),
                    })),
                },
            )))
            .expect("publish probe");
        },
        |e, n| e.topic == PROBE_TOPIC && e.event["name"] == format!("probe-{n}").as_str(),
    );
}

async fn next_envelope(stream: &mut tonic::Streaming<Envelope>) -> Envelope {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("an envelope within 10 s")
        .expect("subscription stream")
        .expect("subscription still open")
}

fn is(e: &EventLine, ns: &str, topic: &str) -> bool {
    e.namespace == ns && e.topic == topic
}

#[test]
fn ctr_events_sees_decoded_create_and_delete_events() {
    let Some(berthd) = e2e::berthd_with_busybox() else {
        return;
    };
    let rt = runtime();
    let grpc = rt
        .block_on(Grpc::connect(&berthd.address))
        .expect("connect");
    let events = CtrEvents::spawn(&berthd.ctr("default"), &[]);
    // Only the image namespace's events, with one of ctr's filter arguments.
    let filtered = CtrEvents::spawn(&berthd.ctr("default"), &["namespace==ev-images"]);
    wait_subscribed(&rt, &grpc, &events, "probe");
    wait_subscribed(&rt, &grpc, &filtered, "ev-images");
    // And a gRPC subscriber, to see the envelopes ctr cannot show. Live once the call returns.
    let mut raw = rt
        .block_on(grpc.events().subscribe(api::SubscribeRequest {
            filters: vec!["namespace==ev-content".into()],
        }))
        .expect("subscribe")
        .into_inner();

    // Content, first: ctr ingests without a lease, so the blob is garbage for any collection,
    // and the deletes below start some. Like containerd 1.6, berthd publishes no content create
    // event (ctr 1.6 could not decode containerd 2's); the raw envelope shows the bare type URL.
    let blob = b"an evented blob\n";
    let digest = sha256_digest(blob);
    let content = berthd.ctr("ev-content");
    ingest(&content, "evented", blob);
    content.ok(&["content", "rm", &digest]);
    events.wait_for(WAIT, |e| {
        is(e, "ev-content", "/content/delete") && e.event["digest"] == digest.as_str()
    });
    rt.block_on(async {
        let deleted = next_envelope(&mut raw).await;
        assert_eq!(deleted.topic, "/content/delete");
        assert_eq!(
            deleted.event.expect("event").type_url,
            "containerd.events.ContentDelete"
        );
    });

    // Namespaces.
    let ctr = berthd.ctr("default");
    ctr.ok(&["ns", "create", "ev-ns", "team=a"]);
    ctr.ok(&["ns", "rm", "ev-ns"]);
    let e = events.wait_for(WAIT, |e| is(e, "ev-ns", "/namespaces/create"));
    assert_eq!(e.event["name"], "ev-ns", "{}", e.raw);
    assert_eq!(e.event["labels"]["team"], "a", "{}", e.raw);
    events.wait_for(WAIT, |e| {
        is(e, "ev-ns", "/namespaces/delete") && e.event["name"] == "ev-ns"
    });

    // Images.
    let work = tempfile::tempdir().expect("work dir");
    let tar = work.path().join("busybox.tar");
    let info = busybox_oci_tar(&tar, "docker.io/berth/events:1").expect("oci image");
    let images = berthd.ctr("ev-images");
    images.ok(&[
        "images",
        "import",
        "--no-unpack",
        tar.to_str().expect("utf-8 path"),
    ]);
    images.ok(&["images", "rm", "--sync", &info.name]);
    for topic in ["/images/create", "/images/delete"] {
        let e = events.wait_for(WAIT, |e| is(e, "ev-images", topic));
        assert_eq!(e.event["name"], info.name.as_str(), "{}", e.raw);
    }

    // Containers.
    rt.block_on(async {
        let mut client = grpc.containers();
        client
            .create(req(
                "ev-containers",
                containers::CreateContainerRequest {
                    container: Some(containers::Container {
                        id: "watched".into(),
                        image: "docker.io/berth/events:1".into(),
                        runtime: Some(containers::container::Runtime {
                            name: "io.containerd.runc.v2".into(),
                            options: None,
                        }),
                        spec: Some(prost_types::Any {
                            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec"
                                .into(),
                            value: b"{}".to_vec(),
                        }),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .expect("create container");
        client
            .delete(req(
                "ev-containers",
                containers::DeleteContainerRequest {
                    id: "watched".into(),
                },
            ))
            .await
            .expect("delete container");
    });
    let e = events.wait_for(WAIT, |e| is(e, "ev-containers", "/containers/create"));
    assert_eq!(e.event["id"], "watched", "{}", e.raw);
    assert_eq!(e.event["image"], "docker.io/berth/events:1", "{}", e.raw);
    assert_eq!(
        e.event["runtime"]["name"], "io.containerd.runc.v2",
        "{}",
        e.raw
    );
    events.wait_for(WAIT, |e| {
        is(e, "ev-containers", "/containers/delete") && e.event["id"] == "watched"
    });

    // Every line ctr printed was decoded, and ctr complained about nothing.
    let undecoded: Vec<String> = events
        .lines()
        .into_iter()
        .filter(|l| EventLine::parse(l).is_none())
        .collect();
    assert!(undecoded.is_empty(), "undecoded lines: {undecoded:?}");
    let complaints = events.stderr();
    assert!(
        complaints.trim().is_empty(),
        "ctr events complained: {complaints}"
    );

    // The filtered subscriber saw its namespace's image events and nothing else.
    filtered.wait_for(WAIT, |e| is(e, "ev-images", "/images/delete"));
    let foreign: Vec<String> = filtered
        .events()
        .into_iter()
        .filter(|e| e.namespace != "ev-images")
        .map(|e| e.raw)
        .collect();
    assert!(foreign.is_empty(), "filter let through: {foreign:?}");
}
