use std::sync::Arc;

use api::introspection_server::Introspection;
use berth_api::containerd::services::introspection::v1 as api;
use tonic::{Request, Response, Status};

use super::filter;
use crate::filters::Adaptor;
use crate::Meta;

/// What this daemon really serves, as containerd names its plugins (`type`, `id`, requires).
const PLUGINS: &[(&str, &str, &[&str])] = &[
    ("io.containerd.content.v1", "content", &[]),
    (
        "io.containerd.metadata.v1",
        "sled",
        &["io.containerd.content.v1"],
    ),
    (
        "io.containerd.gc.v1",
        "scheduler",
        &["io.containerd.metadata.v1"],
    ),
    ("io.containerd.event.v1", "exchange", &[]),
    (
        "io.containerd.lease.v1",
        "manager",
        &["io.containerd.metadata.v1"],
    ),
    (
        "io.containerd.grpc.v1",
        "containers",
        &["io.containerd.metadata.v1"],
    ),
    (
        "io.containerd.grpc.v1",
        "content",
        &["io.containerd.metadata.v1"],
    ),
    (
        "io.containerd.grpc.v1",
        "events",
        &["io.containerd.event.v1"],
    ),
    ("io.containerd.grpc.v1", "healthcheck", &[]),
    (
        "io.containerd.grpc.v1",
        "images",
        &["io.containerd.metadata.v1", "io.containerd.gc.v1"],
    ),
    ("io.containerd.grpc.v1", "introspection", &[]),
    (
        "io.containerd.grpc.v1",
        "leases",
        &["io.containerd.lease.v1"],
    ),
    (
        "io.containerd.grpc.v1",
        "namespaces",
        &["io.containerd.metadata.v1"],
    ),
    ("io.containerd.grpc.v1", "version", &[]),
    (
        "io.containerd.grpc.v1",
        "snapshots",
        &["io.containerd.snapshotter.v1"],
    ),
    (
        "io.containerd.grpc.v1",
        "diff",
        &["io.containerd.differ.v1"],
    ),
    (
        "io.containerd.differ.v1",
        "walking",
        &["io.containerd.metadata.v1"],
    ),
];

/// The snapshotter plugins; one that is not loaded is listed with its reason, as containerd does.
const SNAPSHOTTERS: &[&str] = &["native", "overlayfs"];

pub struct IntrospectionService {
    pub meta: Arc<Meta>,
}

impl Adaptor for api::Plugin {
    fn field(&self, path: &[String]) -> Option<String> {
        match path {
            [f] if f == "type" => Some(self.r#type.clone()),
            [f] if f == "id" => Some(self.id.clone()),
            _ => None,
        }
    }
}

fn platform() -> Vec<berth_api::containerd::types::Platform> {
    vec![berth_api::containerd::types::Platform {
        os: "linux".into(),
        architecture: host_arch().into(),
        ..Default::default()
    }]
}

fn plugins(meta: &Meta) -> Vec<api::Plugin> {
    let snapshotters = SNAPSHOTTERS.iter().map(|name| api::Plugin {
        r#type: "io.containerd.snapshotter.v1".into(),
        id: name.to_string(),
        platforms: platform(),
        init_err: (!meta.snapshotters.contains_key(*name)).then(|| {
            berth_api::google::rpc::Status {
                code: tonic::Code::FailedPrecondition as i32,
                message: format!("snapshotter {name:?} is not supported on this host"),
                ..Default::default()
            }
        }),
        ..Default::default()
    });
    PLUGINS
        .iter()
        .map(|(t, id, req)| api::Plugin {
            r#type: t.to_string(),
            id: id.to_string(),
            requires: req.iter().map(|s| s.to_string()).collect(),
            platforms: platform(),
            ..Default::default()
        })
        .chain(snapshotters)
        .collect()
}

/// The OCI name of the host's architecture.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn pidns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0)
}

#[tonic::async_trait]
impl Introspection for IntrospectionService {
    async fn plugins(
        &self,
        r: Request<api::PluginsRequest>,
    ) -> Result<Response<api::PluginsResponse>, Status> {
        let f = filter(&r.into_inner().filters)?;
        let plugins = plugins(&self.meta)
            .into_iter()
            .filter(|p| f.matches(p))
            .collect();
        Ok(Response::new(api::PluginsResponse { plugins }))
    }

    async fn server(&self, _: Request<()>) -> Result<Response<api::ServerResponse>, Status> {
        Ok(Response::new(api::ServerResponse {
            uuid: self.meta.db.uuid()?,
            pid: std::process::id() as u64,
            pidns: pidns(),
            ..Default::default()
        }))
    }

    async fn plugin_info(
        &self,
        _: Request<api::PluginInfoRequest>,
    ) -> Result<Response<api::PluginInfoResponse>, Status> {
        Err(Status::unimplemented(
            "plugin info is not served (a containerd 2.x call)",
        ))
    }
}
