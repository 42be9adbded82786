//! Validation of client-chosen identifiers (namespaces, containers, leases, snapshot keys...) and
//! labels, at the API edge and with containerd's rules and messages.
//!
//! An identifier is runs of ASCII letters and digits joined by single `.`, `_` or `-`, at most 76
//! bytes, so it is safe as a path component and a DNS-like name.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// Longest identifier containerd accepts, in bytes.
pub const MAX_IDENTIFIER_LEN: usize = 76;

/// The rule, as containerd spells it in its error message.
const IDENTIFIER_PATTERN: &str = "^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$";

/// Largest `len(key) + len(value)` of one label, in bytes.
pub const MAX_LABEL_SIZE: usize = 4096;

/// How much of an oversized label key the error message repeats.
const LABEL_KEY_SHOWN: usize = 64;

pub fn validate(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid("identifier must not be empty"));
    }
    if id.len() > MAX_IDENTIFIER_LEN {
        // clipped: an id of megabytes would otherwise be echoed whole in a gRPC header
        return Err(Error::invalid(format!(
            "identifier {:?} greater than maximum length ({MAX_IDENTIFIER_LEN} characters)",
            clip(id, MAX_IDENTIFIER_LEN)
        )));
    }
    if !well_formed(id.as_bytes()) {
        return Err(Error::invalid(format!(
            "identifier {id:?} must match {IDENTIFIER_PATTERN}"
        )));
    }
    Ok(())
}

/// Matches `IDENTIFIER_PATTERN` without a regex: every separator must follow an alphanumeric, and
/// the last byte must be alphanumeric.
fn well_formed(id: &[u8]) -> bool {
    let mut after_alnum = false;
    for &b in id {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => after_alnum = true,
            b'.' | b'_' | b'-' if after_alnum => after_alnum = false,
            _ => return false,
        }
    }
    after_alnum
}

pub fn validate_label(key: &str, value: &str) -> Result<()> {
    let total = key.len() + value.len();
    if total > MAX_LABEL_SIZE {
        return Err(Error::invalid(format!(
            "label key and value length ({total} bytes) greater than maximum size \
             ({MAX_LABEL_SIZE} bytes), key: {}",
            clip(key, LABEL_KEY_SHOWN)
        )));
    }
    Ok(())
}

/// Checks every label; when several are too large, the error names the smallest key, so the
/// answer does not depend on map order.
pub fn validate_labels(labels: &HashMap<String, String>) -> Result<()> {
    let bad = labels
        .iter()
        .filter(|(k, v)| k.len() + v.len() > MAX_LABEL_SIZE)
        .min_by_key(|(k, _)| k.as_str());
    match bad {
        Some((k, v)) => validate_label(k, v),
        None => Ok(()),
    }
}

