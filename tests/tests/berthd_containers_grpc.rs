//! Container records through the Containers service, with a Rust gRPC client (`ctr containers
//! create` needs the snapshotter): create, get, list with filters, ListStream, update with field
//! masks, delete. `ctr containers ls` must agree with what the client made.

use std::collections::{BTreeSet, HashMap};

use api::containers_client::ContainersClient;
use berth_api::containerd::services::containers::v1 as api;
use berth_tests::e2e;
use berth_tests::grpc::{expect_code, req, runtime, Grpc};
use prost_types::{Any, FieldMask};
use tonic::transport::Channel;
use tonic::Code;

const NS: &str = "records";
const RUNC: &str = "io.containerd.runc.v2";
const SPEC_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

fn spec(args: &str) -> Any {
    Any {
        type_url: SPEC_URL.into(),
        value: format!(r#"{{"ociVersion":"1.0.2","process":{{"args":["{args}"]}}}}"#).into_bytes(),
    }
}

fn container(id: &str, labels: &[(&str, &str)]) -> api::Container {
    api::Container {
        id: id.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        image: "docker.io/library/busybox:latest".into(),
        runtime: Some(api::container::Runtime {
            name: RUNC.into(),
            options: None,
        }),
        spec: Some(spec("sh")),
        snapshotter: "overlayfs".into(),
        snapshot_key: format!("{id}-snapshot"),
        extensions: HashMap::from([(
            "berth.test/ext".to_string(),
            Any {
                type_url: "berth.test.Ext".into(),
                value: vec![1, 2, 3],
            },
        )]),
        ..Default::default()
    }
}

async fn ids(client: &mut ContainersClient<Channel>, filters: &[&str]) -> BTreeSet<String> {
    let listed = client
        .list(req(
            NS,
            api::ListContainersRequest {
                filters: filters.iter().map(|f| f.to_string()).collect(),
                quiet: false,
            },
        ))
        .await
        .unwrap_or_else(|s| panic!("list {filters:?}: {s:?}"))
        .into_inner()
        .containers;
    let mut stream = client
        .list_stream(req(
            NS,
            api::ListContainersRequest {
                filters: filters.iter().map(|f| f.to_string()).collect(),
                quiet: false,
            },
        ))
        .await
        .expect("list stream")
        .into_inner();
    let mut streamed = Vec::new();
    while let Some(m) = stream.message().await.expect("list stream message") {
        streamed.push(m.container.expect("container in message"));
    }
    let mut a = listed.clone();
    let mut b = streamed;
    a.sort_by(|x, y| x.id.cmp(&y.id));
    b.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(a, b, "List and ListStream disagree for {filters:?}");
    listed.into_iter().map(|c| c.id).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

async fn update(
    client: &mut ContainersClient<Channel>,
    c: api::Container,
    paths: &[&str],
) -> Result<api::Container, tonic::Status> {
    Ok(client
        .update(req(
            NS,
            api::UpdateContainerRequest {
                container: Some(c),
                update_mask: Some(FieldMask {
                    paths: paths.iter().map(|p| p.to_string()).collect(),
                }),
            },
        ))
        .await?
        .into_inner()
        .container
        .expect("container in reply"))
}

async fn get(
    client: &mut ContainersClient<Channel>,
    id: &str,
) -> Result<api::Container, tonic::Status> {
    Ok(client
        .get(req(NS, api::GetContainerRequest { id: id.into() }))
        .await?
        .into_inner()
        .container
        .expect("container in reply"))
}

#[test]
fn create_get_list_update_delete() {
    let Some(berthd) = e2e::berthd() else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let grpc = Grpc::connect(&berthd.address).await.expect("connect");
        let mut client = grpc.containers();

        let want = container("alpha", &[("x", "y"), ("k", "old")]);
        let made = client
            .create(req(
                NS,
                api::CreateContainerRequest {
                    container: Some(want.clone()),
                },
            ))
            .await
            .expect("create alpha")
            .into_inner()
            .container
            .expect("container in reply");
        let created = made.created_at.expect("created_at set");
        assert_eq!(made.updated_at, Some(created));
        // Everything but the times comes back as sent; the spec is kept as an opaque Any.
        let strip = |mut c: api::Container| {
            c.created_at = None;
            c.updated_at = None;
            c
        };
        assert_eq!(strip(made.clone()), want);
        assert_eq!(get(&mut client, "alpha").await.expect("get"), made);

        for (id, labels) in [
            ("apple", &[("x", "z")][..]),
            ("beta", &[("x", "y")][..]),
            ("gamma", &[][..]),
        ] {
            client
                .create(req(
                    NS,
                    api::CreateContainerRequest {
                        container: Some(container(id, labels)),
                    },
                ))
                .await
                .unwrap_or_else(|s| panic!("create {id}: {s:?}"));
        }

        assert_eq!(
            ids(&mut client, &[]).await,
            set(&["alpha", "apple", "beta", "gamma"])
        );
        assert_eq!(
            ids(&mut client, &["labels.x==y"]).await,
            set(&["alpha", "beta"])
        );
        assert_eq!(
            ids(&mut client, &["labels.x!=y"]).await,
            set(&["apple", "gamma"])
        );
        assert_eq!(
            ids(&mut client, &["id~=/^a/"]).await,
            set(&["alpha", "apple"])
        );
        assert_eq!(
            ids(&mut client, &["labels.x"]).await,
            set(&["alpha", "apple", "beta"])
        );
        // Several filters: any may match. A comma: all must.
        assert_eq!(
            ids(&mut client, &["labels.x==z", "id==beta"]).await,
            set(&["apple", "beta"])
        );
        assert_eq!(
            ids(&mut client, &["labels.x==y,id~=/^a/"]).await,
            set(&["alpha"])
        );
        assert_eq!(
            ids(&mut client, &[&format!("runtime.name=={RUNC}")])
                .await
                .len(),
            4
        );
        assert!(ids(&mut client, &["image==nothing"]).await.is_empty());
        let res = client
            .list(req(
                NS,
                api::ListContainersRequest {
                    filters: vec!["id==\"unterminated".into()],
                    quiet: false,
                },
            ))
            .await;
        expect_code(res, Code::InvalidArgument);

        // labels.<key>: set one, change one, remove one (absent from the update); the rest stays.
        let mut change = container("alpha", &[("new", "1"), ("k", "new")]);
        change.image = "ignored-without-its-path".into();
        let after = update(&mut client, change, &["labels.new", "labels.k", "labels.x"])
            .await
            .expect("update labels");
        assert_eq!(
            after.labels,
            HashMap::from([
                ("new".to_string(), "1".to_string()),
                ("k".to_string(), "new".to_string())
            ])
        );
        assert_eq!(after.image, made.image, "image changed without its path");
        assert_eq!(after.created_at, made.created_at);
        let updated = after.updated_at.expect("updated_at");
        assert!(
            (updated.seconds, updated.nanos) > (created.seconds, created.nanos),
            "updated_at did not move"
        );

        // spec, image and snapshotkey, each by its path.
        let mut change = after.clone();
        change.spec = Some(spec("top"));
        change.image = "docker.io/library/alpine:3".into();
        change.snapshot_key = "alpha-snapshot-2".into();
        let after = update(&mut client, change, &["spec", "image", "snapshotkey"])
            .await
            .expect("update spec, image, snapshotkey");
        assert_eq!(after.spec, Some(spec("top")));
        assert_eq!(after.image, "docker.io/library/alpine:3");
        assert_eq!(after.snapshot_key, "alpha-snapshot-2");
        assert_eq!(get(&mut client, "alpha").await.expect("get"), after);

        // The runtime is fixed at creation, with a path or with a whole-record update.
        let mut change = after.clone();
        change.runtime = Some(api::container::Runtime {
            name: "io.containerd.other.v1".into(),
            options: None,
        });
        let msg = expect_code(
            update(&mut client, change.clone(), &["runtime"]).await,
            Code::InvalidArgument,
        );
        assert!(msg.contains("runtime"), "{msg}");
        expect_code(
            update(&mut client, change, &[]).await,
            Code::InvalidArgument,
        );
        assert_eq!(
            get(&mut client, "alpha").await.expect("get"),
            after,
            "refused update changed it"
        );

        // Delete: gone from get and list; a second delete is NotFound.
        client
            .delete(req(NS, api::DeleteContainerRequest { id: "alpha".into() }))
            .await
            .expect("delete");
        expect_code(get(&mut client, "alpha").await, Code::NotFound);
        let res = client
            .delete(req(NS, api::DeleteContainerRequest { id: "alpha".into() }))
            .await;
        expect_code(res, Code::NotFound);
        assert_eq!(
            ids(&mut client, &[]).await,
            set(&["apple", "beta", "gamma"])
        );
    });

    // ctr reads the same records.
    let ctr = berthd.ctr(NS);
    let listed = ctr.ok(&["containers", "ls", "-q"]);
    let listed: BTreeSet<String> = listed.lines().map(str::to_string).collect();
    assert_eq!(listed, set(&["apple", "beta", "gamma"]));
    let info = ctr.ok(&["containers", "info", "beta"]);
    let json: serde_json::Value = serde_json::from_str(&info).expect("ctr containers info is JSON");
    assert_eq!(json["Runtime"]["Name"], RUNC, "{info}");
    assert_eq!(json["Labels"]["x"], "y", "{info}");
    assert_eq!(json["Spec"]["process"]["args"][0], "sh", "{info}");
    let filtered = ctr.ok(&["containers", "ls", "-q", "labels.x==y"]);
    assert_eq!(filtered.trim(), "beta");
}
