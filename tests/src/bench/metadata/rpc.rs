//! The workload issued from inside this process: each operation as the gRPC calls ctr 1.6.20
//! makes for it, over one HTTP/2 connection per daemon. This leaves out ctr's process start-up
//! (the bulk of a ctr command's time), so what remains is the daemon's own cost.
//!
//! The call sequences were recorded with a logging HTTP/2 proxy between ctr and a daemon:
//! - `content ls`: Content.List; `content label`: Content.Update (mask `labels.<key>`);
//! - `images ls`: Images.List, then per image Info+Read of the manifest twice (size, then
//!   platforms) and Info+Read of the config;
//! - `images tag`: Leases.Create (expiring in 24 h), Images.Get and Images.Create under the
//!   lease, Leases.Delete;
//! - `images label`: Images.Update (mask `labels.<key>`); `images rm`: Images.Delete;
//! - `leases create/ls/rm`: Leases.Create (expiring in 24 h) / List / Delete;
//! - `namespaces label`: Namespaces.Update (mask `labels.<key>`).

use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use berth_api::containerd::services::content::v1 as content;
use berth_api::containerd::services::images::v1 as images;
use berth_api::containerd::services::leases::v1 as leases;
use berth_api::containerd::services::namespaces::v1 as namespaces;
use prost_types::FieldMask;

use super::ops::{Op, LABEL_KEY};
use crate::grpc::{leased, req, Grpc};

/// containerd's label naming when a lease may be collected.
const GC_EXPIRE: &str = "containerd.io/gc.expire";
/// ctr's default lease lifetime.
const LEASE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// One daemon's connection, working in one namespace.
pub struct Mirror {
    grpc: Grpc,
    namespace: String,
    /// Makes the temporary lease ids of `images tag` unique within the run.
    leases: Cell<u64>,
}

impl Mirror {
    pub async fn connect(socket: &Path, namespace: &str) -> anyhow::Result<Mirror> {
        Ok(Mirror {
            grpc: Grpc::connect(socket).await?,
            namespace: namespace.to_string(),
            leases: Cell::new(0),
        })
    }

    fn mask(key: &str) -> Option<FieldMask> {
        Some(FieldMask {
            paths: vec![format!("labels.{key}")],
        })
    }

    fn expiring() -> HashMap<String, String> {
        let at = SystemTime::now() + LEASE_LIFETIME;
        HashMap::from([(GC_EXPIRE.to_string(), rfc3339_utc(at))])
    }

