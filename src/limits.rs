//! Every bound the agent enforces, in one place.
//!
//! Each bound has a production value (`Limits::production`) and a small test value
//! (`Limits::test`) so that unit and integration tests reach the edges quickly. Units are the
//! last part of every name.

use std::time::Duration;

/// Bounds on memory, concurrency and sizes. Built once at start-up and shared read-only by every
/// shard.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest Kafka request frame accepted, checked before the frame is allocated
    /// (Kafka's `socket.request.max.bytes`).
    pub request_bytes_max: usize,
    /// Pipelined requests a connection may have in flight before the agent stops reading from it.
    pub connection_inflight_requests_max: usize,
    /// Connections a shard serves at once; further connections are accepted and closed.
    pub shard_connections_max: usize,
    /// A shard's open segment is flushed once it holds this many bytes.
    pub segment_bytes_target: usize,
    /// A produce request waits at most this long in the open segment before it is flushed.
    pub batch_timeout: Duration,
    /// Segment uploads (PUT + commit) a shard may have in flight at once.
    pub uploads_inflight_max: usize,
    /// Flush the open segment at once when no upload is in flight (group commit), instead of
    /// waiting for its size target or batch timeout. Trades PUTs for latency; see
    /// [`crate::config::FlushPreset`].
    pub flush_when_idle: bool,
    /// A segment PUT still unanswered after this long is sent again under a new key, and the
    /// first to land is kept (`None`: never). Only segments up to `put_hedge_bytes_max`.
    pub put_hedge_after: Option<Duration>,
    pub put_hedge_bytes_max: usize,
    /// Bytes of segment data a shard may buffer (open plus in flight) before produce requests wait.
    pub shard_produce_buffer_bytes_max: usize,
    /// Bytes a shard's fetch cache may hold.
    pub fetch_cache_bytes_max: usize,
    /// Default `max.message.bytes` for topics that do not set it (Kafka's default).
    pub message_bytes_max_default: usize,
    /// Largest partition count accepted by CreateTopics and CreatePartitions.
    pub topic_partitions_max: i32,
    /// Longest `max_wait_ms` honoured on a Fetch long-poll.
    pub fetch_wait_max: Duration,
    /// Depth of the queue in front of the metadata store thread.
    pub metadata_queue_depth: usize,
    /// Chunks a single fetch plan may return for one partition.
    pub fetch_chunks_per_partition_max: usize,
    /// How long a graceful shutdown waits for in-flight requests before exiting anyway.
    pub shutdown_drain: Duration,
    /// How long a shard trusts its cached copy of a topic before asking the metadata store again.
    pub topic_cache_ttl: Duration,
    /// Session timeouts a group member may ask for (Kafka's group.min/max.session.timeout.ms).
    pub group_session_timeout_min: Duration,
    pub group_session_timeout_max: Duration,
    /// Forwarded group requests queued per shard.
    /// Uploaded segments a shard may have waiting to enter another shard's cache; beyond it
    /// the offer is dropped and that shard's fetches read from the store.
    pub cache_fill_queue_depth: usize,
    pub group_queue_depth: usize,
    /// Bounds of the S3 client, one set per shard.
    pub s3: S3Limits,
}

/// Bounds of the S3 client (`src/object_store/s3/`). Each shard has its own client, so every
/// count here is per shard.
#[derive(Clone, Debug)]
pub struct S3Limits {
    /// Longest a TCP connect to the endpoint may take.
    pub connect_timeout: Duration,
    /// Longest one attempt may take, from asking for a connection to the last body byte.
    pub attempt_timeout: Duration,
    /// Attempts per operation, the first included, before the operation fails.
    pub attempts_max: u32,
    /// Ceiling of the first retry's backoff; it doubles per attempt, with full jitter.
    pub backoff_base: Duration,
    /// Largest ceiling any backoff reaches.
    pub backoff_max: Duration,
    /// Longest an operation may take over all its attempts and backoffs. Kept below the
    /// clients' default request timeout (30 s) so that a producer hears a retriable error from
    /// the agent rather than timing out and resending blind.
    pub operation_timeout: Duration,
    /// Connections open to the endpoint at once; further requests wait for one.
    pub connections_max: usize,
    /// Idle keep-alive connections kept for reuse.
    pub idle_connections_max: usize,
    /// An idle connection is closed instead of reused after this long: servers drop idle
    /// connections (S3 after about 20 s), and a request sent on a dropped one is wasted.
    pub idle_connection_lifetime: Duration,
    /// Largest response head (status line and headers) accepted.
    pub response_head_bytes_max: usize,
    /// Largest body of one ListObjectsV2 page (1000 keys take about 300 KiB).
    pub list_page_bytes_max: u64,
    /// Most keys one listing returns, over all its pages.
    pub list_keys_max: usize,
    /// Largest error body read (an S3 error document is under 1 KiB).
    pub error_body_bytes_max: u64,
    /// Largest object or range one GET may return.
    pub object_bytes_max: u64,
}

