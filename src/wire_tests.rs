//! Wire facts that differ from a naive 1..n numbering, checked by encoding.
//! A failure here means a `.proto` edit broke compatibility with containerd.

use std::collections::HashMap;

use prost::{Message, Name};

use crate::containerd::events::TaskExit;
use crate::containerd::services::containers::v1::Container;
use crate::containerd::services::content::v1::WriteContentRequest;
use crate::containerd::services::diff::v1::DiffResponse;
use crate::containerd::services::images::v1::{Image, ImageCreate};
use crate::containerd::services::introspection::v1::{Plugin, ServerResponse};
use crate::containerd::services::leases::v1::CreateRequest as LeaseCreateRequest;
use crate::containerd::services::tasks::v1::CreateTaskRequest;
use crate::containerd::types::transfer::{ImageStore, UnpackConfiguration};
use crate::containerd::types::{Descriptor, Envelope, Mount, Sandbox};
use crate::io::containerd::cgroups;

/// Field numbers of every top-level field present in an encoded message.
fn field_numbers(mut buf: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = prost::encoding::decode_varint(&mut buf).expect("valid key");
        let wire_type = prost::encoding::WireType::try_from(key & 7).expect("valid wire type");
        let field = u32::try_from(key >> 3).expect("field number fits u32");
        out.push(field);
        prost::encoding::skip_field(
            wire_type,
            field,
            &mut buf,
            prost::encoding::DecodeContext::default(),
        )
        .expect("skippable field");
    }
    out
}

fn only_field<M: Message>(m: &M) -> u32 {
    let fields = field_numbers(&m.encode_to_vec());
    assert_eq!(
        fields.len(),
        1,
        "expected exactly one field, got {fields:?}"
    );
    fields[0]
}

fn labels() -> HashMap<String, String> {
    HashMap::from([("k".to_owned(), "v".to_owned())])
}

fn ts() -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: 1,
        nanos: 0,
    })
}

#[test]
fn descriptor_annotations_is_field_5() {
    let d = Descriptor {
        annotations: labels(),
        ..Default::default()
    };
    assert_eq!(only_field(&d), 5);
}

#[test]
fn image_timestamps_are_fields_7_and_8() {
    let created = Image {
        created_at: ts(),
        ..Default::default()
    };
    assert_eq!(only_field(&created), 7);
    let updated = Image {
        updated_at: ts(),
        ..Default::default()
    };
    assert_eq!(only_field(&updated), 8);
}

#[test]
fn lease_create_labels_is_field_3() {
    let r = LeaseCreateRequest {
        labels: labels(),
        ..Default::default()
    };
    assert_eq!(only_field(&r), 3);
}

#[test]
fn create_task_rootfs_is_field_3() {
    let r = CreateTaskRequest {
        rootfs: vec![Mount::default()],
        ..Default::default()
    };
    assert_eq!(only_field(&r), 3);
    let r = CreateTaskRequest {
        runtime_path: "x".into(),
        ..Default::default()
    };
    assert_eq!(only_field(&r), 10);
}

#[test]
fn diff_response_diff_is_field_3() {
    let r = DiffResponse {
        diff: Some(Descriptor::default()),
    };
    assert_eq!(only_field(&r), 3);
}

#[test]
fn container_extensions_and_sandbox() {
    let c = Container {
        extensions: HashMap::from([("e".to_owned(), prost_types::Any::default())]),
        ..Default::default()
    };
    assert_eq!(only_field(&c), 10);
    let c = Container {
        sandbox: "s".into(),
        ..Default::default()
    };
    assert_eq!(only_field(&c), 11);
}

#[test]
fn write_content_labels_is_field_7() {
    let r = WriteContentRequest {
        labels: labels(),
        ..Default::default()
    };
    assert_eq!(only_field(&r), 7);
}

#[test]
fn introspection_fields() {
    let p = Plugin {
        init_err: Some(crate::google::rpc::Status::default()),
        ..Default::default()
    };
    assert_eq!(only_field(&p), 7);
    let s = ServerResponse {
        pidns: 4026531836,
        ..Default::default()
    };
    assert_eq!(only_field(&s), 3);
}

