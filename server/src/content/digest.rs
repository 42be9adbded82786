//! Content digests. A `Digest` only exists in validated form, so the store can turn one into a
//! path without re-checking it: user text that is not exactly `sha256:<64 lowercase hex>` never
//! reaches the filesystem.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

const PREFIX: &str = "sha256:";
const HEX_LEN: usize = 64;

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Accepts only the canonical form containerd writes. Uppercase hex is refused rather than
    /// folded because two spellings of one digest would name two different blobs on disk.
    pub fn parse(s: &str) -> Result<Digest> {
        let invalid = |why: &str| Error::invalid(format!("invalid digest {}: {why}", quoted(s)));
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(invalid("missing algorithm prefix"));
        };
        if alg != "sha256" {
            return Err(invalid("unsupported digest algorithm"));
        }
        if hex.len() != HEX_LEN {
            return Err(invalid("sha256 digests have 64 hex characters"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("not lowercase hex"));
        }
        Ok(Digest(s.to_owned()))
    }

    /// Wraps a finished SHA-256 hash (32 bytes).
    pub fn from_sha256(hash: &[u8]) -> Digest {
        assert_eq!(hash.len(), 32, "a sha256 hash is 32 bytes");
        Digest(format!("{PREFIX}{}", hex::encode(hash)))
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_sha256(&Sha256::digest(data))
    }

    /// The encoded part, without `sha256:`; also the blob's file name.
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Quotes user text for an error message, cut short so a huge bogus value can't flood logs.
fn quoted(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        Digest::parse(s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_table() {
        let long = format!("sha256:{}", "a".repeat(65));
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        let cases: &[(&str, bool)] = &[
            (EMPTY, true),
            (&upper, false),
            ("SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", false),
            ("sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e", false),
            ("md5:d41d8cd98f00b204e9800998ecf8427e", false),
            ("sha256:../../x", false),
            ("sha256:../../../../../../../../../../../../../../../../../../../etc/passwd", false),
            ("sha256:e3b0c442", false),
            (&long, false),
            ("sha256:", false),
            ("", false),
            ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", false),
            (" sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", false),
            ("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g", false),
            ("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8é", false),
        ];
        for (input, ok) in cases {
            match Digest::parse(input) {
                Ok(d) => {
                    assert!(ok, "{input:?} should be refused");
                    assert_eq!(d.to_string(), *input);
                }
                Err(e) => {
                    assert!(!ok, "{input:?} should parse: {e}");
                    assert_eq!(e.kind, Kind::InvalidArgument, "{input:?}");
                    assert!(e.msg.starts_with("invalid digest "), "{}", e.msg);
                }
            }
        }
    }

    #[test]
    fn of_and_accessors() {
        let d = Digest::of(b"");
        assert_eq!(d.as_str(), EMPTY);
        assert_eq!(d.hex(), &EMPTY[7..]);
        assert_eq!(EMPTY.parse::<Digest>().expect("valid"), d);
        assert_eq!(Digest::from_sha256(&Sha256::digest(b"")), d);
    }

    #[test]
    fn long_input_is_cut_in_message() {
        let e = Digest::parse(&"x".repeat(10_000)).expect_err("invalid");
        assert!(e.msg.len() < 200, "{}", e.msg);
    }
}
