//! Object storage: where segment objects live.
//!
//! Each shard opens its own store from the bucket URL (`file://DIR`, `mem://NAME`); the
//! handle is `!Send` and used only on that shard. Objects are written once and never
//! overwritten; keys are unique per flush.

pub mod file;
pub mod mem;

use std::ops::Range;
use std::rc::Rc;

use bytes::Bytes;

#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    #[error("object '{key}' not found")]
    NotFound { key: String },
    #[error("range {start}..{end} of object '{key}' is out of bounds (size {size})")]
    RangeOutOfBounds {
        key: String,
        start: u64,
        end: u64,
        size: u64,
    },
    #[error("object store I/O on '{key}' failed: {source}")]
    Io { key: String, source: std::io::Error },
    #[error("invalid bucket URL '{0}': {1}")]
    InvalidUrl(String, String),
}

#[async_trait::async_trait(?Send)]
pub trait ObjectStore {
    /// Writes `body` under `key`, durably, before returning.
    async fn put(&self, key: &str, body: Bytes) -> Result<(), ObjectStoreError>;
    /// Reads `range` of the object.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError>;
    /// Reads the whole object.
    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError>;
    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError>;
    /// Keys starting with `prefix`, in ascending order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError>;
    /// Checks the store can be reached (for readiness), without writing.
    async fn probe(&self) -> Result<(), ObjectStoreError>;
}

/// Opens a store from a bucket URL. Must be called on the shard that will use it.
pub fn open(url: &str) -> Result<Rc<dyn ObjectStore>, ObjectStoreError> {
    if let Some(dir) = url.strip_prefix("file://") {
        Ok(Rc::new(file::FileStore::open(dir)?))
    } else if let Some(name) = url.strip_prefix("mem://") {
        Ok(Rc::new(mem::MemStore::open(name)))
    } else {
        Err(ObjectStoreError::InvalidUrl(
            url.to_string(),
            "expected file://DIR or mem://NAME".to_string(),
        ))
    }
}