#[test]
fn envelope_event_is_field_4() {
    let e = Envelope {
        event: Some(prost_types::Any::default()),
        ..Default::default()
    };
    assert_eq!(only_field(&e), 4);
}

#[test]
fn task_exit_exited_at_is_field_5() {
    let e = TaskExit {
        exited_at: ts(),
        ..Default::default()
    };
    assert_eq!(only_field(&e), 5);
}

#[test]
fn v2_only_high_numbers() {
    let s = Sandbox {
        sandboxer: "x".into(),
        ..Default::default()
    };
    assert_eq!(only_field(&s), 10);
    let i = ImageStore {
        unpacks: vec![UnpackConfiguration::default()],
        ..Default::default()
    };
    assert_eq!(only_field(&i), 10);
}

#[test]
fn runc_options_systemd_cgroup_is_field_9() {
    let o = crate::containerd::runc::v1::Options {
        systemd_cgroup: true,
        ..Default::default()
    };
    assert_eq!(only_field(&o), 9);
}

#[test]
fn cgroups_v2_memory_is_field_4() {
    let m = cgroups::v2::Metrics {
        memory: Some(cgroups::v2::MemoryStat::default()),
        ..Default::default()
    };
    assert_eq!(only_field(&m), 4);
}

#[test]
fn type_names_match_containerd() {
    assert_eq!(
        ImageCreate::full_name(),
        "containerd.services.images.v1.ImageCreate"
    );
    assert_eq!(TaskExit::full_name(), "containerd.events.TaskExit");
    assert_eq!(
        crate::containerd::runc::v1::Options::full_name(),
        "containerd.runc.v1.Options"
    );
    assert_eq!(
        crate::containerd::linux::runc::CreateOptions::full_name(),
        "containerd.linux.runc.CreateOptions"
    );
    assert_eq!(
        cgroups::v1::Metrics::full_name(),
        "io.containerd.cgroups.v1.Metrics"
    );
    assert_eq!(
        cgroups::v2::Metrics::full_name(),
        "io.containerd.cgroups.v2.Metrics"
    );
}

#[test]
fn grpc_service_names_match_containerd() {
    use crate::containerd::services as s;
    let names = [
        s::version::v1::version_server::SERVICE_NAME,
        s::namespaces::v1::namespaces_server::SERVICE_NAME,
        s::content::v1::content_server::SERVICE_NAME,
        s::images::v1::images_server::SERVICE_NAME,
        s::leases::v1::leases_server::SERVICE_NAME,
        s::containers::v1::containers_server::SERVICE_NAME,
        s::events::v1::events_server::SERVICE_NAME,
        s::events::ttrpc::v1::events_server::SERVICE_NAME,
        s::introspection::v1::introspection_server::SERVICE_NAME,
        s::tasks::v1::tasks_server::SERVICE_NAME,
        s::snapshots::v1::snapshots_server::SERVICE_NAME,
        s::diff::v1::diff_server::SERVICE_NAME,
        crate::containerd::task::v2::task_server::SERVICE_NAME,
        crate::grpc::health::v1::health_server::SERVICE_NAME,
    ];
    assert_eq!(
        names,
        [
            "containerd.services.version.v1.Version",
            "containerd.services.namespaces.v1.Namespaces",
            "containerd.services.content.v1.Content",
            "containerd.services.images.v1.Images",
            "containerd.services.leases.v1.Leases",
            "containerd.services.containers.v1.Containers",
            "containerd.services.events.v1.Events",
            "containerd.services.events.ttrpc.v1.Events",
            "containerd.services.introspection.v1.Introspection",
            "containerd.services.tasks.v1.Tasks",
            "containerd.services.snapshots.v1.Snapshots",
            "containerd.services.diff.v1.Diff",
            "containerd.task.v2.Task",
            "grpc.health.v1.Health",
        ]
    );
}
