//! Packing and unpacking `google.protobuf.Any` with containerd's type URLs.
//!
//! containerd 1.x clients (ctr, dockerd 20.10) resolve an `Any` by looking
//! its `type_url` up as an exact message name, so the URL written here is the
//! bare full name (`containerd.events.TaskExit`), never prost's default
//! `type.googleapis.com/...` form. Reading accepts both forms because newer
//! clients send the prefixed one.

use prost::{DecodeError, Name};
use prost_types::Any;

/// Prefix used by protobuf's canonical type URLs; accepted on input only.
const GOOGLE_PREFIX: &str = "type.googleapis.com/";

/// Packs `m` into an `Any` whose `type_url` is the bare full message name.
pub fn to_any<M: Name>(m: &M) -> Any {
    Any {
        type_url: M::full_name(),
        value: m.encode_to_vec(),
    }
}

/// Unpacks an `Any` holding an `M`, accepting a bare or a
/// `type.googleapis.com/`-prefixed type URL; any other type is an error.
pub fn from_any<M: Name + Default>(a: &Any) -> Result<M, DecodeError> {
    if !is::<M>(a) {
        // The same error kind prost_types::Any::to_msg reports; to_msg itself
        // is not used because it rejects bare names and accepts any domain.
        return Err(DecodeError::new_unexpected_type_url(
            a.type_url.clone(),
            M::full_name(),
        ));
    }
    M::decode(a.value.as_slice())
}

/// Whether `a` holds an `M` (bare or prefixed type URL), without decoding it.
pub fn is<M: Name>(a: &Any) -> bool {
    let name = a
        .type_url
        .strip_prefix(GOOGLE_PREFIX)
        .unwrap_or(&a.type_url);
    name == M::full_name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containerd::events::{TaskExit, TaskStart};
    use crate::containerd::services::images::v1::ImageCreate;
    use prost::Message;

    fn exit() -> TaskExit {
        TaskExit {
            container_id: "web".into(),
            id: "web".into(),
            pid: 42,
            exit_status: 137,
            exited_at: None,
        }
    }

    #[test]
    fn to_any_uses_bare_full_name() {
        let a = to_any(&exit());
        assert_eq!(a.type_url, "containerd.events.TaskExit");
        assert_eq!(a.value, exit().encode_to_vec());

        let img = to_any(&ImageCreate::default());
        assert_eq!(img.type_url, "containerd.services.images.v1.ImageCreate");
    }

    #[test]
    fn from_any_round_trips_bare_url() {
        let back: TaskExit = from_any(&to_any(&exit())).expect("decodes");
        assert_eq!(back, exit());
    }

    #[test]
    fn from_any_accepts_googleapis_prefix() {
        let a = Any {
            type_url: "type.googleapis.com/containerd.events.TaskExit".into(),
            value: exit().encode_to_vec(),
        };
        let back: TaskExit = from_any(&a).expect("decodes");
        assert_eq!(back, exit());
        assert!(is::<TaskExit>(&a));
    }

    #[test]
    fn from_any_rejects_other_types() {
        let a = to_any(&exit());
        assert!(from_any::<TaskStart>(&a).is_err());
        assert!(!is::<TaskStart>(&a));

        // Another domain is not one of the accepted spellings.
        let other = Any {
            type_url: "example.com/containerd.events.TaskExit".into(),
            value: exit().encode_to_vec(),
        };
        assert!(from_any::<TaskExit>(&other).is_err());
    }

    #[test]
    fn from_any_reports_corrupt_payload() {
        let a = Any {
            type_url: "containerd.events.TaskExit".into(),
            value: vec![0xff, 0xff, 0xff],
        };
        assert!(from_any::<TaskExit>(&a).is_err());
    }
}
