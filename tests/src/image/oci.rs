//! Writes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/*`) as one tarball.
//!
//! Blobs are streamed into the archive as they are produced, so a multi-hundred-megabyte image
//! never has more than one layer in memory.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};

use super::tarball::TarWriter;
use super::{host_architecture, media_type, sha256_digest, ImageInfo};

/// A layer blob as it goes into the archive.
pub struct Layer {
    pub media_type: &'static str,
    /// The blob bytes as stored (gzip for compressed layers).
    pub blob: Vec<u8>,
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
}

/// A descriptor: media type, digest and size of a blob already written.
#[derive(Clone)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    pub fn to_json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

pub struct OciWriter {
    tar: TarWriter<BufWriter<File>>,
    layers: Vec<Descriptor>,
    diff_ids: Vec<String>,
}

impl OciWriter {
    pub fn create(out: &Path) -> anyhow::Result<Self> {
        let file = File::create(out).with_context(|| format!("create {}", out.display()))?;
        let mut tar = TarWriter::new(BufWriter::with_capacity(1 << 20, file));
        tar.dir("blobs", 0o755)?;
        tar.dir("blobs/sha256", 0o755)?;
        Ok(OciWriter {
            tar,
            layers: Vec::new(),
            diff_ids: Vec::new(),
        })
    }

    fn blob(&mut self, media_type: &str, data: &[u8]) -> anyhow::Result<Descriptor> {
        let digest = sha256_digest(data);
        let path = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        self.tar.file(&path, 0o644, data)?;
        Ok(Descriptor {
            media_type: media_type.to_string(),
            digest,
            size: data.len() as u64,
        })
    }

    pub fn add_layer(&mut self, layer: Layer) -> anyhow::Result<()> {
        let desc = self.blob(layer.media_type, &layer.blob)?;
        self.layers.push(desc);
        self.diff_ids.push(layer.diff_id);
        Ok(())
    }

    pub fn diff_ids(&self) -> &[String] {
        &self.diff_ids
    }

    /// Writes config, manifest, `oci-layout` and `index.json` and closes the archive.
    ///
    /// `name` goes into the index as `io.containerd.image.name`, which ctr 1.6 takes verbatim as
    /// the image name; the tag alone goes into `org.opencontainers.image.ref.name` the way
    /// containerd's own exporter writes it, for tools that read only the OCI annotation.
    pub fn finish(mut self, name: &str, config: &Value) -> anyhow::Result<ImageInfo> {
        let config_bytes = serde_json::to_vec(config).context("encode image config")?;
        let config_desc = self.blob(media_type::OCI_CONFIG, &config_bytes)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": config_desc.to_json(),
            "layers": self.layers.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
        });
        let manifest_bytes = serde_json::to_vec(&manifest).context("encode image manifest")?;
        let manifest_desc = self.blob(media_type::OCI_MANIFEST, &manifest_bytes)?;

        let mut annotations = serde_json::Map::new();
        annotations.insert("io.containerd.image.name".into(), json!(name));
        if let Some(tag) = reference_tag(name) {
            annotations.insert("org.opencontainers.image.ref.name".into(), json!(tag));
        }
        let mut entry = manifest_desc.to_json();
        entry["platform"] = json!({ "architecture": host_architecture(), "os": "linux" });
        entry["annotations"] = Value::Object(annotations);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": [entry],
        });
        let index_bytes = serde_json::to_vec(&index).context("encode image index")?;
        self.tar
            .file("oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        self.tar.file("index.json", 0o644, &index_bytes)?;
        let mut out = self.tar.finish()?;
        std::io::Write::flush(&mut out).context("flush image archive")?;

        let layer_bytes: u64 = self.layers.iter().map(|l| l.size).sum();
        Ok(ImageInfo {
            name: name.to_string(),
            manifest_digest: manifest_desc.digest,
            manifest_media_type: media_type::OCI_MANIFEST.to_string(),
            config_digest: config_desc.digest,
            layer_digests: self.layers.iter().map(|l| l.digest.clone()).collect(),
            diff_ids: self.diff_ids,
            blob_count: self.layers.len() + 2,
            total_blob_bytes: layer_bytes + config_desc.size + manifest_desc.size,
        })
    }
}

/// The tag of a reference (`latest` in `docker.io/library/busybox:latest`), if it has one.
pub fn reference_tag(name: &str) -> Option<&str> {
    let without_digest = name.split('@').next().unwrap_or(name);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':')
        .map(|(_, tag)| tag)
        .filter(|t| !t.is_empty())
}

/// An image config: the platform of this machine, `PATH`, the given command and layers.
pub fn image_config(diff_ids: &[String], cmd: Option<&[&str]>, created_by: &str) -> Value {
    let mut config = json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "WorkingDir": "/",
    });
    if let Some(cmd) = cmd {
        config["Cmd"] = json!(cmd);
    }
    let history: Vec<Value> = diff_ids
        .iter()
        .map(|_| json!({ "created": super::tarball::CREATED, "created_by": created_by }))
        .collect();
    json!({
        "architecture": host_architecture(),
        "os": "linux",
        "created": super::tarball::CREATED,
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    })
}
