//! `ctr snapshots prepare` and `ctr snapshots rm` as the gRPC calls ctr 1.6.20 makes for them,
//! issued from this process over one HTTP/2 connection per daemon, so ctr's process start-up is
//! left out and what remains is the daemon's own cost.
//!
//! ctr's `snapshots prepare KEY PARENT` sends one Snapshots.Prepare{snapshotter, key, parent,
//! labels{containerd.io/gc.root: now in RFC 3339, UTC, whole seconds}} and `snapshots rm KEY`
//! one Snapshots.Remove{snapshotter, key}; neither takes a lease
//! (`cmd/ctr/commands/snapshots/snapshots.go`).

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use berth_api::containerd::services::snapshots::v1 as api;
use berth_api::containerd::types::Mount;
use tonic::transport::Channel;
use tonic::Code;

use super::super::metadata::rfc3339_utc;
use crate::grpc::{req, Grpc};
use api::snapshots_client::SnapshotsClient;

/// The label ctr puts on what it prepares, so the collector keeps it.
pub const GC_ROOT: &str = "containerd.io/gc.root";

/// One daemon's Snapshots client in one namespace and snapshotter.
pub struct SnapshotRpc {
    client: SnapshotsClient<Channel>,
    namespace: String,
    snapshotter: String,
}

impl SnapshotRpc {
    pub async fn connect(
        socket: &Path,
        namespace: &str,
        snapshotter: &str,
    ) -> anyhow::Result<SnapshotRpc> {
        let grpc = Grpc::connect(socket).await?;
        Ok(SnapshotRpc {
            client: SnapshotsClient::new(grpc.channel),
            namespace: namespace.to_string(),
            snapshotter: snapshotter.to_string(),
        })
    }

    /// Snapshots.Prepare as ctr sends it; returns the mounts.
    pub async fn prepare(&mut self, key: &str, parent: &str) -> Result<Vec<Mount>, tonic::Status> {
        let request = api::PrepareSnapshotRequest {
            snapshotter: self.snapshotter.clone(),
            key: key.to_string(),
            parent: parent.to_string(),
            labels: HashMap::from([(GC_ROOT.to_string(), rfc3339_utc(SystemTime::now()))]),
        };
        let response = self.client.prepare(req(&self.namespace, request)).await?;
        Ok(response.into_inner().mounts)
    }

    /// Snapshots.Remove as ctr sends it.
    pub async fn remove(&mut self, key: &str) -> Result<(), tonic::Status> {
        let request = api::RemoveSnapshotRequest {
            snapshotter: self.snapshotter.clone(),
            key: key.to_string(),
        };
        self.client.remove(req(&self.namespace, request)).await?;
        Ok(())
    }

    /// Snapshots.Stat, `None` when the daemon says NotFound (for the checks, not timed).
    pub async fn stat(&mut self, key: &str) -> Result<Option<api::Info>, tonic::Status> {
        let request = api::StatSnapshotRequest {
            snapshotter: self.snapshotter.clone(),
            key: key.to_string(),
        };
        match self.client.stat(req(&self.namespace, request)).await {
            Ok(response) => Ok(response.into_inner().info),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status),
        }
    }
}
