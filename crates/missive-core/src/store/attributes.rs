//! User attributes (用户属性): a small key/value profile per user — nickname, avatar URL,
//! mail, phone, gender, signature, birthday, ext, or any key an app chooses — which the SDKs
//! read for every peer they show.
//!
//! Easemob caps one user's attributes at 2 KB, counted as the bytes of every key and value;
//! a write that would pass the cap changes nothing. The rules live here, free of I/O
//! ([`merged`], [`attributes_size`]), so both backends apply exactly the same ones. Deleting a
//! user deletes their attributes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;

/// One user's attributes, by key.
pub type Attributes = BTreeMap<String, String>;

/// What a write of attributes did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributeWrite {
    /// The attributes now, after the write.
    Stored(Attributes),
    /// The result would have been `size` bytes, over the limit: nothing changed.
    TooLarge { size: usize },
}

/// The size Easemob's 2 KB limit counts: the bytes of every key and every value.
pub fn attributes_size(attrs: &Attributes) -> usize {
    attrs.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// `current` with `patch` applied: keys in the patch replace or add, the others stay.
pub fn merged(mut current: Attributes, patch: &Attributes) -> Attributes {
    for (k, v) in patch {
        current.insert(k.clone(), v.clone());
    }
    current
}

#[async_trait]
pub trait UserAttributeStore: Send + Sync {
    /// Merges `patch` into `user`'s attributes (see [`merged`]) unless the result is larger
    /// than `limit_bytes` (see [`attributes_size`]); then nothing changes.
    async fn merge_attributes(
        &self,
        app: Uuid,
        user: &str,
        patch: &Attributes,
        limit_bytes: usize,
        now_ms: i64,
    ) -> StoreResult<AttributeWrite>;
    /// `user`'s attributes (empty if none were set).
    async fn attributes(&self, app: Uuid, user: &str) -> StoreResult<Attributes>;
    /// The attributes of those of `users` that have any.
    async fn attributes_of(&self, app: Uuid, users: &[String]) -> StoreResult<BTreeMap<String, Attributes>>;
    /// Deletes all of `user`'s attributes; returns whether there were any.
    async fn delete_attributes(&self, app: Uuid, user: &str) -> StoreResult<bool>;
    /// The bytes (as [`attributes_size`] counts them) of every user's attributes in `app`.
    async fn attribute_bytes(&self, app: Uuid) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_patch_adds_and_replaces_and_keeps_the_rest() {
        let now = merged(attrs(&[("nickname", "A"), ("sign", "hi")]), &attrs(&[("nickname", "B"), ("ext", "x")]));
        assert_eq!(now, attrs(&[("ext", "x"), ("nickname", "B"), ("sign", "hi")]));
    }

    #[test]
    fn size_counts_keys_and_values_in_bytes() {
        assert_eq!(attributes_size(&attrs(&[("nickname", "Zoë"), ("a", "")])), 8 + 4 + 1);
    }
}