/// At most `max` bytes of `s`, cut on a character boundary, with `...` when something was cut.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn invalid(id: &str) -> String {
        let e = validate(id).expect_err(id);
        assert_eq!(e.kind, Kind::InvalidArgument, "{id:?}");
        e.msg
    }

    #[test]
    fn valid_identifiers() {
        for id in [
            "default",
            "Default",
            "default-default",
            "containerd.io",
            "swarmkit.docker.io",
            "0912341234",
            "task.0.0123456789",
            "container.system-75-f19a.00",
            "underscores_are_allowed",
            "a",
            "a.b_c-d",
            &"a".repeat(MAX_IDENTIFIER_LEN),
        ] {
            assert_eq!(validate(id), Ok(()), "{id:?}");
        }
    }

    #[test]
    fn invalid_identifiers() {
        for id in [
            ".foo..foo",
            "foo/foo",
            "foo/..",
            "..",
            ".",
            "foo..foo",
            "a..b",
            "foo.-boo",
            "-foo.boo",
            "-a",
            "a-",
            "a.",
            "_a",
            "foo.boo-",
            "but__only_tasteful_underscores",
            "zn--e9.org",
            "default--default",
            "a b",
            "a\0b",
            "a\nb",
            "naïve",
            "日本",
            "ａ", // fullwidth letter
        ] {
            assert_eq!(
                invalid(id),
                format!("identifier {id:?} must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$"),
            );
        }
        assert_eq!(invalid(""), "identifier must not be empty");
    }

    #[test]
    fn length_boundary_is_in_bytes() {
        let long = "a".repeat(MAX_IDENTIFIER_LEN + 1);
        assert_eq!(
            invalid(&long),
            format!(
                "identifier \"{}...\" greater than maximum length (76 characters)",
                "a".repeat(76)
            )
        );
        // 38 two-byte characters fit the length and then fail the pattern
        assert!(invalid(&"é".repeat(38)).contains("must match"));
        assert!(invalid(&"é".repeat(39)).contains("greater than maximum length"));
        // a huge id is not echoed whole
        assert!(invalid(&"x".repeat(1 << 20)).len() < 200);
    }

    #[test]
    fn label_sizes() {
        assert_eq!(validate_label("some", "value"), Ok(()));
        assert_eq!(validate_label("", ""), Ok(()));
        assert_eq!(validate_label("s", &"s".repeat(MAX_LABEL_SIZE - 1)), Ok(()));
        assert_eq!(validate_label(&"k".repeat(MAX_LABEL_SIZE), ""), Ok(()));

        let e = validate_label(&"s".repeat(MAX_LABEL_SIZE), "s").expect_err("4097 bytes");
        assert_eq!(e.kind, Kind::InvalidArgument);
        assert_eq!(
            e.msg,
            format!(
                "label key and value length (4097 bytes) greater than maximum size (4096 bytes), \
                 key: {}...",
                "s".repeat(64)
            )
        );
        let e = validate_label("short", &"v".repeat(MAX_LABEL_SIZE)).expect_err("4101 bytes");
        assert!(e.msg.ends_with("(4096 bytes), key: short"), "{}", e.msg);
        // multi-byte keys are cut on a character boundary
        let e = validate_label(&"é".repeat(100), &"v".repeat(MAX_LABEL_SIZE)).expect_err("big");
        assert!(
            e.msg.ends_with(&format!("key: {}...", "é".repeat(32))),
            "{}",
            e.msg
        );
    }

    #[test]
    fn label_maps() {
        let mut labels = HashMap::from([
            ("containerd.io/gc.root".to_string(), "x".to_string()),
            ("b".to_string(), "v".repeat(MAX_LABEL_SIZE - 1)),
        ]);
        assert_eq!(validate_labels(&labels), Ok(()));
        assert_eq!(validate_labels(&HashMap::new()), Ok(()));
        labels.insert("z".into(), "v".repeat(MAX_LABEL_SIZE));
        labels.insert("c".into(), "v".repeat(MAX_LABEL_SIZE));
        let e = validate_labels(&labels).expect_err("two too large");
        assert_eq!(e.kind, Kind::InvalidArgument);
        assert!(e.msg.ends_with("key: c"), "{}", e.msg);
    }
}

/// Longest lease id: `ctr images mount` names its lease after the mount target, a path.
pub const MAX_LEASE_ID_LEN: usize = 4096;

/// Lease ids are looser than identifiers, as containerd takes any text: ctr 1.6 makes them as
/// `<nanos>-<base64url of 3 random bytes>` (which may end in `_` or hold `-_`), and
/// `ctr images mount IMAGE /mnt/x` uses the target path as the lease id. They are only ever key
/// parts, never paths, so: 1 to 4096 bytes without control characters (NUL separates key parts).
pub fn validate_lease_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid("lease id must not be empty"));
    }
    if id.len() > MAX_LEASE_ID_LEN {
        return Err(Error::invalid(format!(
            "lease id {:?}... greater than maximum length ({MAX_LEASE_ID_LEN} bytes)",
            id.chars().take(MAX_IDENTIFIER_LEN).collect::<String>()
        )));
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "lease id {id:?}: control character {c:?} not allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod lease_id_tests {
    use super::*;

    #[test]
    fn ctr_random_ids_are_accepted() {
        for id in [
            "934907600-aHx_",
            "1-__-_",
            "x",
            "a.b",
            "/mnt/x",
            "a b",
            &"x".repeat(4096),
        ] {
            validate_lease_id(id).unwrap();
        }
        for id in ["", "a\0b", "a\nb", &"x".repeat(4097)] {
            assert!(validate_lease_id(id).is_err(), "{id:?}");
        }
    }
}
