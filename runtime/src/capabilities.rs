//! Capability sets: translating the spec's names and applying the five sets in an order the kernel accepts.
//!
//! Inheritable capabilities are set exactly as the spec lists them and never defaulted: a populated
//! inheritable set let unprivileged programs gain capabilities through file inheritable bits
//! (CVE-2022-29162 in runc, CVE-2022-27650 in crun).

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Error, Result};

/// Accepts the spec's `CAP_X` spelling (and the bare `X` some tools send).
pub fn parse_name(name: &str) -> Option<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    Capability::from_str(&full).ok()
}

fn convert(set: &Option<Capabilities>) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for cap in set.iter().flatten() {
        let name = serde_json::to_value(cap)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let parsed = parse_name(&name)
            .ok_or_else(|| Error::invalid(format!("unknown capability {name:?}")))?;
        out.insert(parsed);
    }
    Ok(out)
}

/// The five sets, converted and checked against each other before anything is applied.
#[derive(Debug, Default)]
pub struct CapSets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

impl CapSets {
    pub fn from_spec(spec: &LinuxCapabilities) -> Result<Self> {
        let sets = CapSets {
            bounding: convert(spec.bounding())?,
            effective: convert(spec.effective())?,
            permitted: convert(spec.permitted())?,
            inheritable: convert(spec.inheritable())?,
            ambient: convert(spec.ambient())?,
        };
        if let Some(c) = sets.effective.difference(&sets.permitted).next() {
            return Err(Error::invalid(format!(
                "effective capability {c} is not in the permitted set"
            )));
        }
        for c in &sets.ambient {
            if !sets.permitted.contains(c) || !sets.inheritable.contains(c) {
                return Err(Error::invalid(format!(
                    "ambient capability {c} is not in both the permitted and inheritable sets"
                )));
            }
        }
        Ok(sets)
    }

    /// Drops the bounding set; runs while the process still holds CAP_SETPCAP, before the uid change.
    pub fn apply_bounding(&self) -> Result<()> {
        for cap in caps::all() {
            if !self.bounding.contains(&cap)
                && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false)
            {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| Error::Init(format!("drop bounding capability {cap}: {e}")))?;
            }
        }
        Ok(())
    }

    /// Sets inheritable, effective, permitted and ambient after the uid change (which, with keepcaps, left
    /// the permitted set intact). Inheritable goes first because changing it needs CAP_SETPCAP.
    pub fn apply_process_sets(&self) -> Result<()> {
        let fail = |what: &str, e: caps::errors::CapsError| {
            Error::Init(format!("set {what} capabilities: {e}"))
        };
        caps::set(None, CapSet::Inheritable, &self.inheritable)
            .map_err(|e| fail("inheritable", e))?;
        caps::set(None, CapSet::Effective, &self.effective).map_err(|e| fail("effective", e))?;
        caps::set(None, CapSet::Permitted, &self.permitted).map_err(|e| fail("permitted", e))?;
        caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient", e))?;
        for cap in &self.ambient {
            caps::raise(None, CapSet::Ambient, *cap).map_err(|e| fail("ambient", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_or_without_prefix() {
        assert_eq!(parse_name("CAP_SYS_ADMIN"), Some(Capability::CAP_SYS_ADMIN));
        assert_eq!(parse_name("net_raw"), Some(Capability::CAP_NET_RAW));
        assert_eq!(parse_name("CAP_FLY"), None);
    }

    #[test]
    fn ambient_outside_permitted_is_refused() {
        let spec: LinuxCapabilities = serde_json::from_str(
            r#"{"permitted":["CAP_KILL"],"inheritable":["CAP_KILL"],"ambient":["CAP_KILL","CAP_CHOWN"]}"#,
        )
        .expect("parse");
        let err = CapSets::from_spec(&spec)
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("CAP_CHOWN"), "{err}");
    }
}
