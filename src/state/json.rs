//! Progress objects are pretty JSON: read one (a corrupt one is an error naming it, with the
//! caller's hint) and write one, atomically, through [`Storage::put`].

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::storage::{PutMode, Storage, Version};

/// The object at `key` with its version, `None` when there is none.
pub(super) fn read<T: DeserializeOwned>(storage: &dyn Storage, key: &str, hint: &str) -> Result<Option<(T, Version)>> {
    match storage.get_versioned(key)? {
        None => Ok(None),
        Some((bytes, version)) => serde_json::from_slice(&bytes)
            .map(|v| Some((v, version)))
            .map_err(|e| Error::runtime(format!("{}/{key} is corrupt: {e}", storage.describe())).with_hint(hint)),
    }
}

/// Writes `value` at `key` in `mode`; its new version.
pub(super) fn write<T: Serialize>(storage: &dyn Storage, key: &str, value: &T, mode: PutMode<'_>) -> Result<Version> {
    storage.put(key, &serde_json::to_vec_pretty(value).expect("serialisable"), mode)
}
