//! One mutation's writes, applied atomically by [`Db::commit`](super::Db::commit).
//!
//! sled makes a multi-key batch atomic by logging a batch manifest in an IO buffer of its own,
//! so applying and flushing one costs two log writes and two syncs where a lone insert or
//! remove (atomic by itself) costs one. Most mutations change a single record, so the batch
//! is kept here and handed to sled in the cheapest form that is still atomic.

use std::collections::BTreeMap;

use sled::IVec;

/// Writes keyed by their key: a later write to the same key replaces an earlier one, as in
/// `sled::Batch`. `None` removes the key.
#[derive(Debug, Default)]
pub struct Batch {
    writes: BTreeMap<IVec, Option<IVec>>,
}

/// What [`Batch::into_writes`] hands to sled.
pub(super) enum Writes {
    None,
    One(IVec, Option<IVec>),
    Many(sled::Batch),
}

impl Batch {
    pub fn insert(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.writes.insert(key.into(), Some(value.into()));
    }

    pub fn remove(&mut self, key: impl Into<IVec>) {
        self.writes.insert(key.into(), None);
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub(super) fn into_writes(self) -> Writes {
        if self.writes.len() > 1 {
            let mut b = sled::Batch::default();
            for (k, v) in self.writes {
                match v {
                    Some(v) => b.insert(k, v),
                    None => b.remove(k),
                }
            }
            return Writes::Many(b);
        }
        match self.writes.into_iter().next() {
            Some((k, v)) => Writes::One(k, v),
            None => Writes::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_write_to_a_key_wins() {
        let mut b = Batch::default();
        assert!(b.is_empty());
        b.insert(b"k".to_vec(), b"1".to_vec());
        b.remove(b"k".to_vec());
        match b.into_writes() {
            Writes::One(k, None) => assert_eq!(k.as_ref(), b"k"),
            _ => panic!("expected one remove"),
        }
    }

    #[test]
    fn several_keys_stay_one_atomic_batch() {
        let mut b = Batch::default();
        b.insert(b"a".to_vec(), b"1".to_vec());
        b.insert(b"b".to_vec(), b"2".to_vec());
        assert!(matches!(b.into_writes(), Writes::Many(_)));
        assert!(matches!(Batch::default().into_writes(), Writes::None));
    }
}
