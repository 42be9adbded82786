use std::sync::Arc;

use api::namespaces_server::Namespaces;
use berth_api::containerd::services::namespaces::v1 as api;
use tonic::{Request, Response, Status};

use super::{paths, quick};
use crate::metadata::namespaces as ns;
use crate::Meta;

pub struct NamespacesService(pub Arc<Meta>);

#[tonic::async_trait]
impl Namespaces for NamespacesService {
    async fn get(
        &self,
        r: Request<api::GetNamespaceRequest>,
    ) -> Result<Response<api::GetNamespaceResponse>, Status> {
        let name = r.into_inner().name;
        let labels = ns::get(&self.0, &name)?;
        Ok(Response::new(api::GetNamespaceResponse {
            namespace: Some(api::Namespace { name, labels }),
        }))
    }

    async fn list(
        &self,
        _: Request<api::ListNamespacesRequest>,
    ) -> Result<Response<api::ListNamespacesResponse>, Status> {
        let namespaces = ns::list(&self.0)?
            .into_iter()
            .map(|(name, labels)| api::Namespace { name, labels })
            .collect();
        Ok(Response::new(api::ListNamespacesResponse { namespaces }))
    }

    async fn create(
        &self,
        r: Request<api::CreateNamespaceRequest>,
    ) -> Result<Response<api::CreateNamespaceResponse>, Status> {
        let n = r.into_inner().namespace.unwrap_or_default();
        let m = self.0.clone();
        let name = n.name.clone();
        let labels = quick(&self.0, move || ns::create(&m, &n.name, n.labels)).await?;
        Ok(Response::new(api::CreateNamespaceResponse {
            namespace: Some(api::Namespace { name, labels }),
        }))
    }

    async fn update(
        &self,
        r: Request<api::UpdateNamespaceRequest>,
    ) -> Result<Response<api::UpdateNamespaceResponse>, Status> {
        let r = r.into_inner();
        let n = r.namespace.unwrap_or_default();
        let p = paths(r.update_mask);
        let m = self.0.clone();
        let name = n.name.clone();
        let labels = quick(&self.0, move || ns::update(&m, &n.name, n.labels, &p)).await?;
        Ok(Response::new(api::UpdateNamespaceResponse {
            namespace: Some(api::Namespace { name, labels }),
        }))
    }

    async fn delete(
        &self,
        r: Request<api::DeleteNamespaceRequest>,
    ) -> Result<Response<()>, Status> {
        let name = r.into_inner().name;
        let m = self.0.clone();
        quick(&self.0, move || ns::delete(&m, &name)).await?;
        Ok(Response::new(()))
    }
}
