use std::sync::Arc;

use api::snapshots_server::Snapshots;
use berth_api::containerd::services::snapshots::v1 as api;
use berth_api::containerd::types::Mount as ApiMount;
use berth_snapshotter::{Info, Kind, Mount};
use tonic::{Request, Response, Status};

use super::{blocking, filter, lease, namespace, paths, quick, ts_system, BoxStream};
use crate::metadata::snapshots as snaps;
use crate::Meta;

const LIST_BATCH: usize = 100;

pub struct SnapshotsService(pub Arc<Meta>);

pub fn mount_to_api(m: Mount) -> ApiMount {
    ApiMount {
        r#type: m.kind,
        source: m.source,
        target: m.target,
        options: m.options,
    }
}

pub fn mount_from_api(m: ApiMount) -> Mount {
    Mount {
        kind: m.r#type,
        source: m.source,
        target: m.target,
        options: m.options,
    }
}

fn mounts_to_api(ms: Vec<Mount>) -> Vec<ApiMount> {
    ms.into_iter().map(mount_to_api).collect()
}

fn kind_to_api(k: Kind) -> i32 {
    (match k {
        Kind::View => api::Kind::View,
        Kind::Active => api::Kind::Active,
        Kind::Committed => api::Kind::Committed,
    }) as i32
}

fn info_to_api(i: Info) -> api::Info {
    api::Info {
        name: i.name,
        parent: i.parent.unwrap_or_default(),
        kind: kind_to_api(i.kind),
        created_at: ts_system(i.created),
        updated_at: ts_system(i.updated),
        labels: i.labels,
    }
}

#[tonic::async_trait]
impl Snapshots for SnapshotsService {
    async fn prepare(
        &self,
        r: Request<api::PrepareSnapshotRequest>,
    ) -> Result<Response<api::PrepareSnapshotResponse>, Status> {
        let ns = namespace(&r)?;
        let l = lease(&r)?;
        let r = r.into_inner();
        let m = self.0.clone();
        let mounts = blocking(move || {
            snaps::prepare(
                &m,
                &ns,
                &r.snapshotter,
                &r.key,
                &r.parent,
                r.labels,
                l.as_deref(),
            )
        })
        .await?;
        Ok(Response::new(api::PrepareSnapshotResponse {
            mounts: mounts_to_api(mounts),
        }))
    }

    async fn view(
        &self,
        r: Request<api::ViewSnapshotRequest>,
    ) -> Result<Response<api::ViewSnapshotResponse>, Status> {
        let ns = namespace(&r)?;
        let l = lease(&r)?;
        let r = r.into_inner();
        let m = self.0.clone();
        let mounts = blocking(move || {
            snaps::view(
                &m,
                &ns,
                &r.snapshotter,
                &r.key,
                &r.parent,
                r.labels,
                l.as_deref(),
            )
        })
        .await?;
        Ok(Response::new(api::ViewSnapshotResponse {
            mounts: mounts_to_api(mounts),
        }))
    }

    async fn mounts(
        &self,
        r: Request<api::MountsRequest>,
    ) -> Result<Response<api::MountsResponse>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let mounts = snaps::mounts(&self.0, &ns, &r.snapshotter, &r.key)?;
        Ok(Response::new(api::MountsResponse {
            mounts: mounts_to_api(mounts),
        }))
    }

    async fn commit(&self, r: Request<api::CommitSnapshotRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&r)?;
        let l = lease(&r)?;
        let r = r.into_inner();
        let m = self.0.clone();
        blocking(move || {
            snaps::commit(
                &m,
                &ns,
                &r.snapshotter,
                &r.name,
                &r.key,
                r.labels,
                l.as_deref(),
            )
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn remove(&self, r: Request<api::RemoveSnapshotRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let m = self.0.clone();
        quick(&self.0, move || {
            snaps::remove(&m, &ns, &r.snapshotter, &r.key)
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn stat(
        &self,
        r: Request<api::StatSnapshotRequest>,
    ) -> Result<Response<api::StatSnapshotResponse>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let i = snaps::stat(&self.0, &ns, &r.snapshotter, &r.key)?;
        Ok(Response::new(api::StatSnapshotResponse {
            info: Some(info_to_api(i)),
        }))
    }

    async fn update(
        &self,
        r: Request<api::UpdateSnapshotRequest>,
    ) -> Result<Response<api::UpdateSnapshotResponse>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let info = r.info.unwrap_or_default();
        let p = paths(r.update_mask);
        let m = self.0.clone();
        let i =
            blocking(move || snaps::update(&m, &ns, &r.snapshotter, &info.name, info.labels, &p))
                .await?;
        Ok(Response::new(api::UpdateSnapshotResponse {
            info: Some(info_to_api(i)),
        }))
    }

    type ListStream = BoxStream<api::ListSnapshotsResponse>;

    async fn list(
        &self,
        r: Request<api::ListSnapshotsRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let f = filter(&r.filters)?;
        let m = self.0.clone();
        let all: Vec<api::Info> = blocking(move || snaps::list(&m, &ns, &r.snapshotter, &f))
            .await?
            .into_iter()
            .map(info_to_api)
            .collect();
        let batches: Vec<_> = all
            .chunks(LIST_BATCH)
            .map(|c| Ok(api::ListSnapshotsResponse { info: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(batches))))
    }

    async fn usage(
        &self,
        r: Request<api::UsageRequest>,
    ) -> Result<Response<api::UsageResponse>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let m = self.0.clone();
        let u = blocking(move || snaps::usage(&m, &ns, &r.snapshotter, &r.key)).await?;
        Ok(Response::new(api::UsageResponse {
            size: u.size,
            inodes: u.inodes,
        }))
    }

    async fn cleanup(&self, r: Request<api::CleanupRequest>) -> Result<Response<()>, Status> {
        namespace(&r)?;
        let sn = r.into_inner().snapshotter;
        let m = self.0.clone();
        blocking(move || snaps::cleanup(&m, &sn)).await?;
        Ok(Response::new(()))
    }
}