impl S3Limits {
    pub fn production() -> S3Limits {
        S3Limits {
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(10),
            attempts_max: 8,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(10),
            connections_max: 64,
            idle_connections_max: 16,
            idle_connection_lifetime: Duration::from_secs(4),
            response_head_bytes_max: 16 * 1024,
            list_page_bytes_max: 4 * 1024 * 1024,
            list_keys_max: 1_000_000,
            error_body_bytes_max: 64 * 1024,
            object_bytes_max: 512 * 1024 * 1024,
        }
    }

    pub fn test() -> S3Limits {
        S3Limits {
            connect_timeout: Duration::from_millis(200),
            attempt_timeout: Duration::from_millis(500),
            attempts_max: 3,
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            operation_timeout: Duration::from_secs(2),
            connections_max: 4,
            idle_connections_max: 2,
            idle_connection_lifetime: Duration::from_millis(500),
            response_head_bytes_max: 4 * 1024,
            list_page_bytes_max: 64 * 1024,
            list_keys_max: 1000,
            error_body_bytes_max: 4 * 1024,
            object_bytes_max: 1024 * 1024,
        }
    }
}

impl Limits {
    pub fn production() -> Limits {
        Limits {
            request_bytes_max: 100 * 1024 * 1024,
            connection_inflight_requests_max: 32,
            shard_connections_max: 10_000,
            segment_bytes_target: 8 * 1024 * 1024,
            batch_timeout: Duration::from_millis(250),
            uploads_inflight_max: 4,
            flush_when_idle: true,
            put_hedge_after: None,
            put_hedge_bytes_max: 1024 * 1024,
            shard_produce_buffer_bytes_max: 256 * 1024 * 1024,
            fetch_cache_bytes_max: 256 * 1024 * 1024,
            message_bytes_max_default: 1_048_588,
            topic_partitions_max: 10_000,
            fetch_wait_max: Duration::from_secs(30),
            metadata_queue_depth: 4096,
            fetch_chunks_per_partition_max: 64,
            shutdown_drain: Duration::from_secs(20),
            topic_cache_ttl: Duration::from_secs(2),
            group_session_timeout_min: Duration::from_secs(6),
            group_session_timeout_max: Duration::from_secs(30 * 60),
            group_queue_depth: 1024,
            cache_fill_queue_depth: 256,
            s3: S3Limits::production(),
        }
    }

    /// Small values so that tests cross every bound.
    pub fn test() -> Limits {
        Limits {
            request_bytes_max: 1024 * 1024,
            connection_inflight_requests_max: 4,
            shard_connections_max: 64,
            segment_bytes_target: 64 * 1024,
            batch_timeout: Duration::from_millis(5),
            uploads_inflight_max: 2,
            flush_when_idle: true,
            put_hedge_after: None,
            put_hedge_bytes_max: 1024 * 1024,
            shard_produce_buffer_bytes_max: 4 * 1024 * 1024,
            fetch_cache_bytes_max: 256 * 1024,
            message_bytes_max_default: 64 * 1024,
            topic_partitions_max: 64,
            fetch_wait_max: Duration::from_secs(2),
            metadata_queue_depth: 16,
            fetch_chunks_per_partition_max: 4,
            shutdown_drain: Duration::from_secs(2),
            topic_cache_ttl: Duration::from_millis(50),
            group_session_timeout_min: Duration::from_millis(100),
            group_session_timeout_max: Duration::from_secs(60),
            group_queue_depth: 8,
            cache_fill_queue_depth: 8,
            s3: S3Limits::test(),
        }
    }
}
