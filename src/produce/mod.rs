//! The produce path of one shard: validated batches go into the shard's open segment, which is
//! flushed on size, on age, or at once when no upload is in flight. A flush PUTs the segment,
//! then one metadata transaction assigns offsets for every batch in it, and only then are the
//! producers answered.
//!
//! Uploads run concurrently (up to `uploads_inflight_max`), but commits happen in the order the
//! segments were sealed, so requests pipelined on one connection keep their order in each
//! partition.

pub mod batcher;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use event_listener::Event;
use futures::channel::oneshot;
use futures::future::{select, Either};

use crate::fetch::cache::ChunkCache;
use crate::limits::Limits;
use crate::metadata::{
    BatchOutcome, ChunkCommit, MetadataClient, MetadataError, SegmentCommit, SegmentCommitted,
};
use crate::object_store::{ObjectStore, ObjectStoreError};
use crate::segment;
pub use batcher::{Append, FlushReason, Policy, ProducerFields, Slot};
use batcher::{Batcher, Sealed};

#[derive(Debug, thiserror::Error, Clone)]
pub enum ProduceError {
    #[error("object store write failed: {0}")]
    Storage(String),
    #[error("metadata commit failed: {0}")]
    Metadata(MetadataError),
    #[error("the agent is shutting down")]
    ShuttingDown,
}

/// What became of one batch of an appended request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchResult {
    /// Committed (or, for an idempotent producer's retry, committed earlier) at this offset;
    /// with the partition's log start offset.
    Offset { base: i64, log_start: i64 },
    /// Its partition vanished before the commit.
    PartitionGone,
    /// Its sequence number does not follow the producer's last one.
    OutOfOrderSequence,
    /// Its producer epoch is stale.
    StaleEpoch,
}

/// The answer to one appended request: for each of its batches, in order, what became of it,
/// and the log-append time.
#[derive(Debug, Clone)]
pub struct Appended {
    pub batches: Vec<BatchResult>,
    pub log_append_time_ms: i64,
}

type Reply = oneshot::Sender<Result<Appended, ProduceError>>;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One shard's batcher and uploader.
pub struct ShardProducer {
    shard_id: usize,
    batcher: RefCell<Batcher<Reply>>,
    store: Rc<dyn ObjectStore>,
    metadata: MetadataClient,
    cache: Rc<ChunkCache>,
    buffer_bytes_max: usize,
    put_hedge_after: Option<std::time::Duration>,
    put_hedge_bytes_max: usize,
    /// Bytes held by the open segment and by uploads not yet committed.
    buffered_bytes: Cell<usize>,
    uploads_inflight: Cell<usize>,
    timer_armed: Cell<bool>,
    next_seal_seq: Cell<u64>,
    next_commit_seq: Cell<u64>,
    stopping: Cell<bool>,
    /// Notified whenever an upload finishes: frees buffer space, passes the commit turn, and
    /// lets a draining shutdown see the shard go idle.
    upload_done: Event,
}

impl ShardProducer {
    pub fn new(
        shard_id: usize,
        limits: &Limits,
        store: Rc<dyn ObjectStore>,
        metadata: MetadataClient,
        cache: Rc<ChunkCache>,
    ) -> Rc<ShardProducer> {
        Rc::new(ShardProducer {
            shard_id,
            batcher: RefCell::new(Batcher::new(Policy {
                segment_bytes_target: limits.segment_bytes_target,
                batch_timeout: limits.batch_timeout,
                uploads_inflight_max: limits.uploads_inflight_max,
                flush_when_idle: limits.flush_when_idle,
            })),
            store,
            metadata,
            cache,
            buffer_bytes_max: limits.shard_produce_buffer_bytes_max,
            put_hedge_after: limits.put_hedge_after,
            put_hedge_bytes_max: limits.put_hedge_bytes_max,
            buffered_bytes: Cell::new(0),
            uploads_inflight: Cell::new(0),
            timer_armed: Cell::new(false),
            next_seal_seq: Cell::new(0),
            next_commit_seq: Cell::new(0),
            stopping: Cell::new(false),
            upload_done: Event::new(),
        })
    }