    /// Issues `op`'s calls in order, draining every stream.
    pub async fn run(&self, op: &Op) -> anyhow::Result<()> {
        let ns = self.namespace.as_str();
        match op {
            Op::ContentList => {
                let mut stream = self
                    .grpc
                    .content()
                    .list(req(ns, content::ListContentRequest::default()))
                    .await?
                    .into_inner();
                while stream.message().await?.is_some() {}
            }
            Op::ContentLabel { digest, value } => {
                let info = content::Info {
                    digest: digest.clone(),
                    labels: HashMap::from([(LABEL_KEY.to_string(), value.clone())]),
                    ..Default::default()
                };
                let request = content::UpdateRequest {
                    info: Some(info),
                    update_mask: Self::mask(LABEL_KEY),
                };
                self.grpc.content().update(req(ns, request)).await?;
            }
            Op::ImageList => {
                let list = self
                    .grpc
                    .images()
                    .list(req(ns, images::ListImagesRequest::default()))
                    .await?
                    .into_inner();
                for image in list.images {
                    let target = image.target.context("listed image without a target")?;
                    self.read_blob(&target.digest).await?;
                    let manifest = self.read_blob(&target.digest).await?;
                    let config = config_digest(&manifest)
                        .with_context(|| format!("manifest of image {:?}", image.name))?;
                    self.read_blob(&config).await?;
                }
            }
            Op::ImageTag { source, target } => {
                let n = self.leases.get() + 1;
                self.leases.set(n);
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                let lease = format!("{nanos}-bench{n}");
                let create = leases::CreateRequest {
                    id: lease.clone(),
                    labels: Self::expiring(),
                };
                self.grpc.leases().create(req(ns, create)).await?;
                let get = images::GetImageRequest {
                    name: source.clone(),
                };
                let mut image = self
                    .grpc
                    .images()
                    .get(leased(ns, &lease, get))
                    .await?
                    .into_inner()
                    .image
                    .with_context(|| format!("image {source:?}: get returned no image"))?;
                image.name = target.clone();
                let create = images::CreateImageRequest {
                    image: Some(image),
                    ..Default::default()
                };
                self.grpc
                    .images()
                    .create(leased(ns, &lease, create))
                    .await?;
                let delete = leases::DeleteRequest {
                    id: lease,
                    sync: false,
                };
                self.grpc.leases().delete(req(ns, delete)).await?;
            }
            Op::LeaseCreate { id } => {
                let create = leases::CreateRequest {
                    id: id.clone(),
                    labels: Self::expiring(),
                };
                self.grpc.leases().create(req(ns, create)).await?;
            }
            Op::ImageLabel { name, value } => {
                let image = images::Image {
                    name: name.clone(),
                    labels: HashMap::from([(LABEL_KEY.to_string(), value.clone())]),
                    ..Default::default()
                };
                let update = images::UpdateImageRequest {
                    image: Some(image),
                    update_mask: Self::mask(LABEL_KEY),
                    ..Default::default()
                };
                self.grpc.images().update(req(ns, update)).await?;
            }
            Op::LeaseList => {
                self.grpc
                    .leases()
                    .list(req(ns, leases::ListRequest::default()))
                    .await?;
            }
            Op::ImageRemove { name } => {
                let delete = images::DeleteImageRequest {
                    name: name.clone(),
                    ..Default::default()
                };
                self.grpc.images().delete(req(ns, delete)).await?;
            }
            Op::LeaseRemove { id } => {
                let delete = leases::DeleteRequest {
                    id: id.clone(),
                    sync: false,
                };
                self.grpc.leases().delete(req(ns, delete)).await?;
            }
            Op::NamespaceLabel { namespace, value } => {
                let update = namespaces::UpdateNamespaceRequest {
                    namespace: Some(namespaces::Namespace {
                        name: namespace.clone(),
                        labels: HashMap::from([(LABEL_KEY.to_string(), value.clone())]),
                    }),
                    update_mask: Self::mask(LABEL_KEY),
                };
                self.grpc.namespaces().update(req(ns, update)).await?;
            }
        }
        Ok(())
    }

    /// A whole blob the way ctr reads one: Info for the size, then one Read of that size.
    async fn read_blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let ns = self.namespace.as_str();
        let info = self
            .grpc
            .content()
            .info(req(
                ns,
                content::InfoRequest {
                    digest: digest.to_string(),
                },
            ))
            .await?
            .into_inner()
            .info
            .with_context(|| format!("blob {digest}: info returned nothing"))?;
        let read = content::ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: info.size,
        };
        let mut stream = self.grpc.content().read(req(ns, read)).await?.into_inner();
        let mut data = Vec::with_capacity(usize::try_from(info.size).unwrap_or(0));
        while let Some(chunk) = stream.message().await? {
            data.extend_from_slice(&chunk.data);
        }
        if data.len() as i64 != info.size {
            bail!(
                "blob {digest}: read {} bytes, info says {}",
                data.len(),
                info.size
            );
        }
        Ok(data)
    }
}

/// The config digest of an image manifest (the fixture is a single-platform image, so its
/// target is a manifest, never an index).
fn config_digest(manifest: &[u8]) -> anyhow::Result<String> {
    let value: serde_json::Value = serde_json::from_slice(manifest).context("parse manifest")?;
    value["config"]["digest"]
        .as_str()
        .map(str::to_string)
        .context("manifest has no config digest (an index is not supported here)")
}

/// `t` as RFC 3339 in UTC with whole seconds, as Go's `time.RFC3339` prints it.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (eras of 400 years, March-based
/// years so the leap day falls last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(rfc3339_utc(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(at(1_700_000_000)), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(at(4_102_444_799)), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn finds_config_digest() {
        let manifest = br#"{"schemaVersion":2,"config":{"digest":"sha256:abc","size":1}}"#;
        assert_eq!(config_digest(manifest).expect("digest"), "sha256:abc");
        assert!(config_digest(br#"{"manifests":[]}"#).is_err());
    }
}
