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
    /// Set when the snapshot was recorded holding only the empty directories in `empty_dirs`
    /// (an overlay upper and work dir): its directory may then be rebuilt after a power loss
    /// ate it, so creating it needed no directory sync. Cleared at commit, when it holds data.
    #[prost(bool, tag = "9")]
    pub rebuildable: bool,
    #[prost(message, repeated, tag = "10")]
    pub empty_dirs: Vec<EmptyDir>,
}

/// An empty directory directly under a snapshot's directory, as it was made.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EmptyDir {
    #[prost(string, tag = "1")]
    pub name: String,
    /// Permission bits (no file type).
    #[prost(uint32, tag = "2")]
    pub mode: u32,
    #[prost(uint32, tag = "3")]
    pub uid: u32,
    #[prost(uint32, tag = "4")]
    pub gid: u32,
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

// Key layout (schema 2). Every key starts with a one-byte kind and a NUL:
//
//   m \0 version                   -> u32 (big endian), the schema version
//   m \0 next_id                   -> u64 (big endian), the ids' high-water mark: no id at or
//                                     above it was ever handed out
//   s \0 <key>                     -> SnapshotRec
//
// Schema 1 also kept a parent→children index under `c \0 <parent id> <child id>` and stored
// the next id exactly; the index now lives in memory (rebuilt from the records at open), so
// creating and removing a snapshot each write one key. Opening a schema 1 database drops the
// index keys; its next id is a valid high-water mark as it is.
//
// Keys are any text (they may hold spaces, slashes or NULs); they are only ever used as the
// tail of a sled key, never as a path.

pub const VERSION_KEY: &[u8] = b"m\0version";
pub const ID_LIMIT_KEY: &[u8] = b"m\0next_id";
pub const SNAPSHOT_PREFIX: &[u8] = b"s\0";
/// Schema 1's parent→children index.
pub const V1_CHILD_PREFIX: &[u8] = b"c\0";

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
        assert_eq!(user_key(b"c\0abc"), None);
    }

    #[test]
    fn kinds_round_trip() {
        for k in [Kind::View, Kind::Active, Kind::Committed] {
            assert_eq!(kind_from_i32(kind_to_i32(k)), k);
        }
    }
}