    /// (uploads in flight, bytes buffered), for metrics.
    pub fn levels(&self) -> (usize, usize) {
        (self.uploads_inflight.get(), self.buffered_bytes.get())
    }

    /// Appends one request's batches and waits until they are durable and committed.
    pub async fn append(self: &Rc<Self>, appends: Vec<Append>) -> Result<Appended, ProduceError> {
        let committed = self.enqueue(appends).await?;
        committed.await.unwrap_or(Err(ProduceError::ShuttingDown))
    }

    /// Puts one request's batches in the open segment (after waiting for buffer space), and
    /// returns where the outcome of their commit will arrive. Requests enqueued one after the
    /// other keep that order in every partition.
    pub async fn enqueue(
        self: &Rc<Self>,
        appends: Vec<Append>,
    ) -> Result<oneshot::Receiver<Result<Appended, ProduceError>>, ProduceError> {
        let bytes: usize = appends.iter().map(|a| a.batch.len()).sum();
        // Backpressure: wait while the shard holds too much unflushed data. A lone request
        // larger than the whole budget still goes through once the shard is empty.
        loop {
            if self.stopping.get() {
                return Err(ProduceError::ShuttingDown);
            }
            let held = self.buffered_bytes.get();
            if held == 0 || held + bytes <= self.buffer_bytes_max {
                break;
            }
            let listener = self.upload_done.listen();
            if self.buffered_bytes.get() == held {
                listener.await;
            }
        }
        let (tx, rx) = oneshot::channel();
        self.buffered_bytes.set(self.buffered_bytes.get() + bytes);
        self.batcher
            .borrow_mut()
            .append(Instant::now(), appends, tx);
        self.pump();
        Ok(rx)
    }

    /// Starts every flush that is due, and arms the age timer for what remains.
    fn pump(self: &Rc<Self>) {
        loop {
            let now = Instant::now();
            let sealed = {
                let mut b = self.batcher.borrow_mut();
                match b.flush_due(now, self.uploads_inflight.get()) {
                    Some(reason) => b.seal(now, reason),
                    None => None,
                }
            };
            let Some(sealed) = sealed else { break };
            self.start_upload(sealed);
        }
        let deadline = self.batcher.borrow().deadline();
        // A deadline already past means the flush is held back by `uploads_inflight_max`: the
        // upload that finishes next pumps again. Arming a timer for it would not only spin:
        // glommio runs a freshly spawned task inline, so a zero sleep re-enters `pump` on the
        // same stack until it overflows.
        if let Some(deadline) = deadline.filter(|d| *d > Instant::now()) {
            if !self.timer_armed.replace(true) {
                let this = self.clone();
                glommio::spawn_local(async move {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    glommio::timer::sleep(wait).await;
                    this.timer_armed.set(false);
                    this.pump();
                })
                .detach();
            }
        }
    }

    fn start_upload(self: &Rc<Self>, sealed: Sealed<Reply>) {
        let seq = self.next_seal_seq.get();
        self.next_seal_seq.set(seq + 1);
        self.uploads_inflight.set(self.uploads_inflight.get() + 1);
        crate::metrics::record(|m| {
            m.flushes[sealed.reason as usize] += 1;
            m.flush_bytes.observe(sealed.bytes as f64);
            m.flush_age.observe_duration(sealed.age);
        });
        tracing::trace!(
            shard = self.shard_id,
            seq,
            bytes = sealed.bytes,
            reason = ?sealed.reason,
            age_us = sealed.age.as_micros() as u64,
            "flushing segment"
        );
        let this = self.clone();
        glommio::spawn_local(async move {
            this.upload(seq, sealed).await;
        })
        .detach();
    }

