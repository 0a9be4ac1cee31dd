//! The batcher's state machine: a shard's open segment and when to flush it.
//!
//! Sans-IO: it takes the clock as an argument and never touches glommio, so its policy is unit
//! tested directly. The driver in [`super::ShardProducer`] seals segments it says are due, uploads
//! them and commits them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use uuid::Uuid;

use crate::metadata::ProducerBatch;
use crate::segment::ChunkInput;

/// The idempotent-producer fields of a batch header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerFields {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// One record batch to append, already validated.
#[derive(Clone, Debug)]
pub struct Append {
    pub topic_id: Uuid,
    pub partition: i32,
    pub batch: Bytes,
    pub offset_count: u32,
    pub max_timestamp_ms: i64,
    /// Set for batches of idempotent producers, which the commit checks for duplicates.
    pub producer: Option<ProducerFields>,
}

/// Where one appended batch landed: its chunk in the segment, and the offsets that come before
/// it inside that chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub chunk: usize,
    pub offset_in_chunk: u32,
    /// Whether the batch is an idempotent producer's, with its own commit outcome.
    pub idempotent: bool,
}

/// Why a segment was flushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushReason {
    /// It reached the size target.
    Size,
    /// Its oldest request reached the batch timeout.
    Age,
    /// No upload was in flight, so waiting would only add latency (group commit).
    Idle,
    /// The agent is stopping.
    Shutdown,
}

impl FlushReason {
    pub const ALL: [FlushReason; 4] = [
        FlushReason::Size,
        FlushReason::Age,
        FlushReason::Idle,
        FlushReason::Shutdown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FlushReason::Size => "size",
            FlushReason::Age => "age",
            FlushReason::Idle => "idle",
            FlushReason::Shutdown => "shutdown",
        }
    }
}

/// Flush policy, from the limits.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub segment_bytes_target: usize,
    pub batch_timeout: Duration,
    pub uploads_inflight_max: usize,
    pub flush_when_idle: bool,
}

/// A sealed segment: its chunks and everyone waiting on it.
#[derive(Debug)]
pub struct Sealed<W> {
    pub chunks: Vec<ChunkInput>,
    /// For each chunk, its idempotent batches.
    pub producer_batches: Vec<Vec<ProducerBatch>>,
    pub waiters: Vec<(W, Vec<Slot>)>,
    pub bytes: usize,
    pub reason: FlushReason,
    pub age: Duration,
}

/// The open segment of one shard. `W` is whatever the driver uses to answer a waiting request.
#[derive(Debug)]
pub struct Batcher<W> {
    policy: Policy,
    chunks: Vec<ChunkInput>,
    producer_batches: Vec<Vec<ProducerBatch>>,
    chunk_of: HashMap<(Uuid, i32), usize>,
    waiters: Vec<(W, Vec<Slot>)>,
    bytes: usize,
    opened_at: Option<Instant>,
}

