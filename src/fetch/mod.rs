//! The fetch path: chunk reads through the shard's cache, and assembly of a partition's
//! response records from committed chunks, with base offsets rewritten in place.
//!
//! `assemble` is sans-IO; `read_chunk` and the long-poll [`Watermarks`] run on the shard.

pub mod cache;

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use event_listener::{Event, EventListener};
use uuid::Uuid;

use crate::metadata::{ChunkLocation, CommitNotice};
use crate::object_store::{ObjectStore, ObjectStoreError};
use crate::protocol::record_batch::{self, BatchError};
use crate::segment::{self, SegmentError};
use cache::ChunkCache;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("reading chunk failed: {0}")]
    Store(#[from] ObjectStoreError),
    #[error("chunk failed verification: {0}")]
    Corrupt(#[from] SegmentError),
    #[error("chunk holds a malformed batch: {0}")]
    Batch(#[from] BatchError),
}

/// Reads a chunk from the cache, or from the object store with its CRC-32C verified.
pub async fn read_chunk(
    store: &dyn ObjectStore,
    cache: &ChunkCache,
    loc: &ChunkLocation,
) -> Result<Bytes, FetchError> {
    if let Some(hit) = cache.get(&loc.object_key, loc.byte_pos) {
        return Ok(hit);
    }
    let bytes = store
        .get_range(
            &loc.object_key,
            loc.byte_pos..loc.byte_pos + u64::from(loc.byte_len),
        )
        .await?;
    segment::verify_chunk(&bytes, loc.crc32c)?;
    cache.insert(&loc.object_key, loc.byte_pos, bytes.clone());
    Ok(bytes)
}

/// Appends to `out` the batches of `chunk` (whose first offset is `chunk_base_offset`) that hold
/// offsets at or after `from_offset`, rewriting each batch's base offset. Batches whose index
/// is in `skipped` were never committed: they take no offsets and are not served. Whole batches only:
/// a batch is added if it fits in `budget`, or if `min_one` is set and nothing has been added
/// yet (Kafka's rule that the first batch is returned even when it is larger than the limit).
/// Returns the bytes added, and whether the budget stopped it.
pub fn assemble(
    chunk: &[u8],
    chunk_base_offset: i64,
    skipped: &[u32],
    from_offset: i64,
    budget: usize,
    min_one: bool,
    out: &mut BytesMut,
) -> Result<(usize, bool), BatchError> {
    let mut added = 0usize;
    let mut next_offset = chunk_base_offset;
    for (index, item) in record_batch::batches(chunk).enumerate() {
        let (range, header) = item?;
        if skipped.contains(&(index as u32)) {
            continue;
        }
        let base = next_offset;
        next_offset += i64::from(header.offset_count());
        if next_offset <= from_offset {
            continue;
        }
        let len = range.len();
        let first_batch_exception = min_one && added == 0;
        if added + len > budget && !first_batch_exception {
            return Ok((added, true));
        }
        let start = out.len();
        out.extend_from_slice(&chunk[range]);
        record_batch::set_base_offset(&mut out[start..], base);
        added += len;
    }
    Ok((added, false))
}

/// The high watermarks a shard has heard of, and an event that fires on every commit notice,
/// so long-polling fetches wake when data lands from any shard.
#[derive(Default)]
pub struct Watermarks {
    known: RefCell<HashMap<(Uuid, i32), i64>>,
    moved: Event,
}

impl Watermarks {
    pub fn apply(&self, notice: CommitNotice) {
        let mut known = self.known.borrow_mut();
        let hw = known
            .entry((notice.topic_id, notice.partition))
            .or_insert(notice.high_watermark);
        *hw = (*hw).max(notice.high_watermark);
        drop(known);
        self.moved.notify(usize::MAX);
    }

    /// The highest watermark heard of for a partition, if any.
    pub fn get(&self, topic_id: Uuid, partition: i32) -> Option<i64> {
        self.known.borrow().get(&(topic_id, partition)).copied()
    }

    /// A listener that fires on the next notice. Take it before checking, then await it.
    pub fn listen(&self) -> EventListener {
        self.moved.listen()
    }

    /// Wakes every waiter without a notice (shutdown).
    pub fn wake_all(&self) {
        self.moved.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::record_batch::tests::batch;

    fn chunk() -> Vec<u8> {
        let mut c = batch(2, b"aa", 1); // offsets 10, 11
        c.extend(batch(3, b"bb", 2)); // 12..14
        c.extend(batch(1, b"cc", 3)); // 15
        c
    }

    fn base_offsets(out: &[u8]) -> Vec<i64> {
        record_batch::batches(out)
            .map(|r| {
                let (range, _) = r.unwrap();
                i64::from_be_bytes(out[range.start..range.start + 8].try_into().unwrap())
            })
            .collect()
    }

    #[test]
    fn starts_inside_a_batch_with_the_whole_batch() {
        let c = chunk();
        let mut out = BytesMut::new();
        let (n, stopped) = assemble(&c, 10, &[], 13, usize::MAX, true, &mut out).unwrap();
        assert!(!stopped);
        assert_eq!(n, out.len());
        assert_eq!(base_offsets(&out), vec![12, 15]);
    }

    #[test]
    fn honours_the_budget_with_the_first_batch_exception() {
        let c = chunk();
        let one = batch(2, b"aa", 1).len();
        let mut out = BytesMut::new();
        let (n, stopped) = assemble(&c, 10, &[], 10, one + 1, false, &mut out).unwrap();
        assert_eq!((n, stopped), (one, true));
        let mut out = BytesMut::new();
        assert_eq!(
            assemble(&c, 10, &[], 10, 5, false, &mut out).unwrap(),
            (0, true)
        );
        let (n, _) = assemble(&c, 10, &[], 10, 5, true, &mut out).unwrap();
        assert_eq!(n, one);
        assert_eq!(base_offsets(&out), vec![10]);
    }

    #[test]
    fn skipped_batches_take_no_offsets() {
        let c = chunk();
        let mut out = BytesMut::new();
        assemble(&c, 10, &[1], 10, usize::MAX, true, &mut out).unwrap();
        // Batch 1 (three records) is gone: batch 2 follows batch 0 directly.
        assert_eq!(base_offsets(&out), vec![10, 12]);
        assert_eq!(record_batch::batches(&out).count(), 2);
    }

    #[test]
    fn past_the_chunk_returns_nothing() {
        let c = chunk();
        let mut out = BytesMut::new();
        assert_eq!(
            assemble(&c, 10, &[], 16, 1000, true, &mut out).unwrap(),
            (0, false)
        );
    }
}
