//! The metadata store: the control plane that orders records.
//!
//! It holds topics, partitions, topic configs, next offsets, log start offsets and the index of
//! chunks (one partition's batches inside one segment object). Offsets are assigned inside its
//! transactions; nothing here lives only in an agent's memory, so a second agent sharing the
//! store sees the same state.
//!
//! A backend implements the synchronous [`MetadataBackend`] trait and runs on a dedicated thread
//! (SQLite here, Postgres later). Shards talk to it through a cloneable [`MetadataClient`], which
//! sends closures over a bounded channel and awaits the answer, so no reactor ever blocks on it.

pub mod client;
pub mod producer_state;
pub mod sqlite;

pub use client::MetadataClient;

use std::collections::BTreeMap;

use uuid::Uuid;

/// A topic as the metadata store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: Uuid,
    pub name: String,
    pub partition_count: i32,
    /// Topic-level config overrides (e.g. `retention.ms`), as set at creation.
    pub configs: BTreeMap<String, String>,
    pub created_ms: i64,
}

/// Offsets of one partition. `high_watermark` is the next offset to be assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

/// One partition's contiguous bytes inside a segment, as committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkLocation {
    pub object_key: String,
    /// Byte position of the chunk inside the segment object.
    pub byte_pos: u64,
    pub byte_len: u32,
    /// CRC-32C of the chunk's bytes, checked after every read.
    pub crc32c: u32,
    /// Offset of the first record of the chunk.
    pub base_offset: i64,
    /// Offset of the last record of the chunk (inclusive).
    pub last_offset: i64,
    /// Largest record timestamp in the chunk.
    pub max_timestamp_ms: i64,
    /// Indexes of batches inside the chunk that were not committed (duplicates or rejected
    /// batches of idempotent producers): they take no offsets and are never served.
    pub skipped_batches: Vec<u32>,
}

/// A batch written by an idempotent producer, checked at commit against the producer's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    /// Index of the batch inside its chunk.
    pub batch_index: u32,
    /// Offsets of the chunk's batches before this one, as uploaded.
    pub offset_in_chunk: u32,
    pub offset_count: u32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// What the commit decided for one idempotent batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Appended; its offset follows from the chunk's base offset.
    Appended,
    /// Already written earlier, at this base offset: acknowledged again, not appended.
    Duplicate { base_offset: i64 },
    /// Its sequence number does not follow the last one written (Kafka's
    /// OUT_OF_ORDER_SEQUENCE_NUMBER).
    OutOfOrderSequence,
    /// Its producer epoch is older than the one already seen (INVALID_PRODUCER_EPOCH).
    StaleEpoch,
}

/// The outcome of committing one chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkCommitted {
    /// Offset given to the first appended batch, when any batch was appended.
    pub base_offset: Option<i64>,
    /// The partition's log start offset at the commit.
    pub log_start_offset: i64,
    /// For each of the chunk's `producer_batches`, in order, what the commit decided.
    pub producer_outcomes: Vec<BatchOutcome>,
}

impl ChunkCommitted {
    /// The base offset of the batch at `offset_in_chunk` (as uploaded), given the outcomes of
    /// the chunk's idempotent batches: skipped batches before it take no offsets.
    pub fn offset_of(&self, chunk: &ChunkCommit, offset_in_chunk: u32) -> Option<i64> {
        let base = self.base_offset?;
        let skipped_before: u32 = chunk
            .producer_batches
            .iter()
            .zip(&self.producer_outcomes)
            .filter(|(b, o)| b.offset_in_chunk < offset_in_chunk && **o != BatchOutcome::Appended)
            .map(|(b, _)| b.offset_count)
            .sum();
        Some(base + i64::from(offset_in_chunk - skipped_before))
    }

    /// Offsets the chunk took.
    pub fn offsets_taken(&self, chunk: &ChunkCommit) -> u32 {
        let skipped: u32 = chunk
            .producer_batches
            .iter()
            .zip(&self.producer_outcomes)
            .filter(|(_, o)| **o != BatchOutcome::Appended)
            .map(|(b, _)| b.offset_count)
            .sum();
        chunk.offset_count - skipped
    }
}

/// A chunk to commit: where it lies in the uploaded segment and how many offsets it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkCommit {
    pub topic_id: Uuid,
    pub partition: i32,
    pub byte_pos: u64,
    pub byte_len: u32,
    pub crc32c: u32,
    /// Offsets the chunk takes: the sum of `last_offset_delta + 1` over its batches.
    pub offset_count: u32,
    pub max_timestamp_ms: i64,
    /// The chunk's batches from idempotent producers, in order (empty for plain batches).
    pub producer_batches: Vec<ProducerBatch>,
}

/// A segment object that has been durably written and whose chunks are to be committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentCommit {
    pub object_key: String,
    pub size_bytes: u64,
    pub created_ms: i64,
    pub chunks: Vec<ChunkCommit>,
}

/// The outcome of committing one segment: for each chunk, in order, what it was given, or
/// `None` when its topic or partition no longer exists (that chunk is skipped and the others are
/// committed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentCommitted {
    pub chunks: Vec<Option<ChunkCommitted>>,
    /// Time of the commit, which is the log-append time of every batch in the segment.
    pub commit_time_ms: i64,
}

impl SegmentCommitted {
    /// Each chunk's first offset, `None` when its partition is gone or nothing was appended.
    pub fn base_offsets(&self) -> Vec<Option<i64>> {
        self.chunks
            .iter()
            .map(|c| c.as_ref().and_then(|c| c.base_offset))
            .collect()
    }
}

