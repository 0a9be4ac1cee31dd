//! Prometheus metrics.
//!
//! Each shard records into its own thread-local [`Counters`]: plain integers behind a `RefCell`,
//! so the hot path pays no atomic instruction and shares no cache line with another core. A
//! scrape asks every shard for a copy over a channel ([`ScrapeCall`]), sums the copies and
//! renders them (`render.rs`). Labels are bounded: API names, operation names, error codes and
//! shard numbers, never partitions or clients.

pub mod histogram;
mod render;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;

pub use histogram::Histogram;
pub use render::{render, ProcessInfo};

use crate::server::dispatch::APIS;

/// Requests of one API.
#[derive(Clone, Debug)]
pub struct ApiCounters {
    /// From the decoded request to the response ready to write.
    pub latency: Histogram,
    /// Answered (an answer may carry error codes; see [`Counters::errors`]).
    pub answered: u64,
    /// Failed in a way that closed the connection.
    pub closed: u64,
}

/// Calls of one operation on a store.
#[derive(Clone, Debug)]
pub struct OpCounters {
    pub latency: Histogram,
    pub errors: u64,
}

impl OpCounters {
    fn new() -> OpCounters {
        OpCounters {
            latency: Histogram::new(histogram::SECONDS),
            errors: 0,
        }
    }

    fn record(&mut self, elapsed: Duration, ok: bool) {
        self.latency.observe_duration(elapsed);
        if !ok {
            self.errors += 1;
        }
    }

    fn add(&mut self, other: &OpCounters) {
        self.latency.add(&other.latency);
        self.errors += other.errors;
    }
}

/// Object-store operations, as labelled.
#[derive(Clone, Copy, Debug)]
pub enum StoreOp {
    Put,
    Get,
    GetRange,
    Delete,
    List,
    Probe,
}

impl StoreOp {
    pub const ALL: [StoreOp; 6] = [
        StoreOp::Put,
        StoreOp::Get,
        StoreOp::GetRange,
        StoreOp::Delete,
        StoreOp::List,
        StoreOp::Probe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StoreOp::Put => "put",
            StoreOp::Get => "get",
            StoreOp::GetRange => "get_range",
            StoreOp::Delete => "delete",
            StoreOp::List => "list",
            StoreOp::Probe => "probe",
        }
    }
}

/// Why a request closed its connection before a handler ran.
#[derive(Clone, Copy, Debug)]
pub enum Rejection {
    BadFrame,
    UnknownApi,
    UnsupportedVersion,
    Malformed,
}

impl Rejection {
    pub const ALL: [Rejection; 4] = [
        Rejection::BadFrame,
        Rejection::UnknownApi,
        Rejection::UnsupportedVersion,
        Rejection::Malformed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rejection::BadFrame => "bad_frame",
            Rejection::UnknownApi => "unknown_api",
            Rejection::UnsupportedVersion => "unsupported_version",
            Rejection::Malformed => "malformed",
        }
    }
}

/// Everything a shard counts as it goes. Cloned whole into a scrape.
#[derive(Clone, Debug)]
pub struct Counters {
    /// Indexed as [`APIS`].
    pub requests: Vec<ApiCounters>,
    /// Indexed as [`Rejection::ALL`].
    pub rejected: [u64; 4],
    /// Error codes put in answers, by API and code, counted per partition (or per group).
    pub errors: BTreeMap<(i16, i16), u64>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub produce_bytes: u64,
    pub fetch_bytes: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    /// Indexed as `FlushReason::ALL`.
    pub flushes: [u64; 4],
    pub flush_bytes: Histogram,
    pub flush_age: Histogram,
    /// Indexed as [`StoreOp::ALL`].
    pub object_store: Vec<OpCounters>,
    /// Attempts the S3 client repeated after a retriable failure, by operation.
    pub object_store_retries: [u64; 6],
    /// By operation name, as the caller names it; a handful of fixed names.
    pub metadata_store: BTreeMap<&'static str, OpCounters>,
    /// Fetches that had too little data and waited.
    pub long_poll_waits: u64,
    /// Waiting fetches woken by a commit on one of their partitions.
    pub long_poll_wakeups: u64,
    /// Waiting fetches that reached their max wait.
    pub long_poll_timeouts: u64,
    /// Uploaded chunks offered to another shard's cache that its full queue turned away.
    pub cache_fills_dropped: u64,
    /// Segment PUTs sent a second time because the first was slow, and how often the second
    /// landed first.
    pub put_hedges: u64,
    pub put_hedges_won: u64,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            requests: APIS
                .iter()
                .map(|_| ApiCounters {
                    latency: Histogram::new(histogram::SECONDS),
                    answered: 0,
                    closed: 0,
                })
                .collect(),
            rejected: [0; 4],
            errors: BTreeMap::new(),
            bytes_received: 0,
            bytes_sent: 0,
            produce_bytes: 0,
            fetch_bytes: 0,
            connections_accepted: 0,
            connections_refused: 0,
            flushes: [0; 4],
            flush_bytes: Histogram::new(histogram::BYTES),
            flush_age: Histogram::new(histogram::SECONDS),
            object_store: StoreOp::ALL.iter().map(|_| OpCounters::new()).collect(),
            object_store_retries: [0; 6],
            metadata_store: BTreeMap::new(),
            long_poll_waits: 0,
            long_poll_wakeups: 0,
            long_poll_timeouts: 0,
            cache_fills_dropped: 0,
            put_hedges: 0,
            put_hedges_won: 0,
        }
    }
}

