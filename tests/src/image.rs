//! Offline test images: tarballs that `ctr images import` understands, built byte-for-byte
//! deterministically so their digests are stable across runs and machines with the same busybox.
//!
//! Three builders:
//! - [`busybox_oci_tar`]: OCI image layout, one gzip layer with Debian's static busybox.
//! - [`busybox_docker_tar`]: the same image as a `docker save` style archive.
//! - [`generated_image_tar`]: many uncompressed layers of incompressible data, for benchmarks.
//! - [`layered::layered_image_tar`]: layers described change by change, with the tree they unpack to.

mod busybox;
mod docker;
mod generated;
pub mod layered;
mod oci;
mod tarball;

pub use busybox::{busybox_docker_tar, busybox_oci_tar, BUSYBOX_APPLETS, BUSYBOX_PATH};
pub use docker::normalize_docker_name;
pub use generated::generated_image_tar;

/// Media types used by the builders and by what `ctr` synthesizes on import.
pub mod media_type {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
}

/// What a builder wrote, so tests can check the store against it.
///
/// Digests are `sha256:<hex>`. The blobs counted in `blob_count` and `total_blob_bytes` are the ones
/// the image references once imported: manifest, config and layers (not the OCI `index.json`, which
/// ctr does not keep). For docker archives the manifest is the one `ctr images import` synthesizes;
/// its digest is predicted here and the containerd test checks the prediction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The name `ctr images ls` shows after import.
    pub name: String,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub config_digest: String,
    /// Layer blobs as stored (compressed where the layer is compressed).
    pub layer_digests: Vec<String>,
    /// Digests of the uncompressed layer tars, as in the config's `rootfs.diff_ids`.
    pub diff_ids: Vec<String>,
    pub blob_count: usize,
    pub total_blob_bytes: u64,
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The OCI/Go architecture name of the machine the tests run on.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}
