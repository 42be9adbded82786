use berth_api::grpc::health::v1::health_check_response::ServingStatus;
use berth_api::grpc::health::v1::health_server::Health;
use berth_api::grpc::health::v1::{HealthCheckRequest, HealthCheckResponse};
use tonic::{Request, Response, Status};

use super::BoxStream;

/// The daemon serves as soon as it listens; there is no degraded state yet.
pub struct HealthService;

fn serving() -> HealthCheckResponse {
    HealthCheckResponse {
        status: ServingStatus::Serving as i32,
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(serving()))
    }

    type WatchStream = BoxStream<HealthCheckResponse>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // One SERVING, then the stream stays open until the daemon stops.
        let s = tokio_stream::StreamExt::chain(
            tokio_stream::once(Ok(serving())),
            tokio_stream::pending(),
        );
        Ok(Response::new(Box::pin(s)))
    }
}
