//! Namespaces through `ctr namespaces`: create, list, label, remove, and the two removals that do
//! not simply succeed (a namespace still holding an image, and one that does not exist).

use berth_api::containerd::services::namespaces::v1 as ns_api;
use berth_tests::e2e;
use berth_tests::grpc::{expect_code, runtime, Grpc};
use berth_tests::image::busybox_oci_tar;
use berth_tests::store::{blobs_on_disk, row};
use tonic::Code;

/// The LABELS column of `ctr ns ls` for `name`, sorted `k=v` pairs joined by `,`.
fn labels_of(listing: &str, name: &str) -> String {
    row(listing, name)
        .unwrap_or_else(|| panic!("namespace {name} not listed:\n{listing}"))
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string()
}

#[test]
fn create_list_label_remove() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("default");
    ctr.ok(&["ns", "create", "team-a", "owner=alice", "tier=gold"]);
    ctr.ok(&["ns", "create", "team-b"]);
    let listing = ctr.ok(&["ns", "ls"]);
    assert_eq!(labels_of(&listing, "team-a"), "owner=alice,tier=gold");
    assert_eq!(labels_of(&listing, "team-b"), "");
    let names = ctr.ok(&["ns", "ls", "-q"]);
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names, ["team-a", "team-b"], "only what was created");

    // A second create is refused and changes nothing.
    let err = ctr.fails(&["ns", "create", "team-a", "owner=mallory"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        labels_of(&ctr.ok(&["ns", "ls"]), "team-a"),
        "owner=alice,tier=gold"
    );

    // Set one label, change another, clear a third with an empty value.
    ctr.ok(&["ns", "label", "team-a", "cost=42", "owner=bob", "tier="]);
    assert_eq!(
        labels_of(&ctr.ok(&["ns", "ls"]), "team-a"),
        "cost=42,owner=bob"
    );

    for name in ["team-a", "team-b"] {
        let out = ctr.ok(&["ns", "rm", name]);
        assert_eq!(out.trim(), name);
    }
    assert_eq!(ctr.ok(&["ns", "ls", "-q"]).trim(), "");
}

#[test]
fn namespace_holding_an_image_cannot_be_removed() {
    let Some(berthd) = e2e::berthd_with_busybox() else {
        return;
    };
    let work = tempfile::tempdir().expect("work dir");
    let tar = work.path().join("busybox.tar");
    let info = busybox_oci_tar(&tar, "docker.io/berth/ns-held:1").expect("oci image");
    let ctr = berthd.ctr("held");
    ctr.ok(&[
        "images",
        "import",
        "--no-unpack",
        tar.to_str().expect("utf-8 path"),
    ]);

    let err = ctr.fails(&["ns", "rm", "held"]);
    assert!(
        err.contains("failed precondition") && err.contains("images"),
        "{err}"
    );
    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        let res = grpc
            .namespaces()
            .delete(ns_api::DeleteNamespaceRequest {
                name: "held".into(),
            })
            .await;
        let msg = expect_code(res, Code::FailedPrecondition);
        // It names what remains, so the operator knows what to remove.
        assert!(
            msg.contains("held") && msg.contains("images") && msg.contains("blobs"),
            "{msg}"
        );
    });
    // Nothing was removed by the refused delete.
    assert!(ctr.ok(&["images", "ls", "-q"]).contains(&info.name));
    assert!(ctr.ok(&["ns", "ls", "-q"]).lines().any(|l| l == "held"));

    // Once the image and (synchronously collected) content are gone, it can go.
    ctr.ok(&["images", "rm", "--sync", &info.name]);
    assert_eq!(ctr.ok(&["content", "ls", "-q"]).trim(), "");
    assert!(blobs_on_disk(&berthd.root).is_empty());
    ctr.ok(&["ns", "rm", "held"]);
    assert!(!ctr.ok(&["ns", "ls", "-q"]).lines().any(|l| l == "held"));
}

#[test]
fn removing_an_unknown_namespace() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let ctr = berthd.ctr("default");
    // ctr treats NotFound on delete as done, prints the name and succeeds.
    let out = ctr.ok(&["ns", "rm", "never-made"]);
    assert_eq!(out.trim(), "never-made");

    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        let mut client = grpc.namespaces();
        let res = client
            .delete(ns_api::DeleteNamespaceRequest {
                name: "never-made".into(),
            })
            .await;
        let msg = expect_code(res, Code::NotFound);
        assert!(msg.contains("never-made"), "{msg}");

        // Get of an unknown namespace succeeds with no labels, as containerd answers it.
        let got = client
            .get(ns_api::GetNamespaceRequest {
                name: "never-made".into(),
            })
            .await
            .expect("get unknown namespace")
            .into_inner()
            .namespace
            .expect("namespace in reply");
        assert_eq!(got.name, "never-made");
        assert!(got.labels.is_empty());
    });
    // Neither call created it.
    assert_eq!(ctr.ok(&["ns", "ls", "-q"]).trim(), "");
}
