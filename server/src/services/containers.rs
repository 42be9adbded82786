use std::sync::Arc;

use api::containers_server::Containers;
use berth_api::containerd::services::containers::v1 as api;
use tonic::{Request, Response, Status};

use super::{filter, namespace, paths, quick, ts, BoxStream};
use crate::metadata::{containers, ContainerRec};
use crate::Meta;

pub struct ContainersService(pub Arc<Meta>);

fn from_api(c: api::Container) -> ContainerRec {
    let rt = c.runtime.unwrap_or_default();
    ContainerRec {
        id: c.id,
        labels: c.labels,
        image: c.image,
        runtime_name: rt.name,
        runtime_options: rt.options,
        spec: c.spec,
        snapshotter: c.snapshotter,
        snapshot_key: c.snapshot_key,
        created_at: 0,
        updated_at: 0,
        extensions: c.extensions,
        sandbox: c.sandbox,
    }
}

fn to_api(c: ContainerRec) -> api::Container {
    api::Container {
        id: c.id,
        labels: c.labels,
        image: c.image,
        runtime: Some(api::container::Runtime {
            name: c.runtime_name,
            options: c.runtime_options,
        }),
        spec: c.spec,
        snapshotter: c.snapshotter,
        snapshot_key: c.snapshot_key,
        created_at: ts(c.created_at),
        updated_at: ts(c.updated_at),
        extensions: c.extensions,
        sandbox: c.sandbox,
    }
}

#[tonic::async_trait]
impl Containers for ContainersService {
    async fn get(
        &self,
        r: Request<api::GetContainerRequest>,
    ) -> Result<Response<api::GetContainerResponse>, Status> {
        let ns = namespace(&r)?;
        let c = containers::get(&self.0, &ns, &r.into_inner().id)?;
        Ok(Response::new(api::GetContainerResponse {
            container: Some(to_api(c)),
        }))
    }

    async fn list(
        &self,
        r: Request<api::ListContainersRequest>,
    ) -> Result<Response<api::ListContainersResponse>, Status> {
        let ns = namespace(&r)?;
        let f = filter(&r.into_inner().filters)?;
        let containers = containers::list(&self.0, &ns, &f)?
            .into_iter()
            .map(to_api)
            .collect();
        Ok(Response::new(api::ListContainersResponse { containers }))
    }

    type ListStreamStream = BoxStream<api::ListContainerMessage>;

    async fn list_stream(
        &self,
        r: Request<api::ListContainersRequest>,
    ) -> Result<Response<Self::ListStreamStream>, Status> {
        let ns = namespace(&r)?;
        let f = filter(&r.into_inner().filters)?;
        let items: Vec<_> = containers::list(&self.0, &ns, &f)?
            .into_iter()
            .map(|c| {
                Ok(api::ListContainerMessage {
                    container: Some(to_api(c)),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }

    async fn create(
        &self,
        r: Request<api::CreateContainerRequest>,
    ) -> Result<Response<api::CreateContainerResponse>, Status> {
        let ns = namespace(&r)?;
        let c = from_api(r.into_inner().container.unwrap_or_default());
        let m = self.0.clone();
        let c = quick(&self.0, move || containers::create(&m, &ns, c)).await?;
        Ok(Response::new(api::CreateContainerResponse {
            container: Some(to_api(c)),
        }))
    }

    async fn update(
        &self,
        r: Request<api::UpdateContainerRequest>,
    ) -> Result<Response<api::UpdateContainerResponse>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let c = from_api(r.container.unwrap_or_default());
        let p = paths(r.update_mask);
        let m = self.0.clone();
        let c = quick(&self.0, move || containers::update(&m, &ns, c, &p)).await?;
        Ok(Response::new(api::UpdateContainerResponse {
            container: Some(to_api(c)),
        }))
    }

    async fn delete(
        &self,
        r: Request<api::DeleteContainerRequest>,
    ) -> Result<Response<()>, Status> {
        let ns = namespace(&r)?;
        let id = r.into_inner().id;
        let m = self.0.clone();
        quick(&self.0, move || containers::delete(&m, &ns, &id)).await?;
        Ok(Response::new(()))
    }
}
