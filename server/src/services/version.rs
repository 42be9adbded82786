use berth_api::containerd::services::version::v1::version_server::Version;
use berth_api::containerd::services::version::v1::VersionResponse;
use tonic::{Request, Response, Status};

/// The containerd API level Berth speaks, with Berth's own version as build metadata, so that
/// clients parsing a semver (nerdctl) see a 1.6 server and people see Berth.
pub const VERSION: &str = concat!("1.6.20+berth.", env!("CARGO_PKG_VERSION"));
pub const REVISION: &str = concat!("berth-", env!("CARGO_PKG_VERSION"));

pub struct VersionService;

#[tonic::async_trait]
impl Version for VersionService {
    async fn version(&self, _: Request<()>) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: VERSION.into(),
            revision: REVISION.into(),
        }))
    }
}
