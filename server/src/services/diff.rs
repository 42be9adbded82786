use std::sync::Arc;

use api::diff_server::Diff;
use berth_api::containerd::services::diff::v1 as api;
use tonic::{Request, Response, Status};

use super::images::{descriptor_from, descriptor_to};
use super::snapshots::mount_from_api;
use super::{blocking, lease, namespace};
use crate::diff::{self, DiffRequest};
use crate::Meta;

pub struct DiffService(pub Arc<Meta>);

#[tonic::async_trait]
impl Diff for DiffService {
    async fn apply(
        &self,
        r: Request<api::ApplyRequest>,
    ) -> Result<Response<api::ApplyResponse>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let desc = descriptor_from(
            r.diff
                .ok_or_else(|| Status::invalid_argument("diff descriptor must be set"))?,
        );
        let mounts: Vec<_> = r.mounts.into_iter().map(mount_from_api).collect();
        let m = self.0.clone();
        let applied = blocking(move || diff::apply(&m, &ns, &desc, &mounts)).await?;
        Ok(Response::new(api::ApplyResponse {
            applied: Some(descriptor_to(applied)),
        }))
    }

    async fn diff(
        &self,
        r: Request<api::DiffRequest>,
    ) -> Result<Response<api::DiffResponse>, Status> {
        let ns = namespace(&r)?;
        let l = lease(&r)?;
        let r = r.into_inner();
        let req = DiffRequest {
            left: r.left.into_iter().map(mount_from_api).collect(),
            right: r.right.into_iter().map(mount_from_api).collect(),
            media_type: r.media_type,
            reference: r.r#ref,
            labels: r.labels,
        };
        let m = self.0.clone();
        let d = blocking(move || diff::diff(&m, &ns, req, l.as_deref())).await?;
        Ok(Response::new(api::DiffResponse {
            diff: Some(descriptor_to(d)),
        }))
    }
}
