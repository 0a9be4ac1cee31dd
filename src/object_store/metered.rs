//! A store wrapper that times every operation into the shard's metrics.

use std::future::Future;
use std::ops::Range;
use std::time::Instant;

use bytes::Bytes;

use super::{ObjectStore, ObjectStoreError};
use crate::metrics::{self, StoreOp};

pub struct Metered<S>(pub S);

async fn timed<T>(
    op: StoreOp,
    fut: impl Future<Output = Result<T, ObjectStoreError>>,
) -> Result<T, ObjectStoreError> {
    let started = Instant::now();
    let result = fut.await;
    metrics::store_op(op, started.elapsed(), result.is_ok());
    result
}

#[async_trait::async_trait(?Send)]
impl<S: ObjectStore> ObjectStore for Metered<S> {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), ObjectStoreError> {
        timed(StoreOp::Put, self.0.put(key, body)).await
    }

    async fn put_with_crc32c(
        &self,
        key: &str,
        body: Bytes,
        crc32c: u32,
    ) -> Result<(), ObjectStoreError> {
        timed(StoreOp::Put, self.0.put_with_crc32c(key, body, crc32c)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError> {
        timed(StoreOp::GetRange, self.0.get_range(key, range)).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        timed(StoreOp::Get, self.0.get(key)).await
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        timed(StoreOp::Delete, self.0.delete(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError> {
        timed(StoreOp::List, self.0.list(prefix)).await
    }

    async fn probe(&self) -> Result<(), ObjectStoreError> {
        timed(StoreOp::Probe, self.0.probe()).await
    }
}
