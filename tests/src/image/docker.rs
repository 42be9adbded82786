//! Writes a `docker save` style archive (docker.v1.2: `manifest.json`, config, `<id>/layer.tar`,
//! `repositories`) and predicts the manifest that `ctr images import` builds from it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};

use super::oci::reference_tag;
use super::tarball::TarWriter;
use super::{media_type, sha256_digest, ImageInfo};

/// Writes `config` and the uncompressed `layers` as a docker archive tagged `tag`.
pub fn write_docker_archive(
    out: &Path,
    tag: &str,
    config: &Value,
    layers: &[Vec<u8>],
) -> anyhow::Result<ImageInfo> {
    let file = File::create(out).with_context(|| format!("create {}", out.display()))?;
    let mut tar = TarWriter::new(BufWriter::with_capacity(1 << 20, file));

    let mut layer_paths = Vec::new();
    let mut layer_digests = Vec::new();
    let mut layer_descs = Vec::new();
    for layer in layers {
        let digest = sha256_digest(layer);
        let id = digest.trim_start_matches("sha256:").to_string();
        tar.dir(&id, 0o755)?;
        tar.file(&format!("{id}/VERSION"), 0o644, b"1.0")?;
        tar.file(&format!("{id}/layer.tar"), 0o644, layer)?;
        layer_paths.push(format!("{id}/layer.tar"));
        layer_descs.push(go_descriptor(
            media_type::DOCKER_LAYER,
            &digest,
            layer.len(),
        ));
        layer_digests.push(digest);
    }

    let config_bytes = serde_json::to_vec(config).context("encode image config")?;
    let config_digest = sha256_digest(&config_bytes);
    let config_file = format!("{}.json", config_digest.trim_start_matches("sha256:"));
    tar.file(&config_file, 0o644, &config_bytes)?;

    let manifest = json!([{ "Config": config_file, "RepoTags": [tag], "Layers": layer_paths }]);
    let manifest_bytes = serde_json::to_vec(&manifest).context("encode manifest.json")?;
    tar.file("manifest.json", 0o644, &manifest_bytes)?;

    let repo = repository_of(tag);
    let top = layer_digests
        .last()
        .map(|d| d.trim_start_matches("sha256:").to_string())
        .unwrap_or_default();
    let repositories = json!({ repo: { reference_tag(tag).unwrap_or("latest"): top } });
    let repositories_bytes = serde_json::to_vec(&repositories).context("encode repositories")?;
    tar.file("repositories", 0o644, &repositories_bytes)?;
    tar.finish()?.flush().context("flush image archive")?;

    // ctr marshals its manifest from a Go struct: field order fixed, no whitespace, so the bytes
    // (and therefore the digest) are predictable.
    let synthesized = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]}}"#,
        media_type::DOCKER_MANIFEST,
        go_descriptor(
            media_type::DOCKER_CONFIG,
            &config_digest,
            config_bytes.len()
        ),
        layer_descs.join(","),
    );
    let layer_bytes: u64 = layers.iter().map(|l| l.len() as u64).sum();
    Ok(ImageInfo {
        name: normalize_docker_name(tag),
        manifest_digest: sha256_digest(synthesized.as_bytes()),
        manifest_media_type: media_type::DOCKER_MANIFEST.to_string(),
        config_digest,
        diff_ids: layer_digests.clone(),
        layer_digests,
        blob_count: layers.len() + 2,
        total_blob_bytes: layer_bytes + config_bytes.len() as u64 + synthesized.len() as u64,
    })
}

/// A descriptor as Go's encoding/json writes containerd's `ocispec.Descriptor`.
fn go_descriptor(media_type: &str, digest: &str, size: usize) -> String {
    format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#)
}

/// The repository part of a reference (`busybox` in `busybox:latest`).
fn repository_of(name: &str) -> &str {
    let without_digest = name.split('@').next().unwrap_or(name);
    match reference_tag(without_digest) {
        Some(tag) => &without_digest[..without_digest.len() - tag.len() - 1],
        None => without_digest,
    }
}

/// Expands a docker-style short name the way ctr's importer does: a missing registry becomes
/// `docker.io`, a single-component docker.io path gets `library/`, a missing tag becomes `latest`.
pub fn normalize_docker_name(name: &str) -> String {
    let (domain, rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_string())
        }
        _ => ("docker.io", name.to_string()),
    };
    let path = if domain == "docker.io" && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest
    };
    let has_tag = reference_tag(&path).is_some() || path.contains('@');
    let suffix = if has_tag { "" } else { ":latest" };
    format!("{domain}/{path}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(
            normalize_docker_name("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize_docker_name("busybox:1"),
            "docker.io/library/busybox:1"
        );
        assert_eq!(normalize_docker_name("a/b:2"), "docker.io/a/b:2");
        assert_eq!(
            normalize_docker_name("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
        assert_eq!(
            normalize_docker_name("docker.io/library/busybox:latest"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(repository_of("a/b:2"), "a/b");
        assert_eq!(repository_of("localhost:5000/x"), "localhost:5000/x");
    }
}
