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
    pub group_queue_depth: usize,
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
        }
    }
}
