use std::sync::Arc;

use api::images_server::Images;
use berth_api::containerd::services::images::v1 as api;
use berth_api::containerd::types::Descriptor;
use tonic::{Request, Response, Status};

use super::{blocking, filter, namespace, paths, quick, ts};
use crate::metadata::{images, DescriptorRec, ImageRec};
use crate::Meta;

pub struct ImagesService(pub Arc<Meta>);

pub fn descriptor_from(d: Descriptor) -> DescriptorRec {
    DescriptorRec {
        media_type: d.media_type,
        digest: d.digest,
        size: d.size,
        annotations: d.annotations,
    }
}

pub fn descriptor_to(d: DescriptorRec) -> Descriptor {
    Descriptor {
        media_type: d.media_type,
        digest: d.digest,
        size: d.size,
        annotations: d.annotations,
    }
}

fn from_api(i: api::Image) -> ImageRec {
    ImageRec {
        name: i.name,
        labels: i.labels,
        target: i.target.map(descriptor_from),
        created_at: 0,
        updated_at: 0,
    }
}

fn to_api(i: ImageRec) -> api::Image {
    api::Image {
        name: i.name,
        labels: i.labels,
        target: i.target.map(descriptor_to),
        created_at: ts(i.created_at),
        updated_at: ts(i.updated_at),
    }
}

#[tonic::async_trait]
impl Images for ImagesService {
    async fn get(
        &self,
        r: Request<api::GetImageRequest>,
    ) -> Result<Response<api::GetImageResponse>, Status> {
        let ns = namespace(&r)?;
        let img = images::get(&self.0, &ns, &r.into_inner().name)?;
        Ok(Response::new(api::GetImageResponse {
            image: Some(to_api(img)),
        }))
    }

    async fn list(
        &self,
        r: Request<api::ListImagesRequest>,
    ) -> Result<Response<api::ListImagesResponse>, Status> {
        let ns = namespace(&r)?;
        let f = filter(&r.into_inner().filters)?;
        let images = images::list(&self.0, &ns, &f)?
            .into_iter()
            .map(to_api)
            .collect();
        Ok(Response::new(api::ListImagesResponse { images }))
    }

    async fn create(
        &self,
        r: Request<api::CreateImageRequest>,
    ) -> Result<Response<api::CreateImageResponse>, Status> {
        let ns = namespace(&r)?;
        let img = from_api(r.into_inner().image.unwrap_or_default());
        let m = self.0.clone();
        let img = quick(&self.0, move || images::create(&m, &ns, img)).await?;
        Ok(Response::new(api::CreateImageResponse {
            image: Some(to_api(img)),
        }))
    }

    async fn update(
        &self,
        r: Request<api::UpdateImageRequest>,
    ) -> Result<Response<api::UpdateImageResponse>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let img = from_api(r.image.unwrap_or_default());
        let p = paths(r.update_mask);
        let m = self.0.clone();
        let img = quick(&self.0, move || images::update(&m, &ns, img, &p)).await?;
        Ok(Response::new(api::UpdateImageResponse {
            image: Some(to_api(img)),
        }))
    }

    async fn delete(&self, r: Request<api::DeleteImageRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let m = self.0.clone();
        // A sync delete runs a whole collection before it answers.
        if r.sync {
            blocking(move || images::delete(&m, &ns, &r.name, true)).await?;
        } else {
            quick(&self.0, move || images::delete(&m, &ns, &r.name, false)).await?;
        }
        Ok(Response::new(()))
    }
}
