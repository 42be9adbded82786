//! Loading a bundle's config.json. Names that oci-spec would reject with a terse serde message (an unknown
//! capability) are checked first on the raw JSON so the user learns which name is wrong.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::Value;

use crate::capabilities;
use crate::error::{Context, Error, Result};

/// A bundle whose config parsed and whose rootfs path is resolved to an absolute, existing directory.
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
}

pub fn load_bundle(dir: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(dir).ctx(|| format!("bundle {}", dir.display()))?;
    let config = dir.join("config.json");
    let text = std::fs::read(&config).ctx(|| format!("read {}", config.display()))?;
    let spec = parse_config(&text).map_err(|e| match e {
        Error::InvalidArgument(msg) => Error::invalid(format!("{}: {msg}", config.display())),
        other => other,
    })?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("{}: root is required", config.display())))?;
    let rootfs = dir.join(root.path());
    let rootfs = std::fs::canonicalize(&rootfs).ctx(|| format!("rootfs {}", rootfs.display()))?;
    if !rootfs.is_dir() {
        return Err(Error::invalid(format!(
            "rootfs {} is not a directory",
            rootfs.display()
        )));
    }
    Ok(Bundle { dir, rootfs, spec })
}

/// Parses config.json. Directly into the typed spec; only a config that fails is parsed again as plain
/// JSON, to say which capability name is unknown rather than serde's "unknown variant". (Accepted names
/// are checked by validation, against the capabilities this runtime can apply.)
pub fn parse_config(text: &[u8]) -> Result<Spec> {
    serde_json::from_slice(text).or_else(|_| parse_config_slowly(text))
}

fn parse_config_slowly(text: &[u8]) -> Result<Spec> {
    let raw: Value =
        serde_json::from_slice(text).map_err(|e| Error::invalid(format!("invalid json: {e}")))?;
    check_capability_names(&raw)?;
    serde_json::from_value(raw).map_err(|e| Error::invalid(format!("invalid config: {e}")))
}

fn check_capability_names(raw: &Value) -> Result<()> {
    let Some(sets) = raw
        .pointer("/process/capabilities")
        .and_then(Value::as_object)
    else {
        return Ok(());
    };
    for (set, names) in sets {
        for name in names.as_array().map(Vec::as_slice).unwrap_or_default() {
            let name = name.as_str().unwrap_or_default();
            if capabilities::parse_name(name).is_none() {
                return Err(Error::invalid(format!(
                    "unknown capability {name:?} in process.capabilities.{set}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_capability_is_named() {
        let cfg = br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "process":{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh"],
            "capabilities":{"bounding":["CAP_KILL","CAP_FLY"]}}}"#;
        let err = parse_config(cfg).expect_err("must fail").to_string();
        assert!(err.contains("\"CAP_FLY\""), "{err}");
        assert!(err.contains("bounding"), "{err}");
    }

    #[test]
    fn minimal_config_parses() {
        let cfg = br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "process":{"cwd":"/","user":{"uid":4294967294,"gid":0},"args":["sh"]}}"#;
        let spec = parse_config(cfg).expect("parse");
        let uid = spec.process().as_ref().expect("process").user().uid();
        assert_eq!(uid, 4_294_967_294, "uids stay u32 end to end");
    }
}
