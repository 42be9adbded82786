//! The stored record of one snapshot and the byte layout of the metadata keys.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Info, Kind, Labels, Usage};

/// One snapshot. A protobuf message of our own so fields can be added without a migration.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotRec {
    /// The number naming the snapshot's directory; from the counter, never reused.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// 1 view, 2 active, 3 committed (containerd's wire numbers).
    #[prost(int32, tag = "2")]
    pub kind: i32,
    /// The committed parent's key, empty for none.
    #[prost(string, tag = "3")]
    pub parent: String,
    #[prost(map = "string, string", tag = "4")]
    pub labels: Labels,
    /// Nanoseconds since the epoch.
    #[prost(int64, tag = "5")]
    pub created: i64,
    #[prost(int64, tag = "6")]
    pub updated: i64,
    /// Usage measured at commit; unused for active snapshots and views.
    #[prost(int64, tag = "7")]
    pub size: i64,
    #[prost(int64, tag = "8")]
    pub inodes: i64,
}

impl SnapshotRec {
    pub fn kind(&self) -> Kind {
        kind_from_i32(self.kind)
    }

    pub fn parent(&self) -> Option<&str> {
        (!self.parent.is_empty()).then_some(self.parent.as_str())
    }

    pub fn usage(&self) -> Usage {
        Usage {
            size: self.size,
            inodes: self.inodes,
        }
    }

    pub fn info(&self, key: &str) -> Info {
        Info {
            name: key.to_string(),
            parent: self.parent().map(str::to_string),
            kind: self.kind(),
            labels: self.labels.clone(),
            created: from_nanos(self.created),
            updated: from_nanos(self.updated),
        }
    }
}

pub fn kind_to_i32(kind: Kind) -> i32 {
    match kind {
        Kind::View => 1,
        Kind::Active => 2,
        Kind::Committed => 3,
    }
}

fn kind_from_i32(v: i32) -> Kind {
    match v {
        1 => Kind::View,
        3 => Kind::Committed,
        // Records are only written by this crate; anything else would be a bug, and "active"
        // is the kind that refuses the fewest operations wrongly (it cannot be a parent).
        _ => Kind::Active,
    }
}

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

fn from_nanos(n: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(n.max(0) as u64)
}

// Key layout. Every key starts with a one-byte kind and a NUL:
//
//   m \0 version                   -> u32 (big endian), the schema version
//   m \0 next_id                   -> u64 (big endian), the id the next snapshot gets
//   s \0 <key>                     -> SnapshotRec
//   c \0 <parent id> <child id>    -> empty; parent→children index (ids as u64 big endian)
//
// Keys are any text (they may hold spaces, slashes or NULs); they are only ever used as the
// tail of a sled key, never as a path.

pub const VERSION_KEY: &[u8] = b"m\0version";
pub const NEXT_ID_KEY: &[u8] = b"m\0next_id";
pub const SNAPSHOT_PREFIX: &[u8] = b"s\0";
const CHILD_PREFIX: &[u8] = b"c\0";

pub fn snapshot_key(key: &str) -> Vec<u8> {
    let mut k = SNAPSHOT_PREFIX.to_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

/// The user key of a `s \0 <key>` sled key.
pub fn user_key(k: &[u8]) -> Option<String> {
    let tail = k.strip_prefix(SNAPSHOT_PREFIX)?;
    String::from_utf8(tail.to_vec()).ok()
}

pub fn children_prefix(parent: u64) -> Vec<u8> {
    let mut k = CHILD_PREFIX.to_vec();
    k.extend_from_slice(&parent.to_be_bytes());
    k
}

pub fn child_key(parent: u64, child: u64) -> Vec<u8> {
    let mut k = children_prefix(parent);
    k.extend_from_slice(&child.to_be_bytes());
    k
}

pub fn decode_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_any_text() {
        let k = snapshot_key("extract-1 sha256:abc/\0x");
        assert_eq!(user_key(&k).as_deref(), Some("extract-1 sha256:abc/\0x"));
        assert!(child_key(7, 9).starts_with(&children_prefix(7)));
        assert!(!child_key(7, 9).starts_with(&children_prefix(9)));
    }

    #[test]
    fn kinds_round_trip() {
        for k in [Kind::View, Kind::Active, Kind::Committed] {
            assert_eq!(kind_from_i32(kind_to_i32(k)), k);
        }
    }
}