impl Counters {
    /// Adds another shard's counters to these.
    pub fn add(&mut self, o: &Counters) {
        for (a, b) in self.requests.iter_mut().zip(&o.requests) {
            a.latency.add(&b.latency);
            a.answered += b.answered;
            a.closed += b.closed;
        }
        add_all(&mut self.rejected, &o.rejected);
        for (k, v) in &o.errors {
            *self.errors.entry(*k).or_default() += v;
        }
        self.bytes_received += o.bytes_received;
        self.bytes_sent += o.bytes_sent;
        self.produce_bytes += o.produce_bytes;
        self.fetch_bytes += o.fetch_bytes;
        self.connections_accepted += o.connections_accepted;
        self.connections_refused += o.connections_refused;
        add_all(&mut self.flushes, &o.flushes);
        self.flush_bytes.add(&o.flush_bytes);
        self.flush_age.add(&o.flush_age);
        for (a, b) in self.object_store.iter_mut().zip(&o.object_store) {
            a.add(b);
        }
        add_all(&mut self.object_store_retries, &o.object_store_retries);
        for (k, v) in &o.metadata_store {
            self.metadata_store
                .entry(k)
                .or_insert_with(OpCounters::new)
                .add(v);
        }
        self.long_poll_waits += o.long_poll_waits;
        self.long_poll_wakeups += o.long_poll_wakeups;
        self.long_poll_timeouts += o.long_poll_timeouts;
        self.cache_fills_dropped += o.cache_fills_dropped;
        self.put_hedges += o.put_hedges;
        self.put_hedges_won += o.put_hedges_won;
    }
}

fn add_all<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// What a shard reports on a scrape besides its counters: levels read from its state.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    pub connections_open: u64,
    pub uploads_inflight: u64,
    /// Bytes waiting in the open segment or being uploaded.
    pub produce_buffered_bytes: u64,
    pub cache_bytes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

/// One shard's answer to a scrape.
#[derive(Clone, Debug)]
pub struct ShardSnapshot {
    pub shard: usize,
    pub counters: Counters,
    pub gauges: Gauges,
}

/// A scrape's question to a shard: where to send its snapshot.
pub type ScrapeCall = futures::channel::oneshot::Sender<ShardSnapshot>;

thread_local! {
    static LOCAL: RefCell<Counters> = RefCell::new(Counters::default());
}

/// Records into this thread's (this shard's) counters.
pub fn record(f: impl FnOnce(&mut Counters)) {
    LOCAL.with(|c| f(&mut c.borrow_mut()));
}

/// A copy of this thread's counters.
pub fn local_counters() -> Counters {
    LOCAL.with(|c| c.borrow().clone())
}

fn api_index(key: ApiKey) -> Option<usize> {
    APIS.iter().position(|a| a.key == key)
}

pub fn request_done(key: ApiKey, elapsed: Duration, answered: bool) {
    if let Some(i) = api_index(key) {
        record(|c| {
            let r = &mut c.requests[i];
            r.latency.observe_duration(elapsed);
            if answered {
                r.answered += 1;
            } else {
                r.closed += 1;
            }
        });
    }
}

/// Counts an error code put in an answer; 0 (no error) is not counted.
pub fn error_code(key: ApiKey, code: i16) {
    if code != 0 {
        record(|c| *c.errors.entry((key as i16, code)).or_default() += 1);
    }
}

pub fn rejected(why: Rejection) {
    record(|c| c.rejected[why as usize] += 1);
}

pub fn store_op(op: StoreOp, elapsed: Duration, ok: bool) {
    record(|c| c.object_store[op as usize].record(elapsed, ok));
}

pub fn store_retry(op: StoreOp) {
    record(|c| c.object_store_retries[op as usize] += 1);
}

pub fn metadata_op(op: &'static str, elapsed: Duration, ok: bool) {
    record(|c| {
        c.metadata_store
            .entry(op)
            .or_insert_with(OpCounters::new)
            .record(elapsed, ok)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_sum_on_scrape() {
        request_done(ApiKey::Produce, Duration::from_millis(2), true);
        request_done(ApiKey::Produce, Duration::from_millis(3), false);
        error_code(ApiKey::Produce, 56);
        error_code(ApiKey::Produce, 0);
        metadata_op("commit_segment", Duration::from_micros(300), true);
        let one = local_counters();
        let mut total = Counters::default();
        total.add(&one);
        total.add(&one);
        let produce = &total.requests[api_index(ApiKey::Produce).unwrap()];
        assert_eq!((produce.answered, produce.closed), (2, 2));
        assert_eq!(produce.latency.count(), 4);
        assert_eq!(total.errors.get(&(ApiKey::Produce as i16, 56)), Some(&2));
        assert_eq!(total.errors.len(), 1);
        assert_eq!(total.metadata_store["commit_segment"].latency.count(), 2);
    }
}
