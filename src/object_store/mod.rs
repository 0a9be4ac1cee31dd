//! Object storage: where segment objects live.
//!
//! Each shard opens its own store from the bucket URL (`file://DIR`, `s3://BUCKET?…`,
//! `mem://NAME`); the handle is `!Send` and used only on that shard. Objects are written once and never
//! overwritten; keys are unique per flush.

pub mod file;
pub mod mem;
mod metered;
pub mod s3;

use std::ops::Range;
use std::rc::Rc;

use bytes::Bytes;

use crate::limits::Limits;

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
    /// Retries ran out: the store did not answer, or kept answering with retriable errors.
    #[error(
        "object store unavailable: {op} '{key}' in bucket '{bucket}' failed after {attempts} \
         attempts (last status: {}): {detail}",
        status_text(.status)
    )]
    Unavailable {
        op: &'static str,
        bucket: String,
        key: String,
        status: Option<u16>,
        attempts: u32,
        detail: String,
    },
    /// The store answered with an error that a retry would not change (403, 400, …).
    #[error(
        "object store refused {op} '{key}' in bucket '{bucket}' with status {status}: {detail}"
    )]
    Rejected {
        op: &'static str,
        bucket: String,
        key: String,
        status: u16,
        detail: String,
    },
    /// The store's answer broke the protocol or a size bound.
    #[error("bad answer from the object store to {op} '{key}' in bucket '{bucket}': {detail}")]
    BadResponse {
        op: &'static str,
        bucket: String,
        key: String,
        detail: String,
    },
}

fn status_text(status: &Option<u16>) -> String {
    status.map_or_else(|| "none".to_string(), |s| s.to_string())
}

#[async_trait::async_trait(?Send)]
pub trait ObjectStore {
    /// Writes `body` under `key`, durably, before returning.
    async fn put(&self, key: &str, body: Bytes) -> Result<(), ObjectStoreError>;
    /// As [`ObjectStore::put`], with the body's CRC-32C already known: a store that checks
    /// integrity on arrival is sent this one instead of reading the body again.
    async fn put_with_crc32c(
        &self,
        key: &str,
        body: Bytes,
        crc32c: u32,
    ) -> Result<(), ObjectStoreError> {
        let _ = crc32c;
        self.put(key, body).await
    }
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

/// Opens a store from a bucket URL with production limits. Must be called on the shard that
/// will use it.
pub fn open(url: &str) -> Result<Rc<dyn ObjectStore>, ObjectStoreError> {
    open_with(url, &Limits::production())
}

/// Checks a bucket URL before any shard starts, so that a bad one stops the agent at once
/// with a clear message. Touches nothing.
pub fn check(url: &str) -> Result<(), ObjectStoreError> {
    if url.starts_with("s3://") {
        s3::check(url)
    } else {
        Ok(())
    }
}

/// Opens a store from a bucket URL, counting every operation in the shard's metrics. Must be
/// called on the shard that will use it.
pub fn open_with(url: &str, limits: &Limits) -> Result<Rc<dyn ObjectStore>, ObjectStoreError> {
    use metered::Metered;
    if url.starts_with("s3://") {
        Ok(Rc::new(Metered(s3::S3Store::open(url, &limits.s3)?)))
    } else if let Some(dir) = url.strip_prefix("file://") {
        Ok(Rc::new(Metered(file::FileStore::open(dir)?)))
    } else if let Some(name) = url.strip_prefix("mem://") {
        Ok(Rc::new(Metered(mem::MemStore::open(name))))
    } else {
        Err(ObjectStoreError::InvalidUrl(
            url.to_string(),
            "expected file://DIR, s3://BUCKET?endpoint=URL or mem://NAME".to_string(),
        ))
    }
}
