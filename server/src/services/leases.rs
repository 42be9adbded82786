use std::sync::Arc;

use api::leases_server::Leases;
use berth_api::containerd::services::leases::v1 as api;
use tonic::{Request, Response, Status};

use super::{blocking, filter, namespace, quick, ts};
use crate::metadata::leases::{self, Resource};
use crate::metadata::LeaseRec;
use crate::Meta;

pub struct LeasesService(pub Arc<Meta>);

fn to_api(l: LeaseRec) -> api::Lease {
    api::Lease {
        id: l.id,
        created_at: ts(l.created_at),
        labels: l.labels,
    }
}

fn resource(r: Option<api::Resource>) -> Resource {
    let r = r.unwrap_or_default();
    Resource {
        id: r.id,
        kind: r.r#type,
    }
}

#[tonic::async_trait]
impl Leases for LeasesService {
    async fn create(
        &self,
        r: Request<api::CreateRequest>,
    ) -> Result<Response<api::CreateResponse>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let m = self.0.clone();
        let l = quick(&self.0, move || leases::create(&m, &ns, &r.id, r.labels)).await?;
        Ok(Response::new(api::CreateResponse {
            lease: Some(to_api(l)),
        }))
    }

    async fn delete(&self, r: Request<api::DeleteRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let m = self.0.clone();
        // A sync delete runs a whole collection before it answers.
        if r.sync {
            blocking(move || leases::delete(&m, &ns, &r.id, true)).await?;
        } else {
            quick(&self.0, move || leases::delete(&m, &ns, &r.id, false)).await?;
        }
        Ok(Response::new(()))
    }

    async fn list(
        &self,
        r: Request<api::ListRequest>,
    ) -> Result<Response<api::ListResponse>, Status> {
        let ns = namespace(&r)?;
        let f = filter(&r.into_inner().filters)?;
        let leases = leases::list(&self.0, &ns, &f)?
            .into_iter()
            .map(to_api)
            .collect();
        Ok(Response::new(api::ListResponse { leases }))
    }

    async fn add_resource(
        &self,
        r: Request<api::AddResourceRequest>,
    ) -> Result<Response<()>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let res = resource(r.resource);
        let m = self.0.clone();
        quick(&self.0, move || leases::add_resource(&m, &ns, &r.id, &res)).await?;
        Ok(Response::new(()))
    }

    async fn delete_resource(
        &self,
        r: Request<api::DeleteResourceRequest>,
    ) -> Result<Response<()>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let res = resource(r.resource);
        let m = self.0.clone();
        quick(&self.0, move || {
            leases::delete_resource(&m, &ns, &r.id, &res)
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn list_resources(
        &self,
        r: Request<api::ListResourcesRequest>,
    ) -> Result<Response<api::ListResourcesResponse>, Status> {
        let ns = namespace(&r)?;
        let resources = leases::resources(&self.0, &ns, &r.into_inner().id)?
            .into_iter()
            .map(|r| api::Resource {
                id: r.id,
                r#type: r.kind,
            })
            .collect();
        Ok(Response::new(api::ListResourcesResponse { resources }))
    }
}