    async fn upload(self: Rc<Self>, seq: u64, sealed: Sealed<Reply>) {
        let created_ms = now_ms();
        let encoded = segment::encode(created_ms, &sealed.chunks);
        let key = segment::object_key(self.shard_id, created_ms);
        let put = self
            .put_segment(key, encoded.bytes.clone(), encoded.crc32c, created_ms)
            .await;
        // The key the segment landed under, or the first key when no PUT landed.
        let (key, put) = match put {
            Ok(k) => (k, Ok(())),
            Err((k, e)) => (k, Err(e)),
        };
        if put.is_ok() {
            // Tailing consumers, on this shard or another, read what was just uploaded from
            // memory, not with a GET.
            let chunks = encoded
                .chunks
                .iter()
                .map(|c| {
                    let start = c.byte_pos as usize;
                    let chunk = encoded.bytes.slice(start..start + c.byte_len as usize);
                    (c.byte_pos, chunk)
                })
                .collect();
            self.cache.insert_uploaded(&key, chunks);
        }

        // Commit in seal order, whatever order the PUTs finished in.
        while self.next_commit_seq.get() != seq {
            let listener = self.upload_done.listen();
            if self.next_commit_seq.get() != seq {
                listener.await;
            }
        }
        let outcome = match put {
            Err(e) => Err(storage_error(&key, e)),
            Ok(()) => {
                let commit = SegmentCommit {
                    object_key: key.clone(),
                    size_bytes: encoded.bytes.len() as u64,
                    created_ms,
                    chunks: encoded
                        .chunks
                        .iter()
                        .zip(&sealed.producer_batches)
                        .map(|(c, producer_batches)| ChunkCommit {
                            topic_id: c.topic_id,
                            partition: c.partition,
                            byte_pos: c.byte_pos,
                            byte_len: c.byte_len,
                            crc32c: c.crc32c,
                            offset_count: c.offset_count,
                            max_timestamp_ms: c.max_timestamp_ms,
                            producer_batches: producer_batches.clone(),
                        })
                        .collect(),
                };
                self.metadata
                    .commit_segment(commit.clone())
                    .await
                    .map(|done| (commit, done))
                    .map_err(ProduceError::Metadata)
            }
        };
        self.next_commit_seq.set(seq + 1);
        self.uploads_inflight.set(self.uploads_inflight.get() - 1);
        self.buffered_bytes
            .set(self.buffered_bytes.get() - sealed.bytes);

        match outcome {
            Ok((commit, committed)) => {
                for (reply, slots) in sealed.waiters {
                    let batches = slots
                        .iter()
                        .map(|s| batch_result(&commit, &committed, s))
                        .collect();
                    let _ = reply.send(Ok(Appended {
                        batches,
                        log_append_time_ms: committed.commit_time_ms,
                    }));
                }
            }
            Err(e) => {
                tracing::warn!(shard = self.shard_id, key, error = %e, "segment not committed; producers get a retriable error");
                for (reply, _) in sealed.waiters {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        self.upload_done.notify(usize::MAX);
        self.pump();
    }

    /// PUTs a segment and returns the key it landed under.
    ///
    /// A small segment whose PUT is still unanswered after `put_hedge_after` is PUT again
    /// under a fresh key, and whichever lands first is kept. Commits go in seal order (that is
    /// what keeps each partition's order), so one slow PUT would hold back every
    /// acknowledgement sealed after it; the object store's latency outliers are the usual
    /// cause of produce tail latency. The other PUT is cancelled, and its key deleted in the
    /// background in case it landed anyway. On failure, the error comes with the first key.
    async fn put_segment(
        &self,
        key: String,
        body: Bytes,
        crc32c: u32,
        created_ms: i64,
    ) -> Result<String, (String, ObjectStoreError)> {
        let put = |key: String| {
            let (store, body) = (self.store.clone(), body.clone());
            async move {
                match store.put_with_crc32c(&key, body, crc32c).await {
                    Ok(()) => Ok(key),
                    Err(e) => Err((key, e)),
                }
            }
        };
        let hedge_after = match self.put_hedge_after {
            Some(after) if body.len() <= self.put_hedge_bytes_max => after,
            _ => return put(key).await,
        };
        let mut first = Box::pin(put(key.clone()));
        let timer = glommio::timer::sleep(hedge_after);
        let first = match select(first.as_mut(), std::pin::pin!(timer)).await {
            Either::Left((done, _)) => return done,
            Either::Right(_) => first,
        };
        let hedge_key = segment::object_key(self.shard_id, created_ms);
        crate::metrics::record(|m| m.put_hedges += 1);
        let second = Box::pin(put(hedge_key.clone()));
        let (won, lost) = match select(first, second).await {
            Either::Left((Ok(k), _)) => (k, hedge_key),
            Either::Right((Ok(k), _)) => {
                crate::metrics::record(|m| m.put_hedges_won += 1);
                (k, key)
            }
            // One failed: the other decides.
            Either::Left((Err(_), second)) => return second.await.map_err(|(_, e)| (key, e)),
            Either::Right((Err(_), first)) => return first.await,
        };
        let store = self.store.clone();
        glommio::spawn_local(async move {
            if let Err(e) = store.delete(&lost).await {
                tracing::debug!(key = lost, error = %e, "deleting the unused copy of a hedged PUT failed");
            }
        })
        .detach();
        Ok(won)
    }

    /// Flushes what is open and waits for every upload to finish. New appends are refused.
    pub async fn drain(self: &Rc<Self>) {
        let sealed = self
            .batcher
            .borrow_mut()
            .seal(Instant::now(), FlushReason::Shutdown);
        if let Some(sealed) = sealed {
            self.start_upload(sealed);
        }
        self.stopping.set(true);
        while self.uploads_inflight.get() > 0 {
            let listener = self.upload_done.listen();
            if self.uploads_inflight.get() > 0 {
                listener.await;
            }
        }
    }
}

/// What the commit decided for the batch in `slot`.
fn batch_result(commit: &SegmentCommit, committed: &SegmentCommitted, slot: &Slot) -> BatchResult {
    let chunk = &commit.chunks[slot.chunk];
    let Some(done) = &committed.chunks[slot.chunk] else {
        return BatchResult::PartitionGone;
    };
    if slot.idempotent {
        let outcome = chunk
            .producer_batches
            .iter()
            .zip(&done.producer_outcomes)
            .find(|(b, _)| b.offset_in_chunk == slot.offset_in_chunk)
            .map(|(_, o)| *o);
        match outcome {
            Some(BatchOutcome::Duplicate { base_offset }) => {
                return BatchResult::Offset {
                    base: base_offset,
                    log_start: done.log_start_offset,
                }
            }
            Some(BatchOutcome::OutOfOrderSequence) => return BatchResult::OutOfOrderSequence,
            Some(BatchOutcome::StaleEpoch) => return BatchResult::StaleEpoch,
            Some(BatchOutcome::Appended) | None => {}
        }
    }
    match done.offset_of(chunk, slot.offset_in_chunk) {
        Some(base) => BatchResult::Offset {
            base,
            log_start: done.log_start_offset,
        },
        None => BatchResult::PartitionGone,
    }
}

fn storage_error(key: &str, e: ObjectStoreError) -> ProduceError {
    ProduceError::Storage(format!("PUT {key}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use bytes::Bytes;
    use uuid::Uuid;

    use super::*;
    use crate::object_store::mem::MemStore;

    /// Which PUTs a [`TestStore`] holds back.
    enum Gate {
        /// Every PUT, until the test opens the gate.
        UntilOpened { open: Cell<bool>, opened: Event },
        /// The first PUT, forever; later ones land at once.
        FirstForever,
    }

    /// A bucket in memory whose PUTs wait as its gate says, counting PUTs and deletes.
    struct TestStore {
        inner: MemStore,
        gate: Gate,
        puts_started: Cell<usize>,
        deleted: RefCell<Vec<String>>,
    }

    impl TestStore {
        fn new(name: &str, gate: Gate) -> Rc<TestStore> {
            Rc::new(TestStore {
                inner: MemStore::open(name),
                gate,
                puts_started: Cell::new(0),
                deleted: RefCell::new(Vec::new()),
            })
        }

        fn open_gate(&self) {
            if let Gate::UntilOpened { open, opened } = &self.gate {
                open.set(true);
                opened.notify(usize::MAX);
            }
        }
    }

    #[async_trait::async_trait(?Send)]
    impl ObjectStore for TestStore {
        async fn put(&self, key: &str, body: Bytes) -> Result<(), ObjectStoreError> {
            self.puts_started.set(self.puts_started.get() + 1);
            match &self.gate {
                Gate::UntilOpened { open, opened } => {
                    while !open.get() {
                        let listener = opened.listen();
                        if !open.get() {
                            listener.await;
                        }
                    }
                }
                Gate::FirstForever if self.puts_started.get() == 1 => {
                    futures::future::pending::<()>().await;
                }
                Gate::FirstForever => {}
            }
            self.inner.put(key, body).await
        }
        async fn get_range(&self, key: &str, r: Range<u64>) -> Result<Bytes, ObjectStoreError> {
            self.inner.get_range(key, r).await
        }
        async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
            self.inner.get(key).await
        }
        async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
            self.deleted.borrow_mut().push(key.to_string());
            self.inner.delete(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError> {
            self.inner.list(prefix).await
        }
        async fn probe(&self) -> Result<(), ObjectStoreError> {
            Ok(())
        }
    }

    #[test]
    fn a_slow_put_is_hedged_and_the_copy_that_lands_is_committed() {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async {
                let mut limits = Limits::test();
                limits.put_hedge_after = Some(std::time::Duration::from_millis(20));
                let store = TestStore::new("produce-hedged", Gate::FirstForever);
                let metadata = crate::metadata::open("sqlite::memory:", 16).expect("metadata");
                let producer = ShardProducer::new(
                    0,
                    &limits,
                    store.clone(),
                    metadata,
                    Rc::new(ChunkCache::new(1024)),
                );
                // Without the hedge this would never be answered.
                let _ = producer.append(append()).await;
                assert_eq!(store.puts_started.get(), 2);
                let landed = store.inner.list("segments/").await.expect("list");
                assert_eq!(landed.len(), 1, "{landed:?}");
                let counters = crate::metrics::local_counters();
                assert_eq!((counters.put_hedges, counters.put_hedges_won), (1, 1));
                // The hung copy's key is deleted in the background, in case it lands.
                glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
                let deleted = store.deleted.borrow().clone();
                assert_eq!(deleted.len(), 1);
                assert_ne!(deleted[0], landed[0]);
            });
    }

    fn append() -> Vec<Append> {
        vec![Append {
            topic_id: Uuid::new_v4(),
            partition: 0,
            batch: Bytes::from_static(b"batch"),
            offset_count: 1,
            max_timestamp_ms: 0,
            producer: None,
        }]
    }

    /// Regression: with every upload slot taken and the batch timeout passed, the age timer
    /// re-armed itself with a zero sleep, which glommio ran inline, recursing until the shard's
    /// stack overflowed (seen under CPU load, when PUTs are slow).
    #[test]
    fn age_timer_does_not_spin_while_uploads_are_at_the_limit() {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async {
                let mut limits = Limits::test();
                limits.uploads_inflight_max = 1;
                limits.batch_timeout = std::time::Duration::from_millis(1);
                let store = TestStore::new(
                    "produce-gated",
                    Gate::UntilOpened {
                        open: Cell::new(false),
                        opened: Event::new(),
                    },
                );
                let metadata = crate::metadata::open("sqlite::memory:", 16).expect("metadata");
                let producer = ShardProducer::new(
                    0,
                    &limits,
                    store.clone(),
                    metadata,
                    Rc::new(ChunkCache::new(1024)),
                );
                let first = glommio::spawn_local({
                    let p = producer.clone();
                    async move { p.append(append()).await }
                });
                glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
                assert_eq!(
                    store.puts_started.get(),
                    1,
                    "the first segment is uploading"
                );
                let second = glommio::spawn_local({
                    let p = producer.clone();
                    async move { p.append(append()).await }
                });
                // Well past the batch timeout, with the only upload slot still taken.
                glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
                assert_eq!(store.puts_started.get(), 1, "the second waits for a slot");
                assert!(
                    !producer.timer_armed.get(),
                    "no timer for a deadline already past"
                );
                store.open_gate();
                // Both are answered (the topic is unknown to the metadata store, so the
                // outcome may be an error; what matters is that the second segment went out).
                let _ = first.await;
                let _ = second.await;
                assert_eq!(store.puts_started.get(), 2);
            });
    }
}