impl<W> Batcher<W> {
    pub fn new(policy: Policy) -> Batcher<W> {
        Batcher {
            policy,
            chunks: Vec::new(),
            producer_batches: Vec::new(),
            chunk_of: HashMap::new(),
            waiters: Vec::new(),
            bytes: 0,
            opened_at: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Bytes in the open segment.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds one request's batches; they will be committed together, in one transaction.
    pub fn append(&mut self, now: Instant, appends: Vec<Append>, waiter: W) {
        let mut slots = Vec::with_capacity(appends.len());
        for a in appends {
            let idx = *self
                .chunk_of
                .entry((a.topic_id, a.partition))
                .or_insert_with(|| {
                    self.chunks.push(ChunkInput {
                        topic_id: a.topic_id,
                        partition: a.partition,
                        batches: Vec::new(),
                        offset_count: 0,
                        max_timestamp_ms: i64::MIN,
                    });
                    self.producer_batches.push(Vec::new());
                    self.chunks.len() - 1
                });
            let chunk = &mut self.chunks[idx];
            slots.push(Slot {
                chunk: idx,
                offset_in_chunk: chunk.offset_count,
                idempotent: a.producer.is_some(),
            });
            if let Some(p) = a.producer {
                self.producer_batches[idx].push(ProducerBatch {
                    batch_index: chunk.batches.len() as u32,
                    offset_in_chunk: chunk.offset_count,
                    offset_count: a.offset_count,
                    producer_id: p.producer_id,
                    producer_epoch: p.producer_epoch,
                    base_sequence: p.base_sequence,
                });
            }
            chunk.offset_count += a.offset_count;
            chunk.max_timestamp_ms = chunk.max_timestamp_ms.max(a.max_timestamp_ms);
            self.bytes += a.batch.len();
            chunk.batches.push(a.batch);
        }
        self.waiters.push((waiter, slots));
        self.opened_at.get_or_insert(now);
    }

    /// Whether the open segment should be flushed now, given the uploads in flight.
    pub fn flush_due(&self, now: Instant, uploads_inflight: usize) -> Option<FlushReason> {
        let opened_at = self.opened_at?;
        if uploads_inflight >= self.policy.uploads_inflight_max {
            return None;
        }
        if self.bytes >= self.policy.segment_bytes_target {
            Some(FlushReason::Size)
        } else if uploads_inflight == 0 && self.policy.flush_when_idle {
            Some(FlushReason::Idle)
        } else if now.duration_since(opened_at) >= self.policy.batch_timeout {
            Some(FlushReason::Age)
        } else {
            None
        }
    }

    /// When the open segment reaches the batch timeout, if it holds anything.
    pub fn deadline(&self) -> Option<Instant> {
        self.opened_at.map(|t| t + self.policy.batch_timeout)
    }

    /// Takes the open segment out, leaving an empty one.
    pub fn seal(&mut self, now: Instant, reason: FlushReason) -> Option<Sealed<W>> {
        let opened_at = self.opened_at.take()?;
        self.chunk_of.clear();
        let bytes = std::mem::take(&mut self.bytes);
        Some(Sealed {
            chunks: std::mem::take(&mut self.chunks),
            producer_batches: std::mem::take(&mut self.producer_batches),
            waiters: std::mem::take(&mut self.waiters),
            bytes,
            reason,
            age: now.duration_since(opened_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            segment_bytes_target: 100,
            batch_timeout: Duration::from_millis(10),
            uploads_inflight_max: 2,
            flush_when_idle: true,
        }
    }

    fn append(topic: Uuid, partition: i32, len: usize, count: u32) -> Append {
        Append {
            topic_id: topic,
            partition,
            batch: Bytes::from(vec![0u8; len]),
            offset_count: count,
            max_timestamp_ms: 7,
            producer: None,
        }
    }

    #[test]
    fn groups_by_partition_and_tracks_slots() {
        let t = Uuid::new_v4();
        let now = Instant::now();
        let mut b = Batcher::new(policy());
        b.append(now, vec![append(t, 0, 10, 3), append(t, 1, 10, 2)], 'a');
        b.append(now, vec![append(t, 0, 10, 4)], 'b');
        let s = b.seal(now, FlushReason::Idle).unwrap();
        assert_eq!(s.chunks.len(), 2);
        assert_eq!(s.chunks[0].offset_count, 7);
        assert_eq!(s.chunks[0].batches.len(), 2);
        assert_eq!(s.bytes, 30);
        assert_eq!(
            s.waiters[1].1,
            vec![Slot {
                chunk: 0,
                offset_in_chunk: 3,
                idempotent: false,
            }]
        );
        assert!(b.is_empty());
        assert!(b.seal(now, FlushReason::Idle).is_none());
    }

    #[test]
    fn flushes_at_once_when_idle_then_batches_behind_an_upload() {
        let t = Uuid::new_v4();
        let now = Instant::now();
        let mut b = Batcher::new(policy());
        assert_eq!(b.flush_due(now, 0), None);
        b.append(now, vec![append(t, 0, 10, 1)], ());
        assert_eq!(b.flush_due(now, 0), Some(FlushReason::Idle));
        assert_eq!(b.flush_due(now, 1), None);
        assert_eq!(
            b.flush_due(now + Duration::from_millis(10), 1),
            Some(FlushReason::Age)
        );
        assert_eq!(b.flush_due(now + Duration::from_secs(1), 2), None);
        b.append(now, vec![append(t, 0, 95, 1)], ());
        assert_eq!(b.flush_due(now, 1), Some(FlushReason::Size));
    }

    #[test]
    fn waits_for_age_when_idle_flush_is_off() {
        let mut p = policy();
        p.flush_when_idle = false;
        let now = Instant::now();
        let mut b = Batcher::new(p);
        b.append(now, vec![append(Uuid::new_v4(), 0, 1, 1)], ());
        assert_eq!(b.flush_due(now, 0), None);
        assert_eq!(b.deadline(), Some(now + Duration::from_millis(10)));
        assert_eq!(
            b.flush_due(now + Duration::from_millis(10), 0),
            Some(FlushReason::Age)
        );
    }
}