/// What a fetch needs for one partition: its offsets and the chunks holding the requested range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchChunks {
    pub offsets: PartitionOffsets,
    /// Chunks with `last_offset >= from_offset`, ascending, at most as many as asked for and
    /// stopping once their total `byte_len` reaches the byte budget (the first one always counts).
    pub chunks: Vec<ChunkLocation>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("metadata store is unavailable: {0}")]
    Unavailable(String),
    #[error("metadata store failed: {0}")]
    Backend(String),
}

/// The operations every metadata backend provides. Implementations are synchronous and run on the
/// backend's own thread; every method is one transaction.
pub trait MetadataBackend: Send + 'static {
    /// Creates a topic with `partition_count` partitions, all starting at offset 0.
    fn create_topic(
        &mut self,
        name: &str,
        partition_count: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<TopicInfo, MetadataError>;

    /// Deletes a topic, its partitions and its chunk index. Segment objects are left for the
    /// background cleaner. Returns the deleted topic.
    fn delete_topic(&mut self, name: &str) -> Result<TopicInfo, MetadataError>;

    /// Raises a topic's partition count to `new_total`; new partitions start at offset 0.
    fn create_partitions(&mut self, name: &str, new_total: i32)
        -> Result<TopicInfo, MetadataError>;

    /// The cluster id, created on first use and the same for every agent sharing the store.
    fn cluster_id(&mut self) -> Result<String, MetadataError>;

    /// Every topic, ordered by name.
    fn list_topics(&mut self) -> Result<Vec<TopicInfo>, MetadataError>;

    fn topic_by_name(&mut self, name: &str) -> Result<Option<TopicInfo>, MetadataError>;

    fn topic_by_id(&mut self, id: Uuid) -> Result<Option<TopicInfo>, MetadataError>;

    /// Commits every chunk of a segment in one transaction, assigning offsets.
    fn commit_segment(
        &mut self,
        segment: &SegmentCommit,
    ) -> Result<SegmentCommitted, MetadataError>;

    fn partition_offsets(
        &mut self,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<PartitionOffsets, MetadataError>;

    /// Chunks to read for a fetch from `from_offset` (see [`FetchChunks`]).
    fn fetch_chunks(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        from_offset: i64,
        bytes_budget: u64,
        chunks_max: usize,
    ) -> Result<FetchChunks, MetadataError>;

    /// The first chunk whose `max_timestamp_ms >= timestamp_ms`, for ListOffsets by timestamp.
    fn chunk_for_timestamp(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<Option<ChunkLocation>, MetadataError>;

    /// Stores (replacing) a consumer group's state, as its coordinator encodes it.
    fn save_group(&mut self, group: &StoredGroup) -> Result<(), MetadataError>;

    fn load_group(&mut self, group_id: &str) -> Result<Option<StoredGroup>, MetadataError>;

    /// Every group with stored state or committed offsets: (group id, protocol type, which is
    /// empty for groups that only commit offsets).
    fn list_groups(&mut self) -> Result<Vec<(String, String)>, MetadataError>;

    /// Deletes a group's state and offsets. Returns whether anything existed.
    fn delete_group(&mut self, group_id: &str) -> Result<bool, MetadataError>;

    /// Commits offsets for a group, all in one transaction.
    fn commit_offsets(
        &mut self,
        group_id: &str,
        offsets: &[CommittedOffset],
    ) -> Result<(), MetadataError>;

    /// A group's committed offsets, for the given partitions or (None) all of them.
    fn fetch_offsets(
        &mut self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<CommittedOffset>, MetadataError>;

    /// Deletes a group's offsets for the given partitions.
    fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), MetadataError>;

    /// A new producer id for InitProducerId, unique across every agent sharing the store.
    fn allocate_producer_id(&mut self) -> Result<i64, MetadataError>;

    /// The chunk with the largest `max_timestamp_ms` (earliest on ties), for ListOffsets
    /// MAX_TIMESTAMP (-3).
    fn chunk_with_max_timestamp(
        &mut self,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<Option<ChunkLocation>, MetadataError>;
}

/// A consumer group's committed offset for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_time_ms: i64,
}

/// A consumer group as stored: its protocol type and the coordinator's encoded state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: Vec<u8>,
}

/// Notice that a partition's high watermark moved, sent to every shard after a commit so that
/// long-polling fetches wake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitNotice {
    pub topic_id: Uuid,
    pub partition: i32,
    pub high_watermark: i64,
}

/// Opens the metadata store named by `url` and starts its thread.
///
/// Accepted URLs: `sqlite://PATH` (so `sqlite:///var/lib/weft/meta.db` is absolute and
/// `sqlite://meta.db` relative to the working directory) and `sqlite::memory:`, a private
/// in-memory store for tests.
pub fn open(url: &str, queue_depth: usize) -> Result<MetadataClient, MetadataError> {
    let backend = if url == "sqlite::memory:" {
        sqlite::SqliteBackend::open_in_memory()?
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(MetadataError::Backend(format!(
                "metadata URL '{url}' has no database path"
            )));
        }
        sqlite::SqliteBackend::open(std::path::Path::new(path))?
    } else {
        return Err(MetadataError::Backend(format!(
            "unsupported metadata URL '{url}' (expected sqlite://PATH or sqlite::memory:)"
        )));
    };
    Ok(MetadataClient::start(Box::new(backend), queue_depth))
}
