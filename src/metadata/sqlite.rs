//! [`MetadataBackend`] on SQLite, for single-host deployments and tests.
//!
//! The schema sticks to types and statements Postgres also understands (TEXT uuids, BIGINT,
//! INTEGER, `IF NOT EXISTS`, plain foreign keys) so that a Postgres backend can share it.
//! Only connection handling (pragmas, `BEGIN IMMEDIATE`) is SQLite-specific.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use uuid::Uuid;

use super::producer_state::{self, ProducerState};
use super::{
    BatchOutcome, ChunkCommitted, ChunkLocation, CommittedOffset, FetchChunks, MetadataBackend,
    MetadataError, PartitionOffsets, SegmentCommit, SegmentCommitted, StoredGroup, TopicInfo,
};

/// Version of the schema created by [`SCHEMA`]. Bump it together with a migration step in
/// [`SqliteBackend::init_schema`].
const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another connection's lock (another agent sharing the file, or
/// a checkpoint) before giving up with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);

-- One row: the cluster id every agent sharing this store answers with.
CREATE TABLE IF NOT EXISTS cluster (
    id TEXT PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS topics (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    partition_count INTEGER NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS topic_configs (
    topic_id TEXT NOT NULL REFERENCES topics (id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (topic_id, key)
);

CREATE TABLE IF NOT EXISTS partitions (
    topic_id TEXT NOT NULL REFERENCES topics (id),
    partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    log_start_offset BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition)
);

CREATE TABLE IF NOT EXISTS segments (
    object_key TEXT PRIMARY KEY,
    size_bytes BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- byte_len is BIGINT rather than INTEGER because it holds a u32, which overflows Postgres's
-- 4-byte INTEGER; crc32c likewise.
CREATE TABLE IF NOT EXISTS chunks (
    topic_id TEXT NOT NULL,
    partition INTEGER NOT NULL,
    base_offset BIGINT NOT NULL,
    last_offset BIGINT NOT NULL,
    object_key TEXT NOT NULL REFERENCES segments (object_key),
    byte_pos BIGINT NOT NULL,
    byte_len BIGINT NOT NULL,
    crc32c BIGINT NOT NULL,
    max_timestamp_ms BIGINT NOT NULL,
    -- Comma-separated indexes of batches inside the chunk that took no offsets (duplicates of
    -- idempotent producers); NULL when every batch was appended.
    skipped_batches TEXT,
    PRIMARY KEY (topic_id, partition, base_offset),
    FOREIGN KEY (topic_id, partition) REFERENCES partitions (topic_id, partition)
);

-- Idempotent producers: the next producer id to hand out (one row), and per producer and
-- partition the epoch and last five batches (\"first_seq:last_seq:base_offset;...\").
CREATE TABLE IF NOT EXISTS producer_ids (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_producer_id BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS producer_state (
    producer_id BIGINT NOT NULL,
    topic_id TEXT NOT NULL,
    partition INTEGER NOT NULL,
    producer_epoch INTEGER NOT NULL,
    recent_batches TEXT NOT NULL,
    PRIMARY KEY (producer_id, topic_id, partition)
);

-- Consumer groups: the coordinator's encoded state, and committed offsets by topic name (as
-- Kafka keys them).
CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY,
    protocol_type TEXT NOT NULL,
    state BLOB NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed_offset BIGINT NOT NULL,
    leader_epoch INTEGER NOT NULL,
    metadata TEXT,
    commit_time_ms BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);

-- Fetches look chunks up by last_offset; ranges never overlap, so this index also yields them
-- in base_offset order.
CREATE INDEX IF NOT EXISTS chunks_by_last_offset
    ON chunks (topic_id, partition, last_offset);

-- ListOffsets by timestamp and MAX_TIMESTAMP.
CREATE INDEX IF NOT EXISTS chunks_by_max_timestamp
    ON chunks (topic_id, partition, max_timestamp_ms);
";

const CHUNK_COLUMNS: &str = "object_key, byte_pos, byte_len, crc32c, base_offset, last_offset, \
     max_timestamp_ms, skipped_batches";

/// A metadata store in one SQLite database file.
pub struct SqliteBackend {
    conn: Connection,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database at `path`, and its parent directory.
    pub fn open(path: &Path) -> Result<Self, MetadataError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                MetadataError::Backend(format!(
                    "cannot create metadata directory {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let conn = Connection::open(path).map_err(map_err)?;
        Self::init(conn)
    }

    /// A private in-memory database, gone when the backend is dropped. For tests.
    pub fn open_in_memory() -> Result<Self, MetadataError> {
        let conn = Connection::open_in_memory().map_err(map_err)?;
        Self::init(conn)
    }

    fn init(conn: Connection) -> Result<Self, MetadataError> {
        // Set first so that even the pragmas below wait for a concurrent opener's lock.
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
        // WAL lets readers of another agent proceed during our commits. An in-memory database
        // cannot use WAL and reports "memory", which is fine for tests.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(map_err)?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            return Err(MetadataError::Backend(format!(
                "cannot switch metadata database to WAL (journal_mode is {mode})"
            )));
        }
        // An acknowledged commit hands out offsets to producers: with NORMAL, a power loss could
        // forget the last transactions and hand the same offsets out twice.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(map_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(map_err)?;
        let mut backend = SqliteBackend { conn };
        backend.init_schema()?;
        Ok(backend)
    }

    fn init_schema(&mut self) -> Result<(), MetadataError> {
        // Immediate, so two agents opening a fresh file at once do not both insert a version row.
        let tx = self.write_tx()?;
        tx.execute_batch(SCHEMA).map_err(map_err)?;
        let version: Option<i64> = tx
            .query_row("SELECT MAX(version) FROM schema_version", [], |row| {
                row.get(0)
            })
            .map_err(map_err)?;
        match version {
            None => {
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    params![SCHEMA_VERSION],
                )
                .map_err(map_err)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(MetadataError::Backend(format!(
                    "metadata schema version {v} is not supported (this agent knows version \
                     {SCHEMA_VERSION})"
                )));
            }
        }
        tx.commit().map_err(map_err)
    }

    /// Takes the write lock up front: a deferred transaction that reads and then writes could
    /// fail with SQLITE_BUSY midway when another connection wrote in between, and the busy
    /// timeout does not help in that case.
    fn write_tx(&mut self) -> Result<Transaction<'_>, MetadataError> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)
    }

    /// A read transaction, so multi-statement reads see one snapshot.
    fn read_tx(&mut self) -> Result<Transaction<'_>, MetadataError> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(map_err)
    }
}

fn now_ms() -> i64 {
    // A clock before 1970 means a broken host; recording 0 beats refusing every commit.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn map_err(err: rusqlite::Error) -> MetadataError {
    match &err {
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
        {
            MetadataError::Unavailable(err.to_string())
        }
        _ => MetadataError::Backend(err.to_string()),
    }
}

fn to_i64(value: u64, what: &str) -> Result<i64, MetadataError> {
    i64::try_from(value).map_err(|_| MetadataError::Backend(format!("{what} {value} is too large")))
}

fn parse_uuid(text: &str) -> Result<Uuid, MetadataError> {
    Uuid::parse_str(text)
        .map_err(|e| MetadataError::Backend(format!("corrupt topic id '{text}' in store: {e}")))
}

/// Reads a chunk row selected with [`CHUNK_COLUMNS`]. Out-of-range integers (a corrupt row) are
/// reported by rusqlite's own conversions.
fn chunk_from_row(row: &Row<'_>) -> rusqlite::Result<ChunkLocation> {
    let byte_pos: i64 = row.get(1)?;
    Ok(ChunkLocation {
        object_key: row.get(0)?,
        byte_pos: u64::try_from(byte_pos)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(1, byte_pos))?,
        byte_len: row.get(2)?,
        crc32c: row.get(3)?,
        base_offset: row.get(4)?,
        last_offset: row.get(5)?,
        max_timestamp_ms: row.get(6)?,
        skipped_batches: match row.get::<_, Option<String>>(7)? {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|i| {
                    i.parse().map_err(|_| {
                        rusqlite::Error::InvalidColumnType(
                            7,
                            list.clone(),
                            rusqlite::types::Type::Text,
                        )
                    })
                })
                .collect::<rusqlite::Result<Vec<u32>>>()?,
        },
    })
}

fn load_configs(tx: &Transaction<'_>, id: &str) -> Result<BTreeMap<String, String>, MetadataError> {
    let mut stmt = tx
        .prepare_cached("SELECT key, value FROM topic_configs WHERE topic_id = ?1")
        .map_err(map_err)?;
    let rows = stmt
        .query_map(params![id], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(map_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(map_err)
}

/// Loads one topic; `column` is `name` or `id` (never caller input).
fn load_topic(
    tx: &Transaction<'_>,
    column: &'static str,
    value: &str,
) -> Result<Option<TopicInfo>, MetadataError> {
    let sql =
        format!("SELECT id, name, partition_count, created_ms FROM topics WHERE {column} = ?1");
    let row: Option<(String, String, i32, i64)> = tx
        .query_row(&sql, params![value], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()
        .map_err(map_err)?;
    let Some((id, name, partition_count, created_ms)) = row else {
        return Ok(None);
    };
    let configs = load_configs(tx, &id)?;
    Ok(Some(TopicInfo {
        id: parse_uuid(&id)?,
        name,
        partition_count,
        configs,
        created_ms,
    }))
}

fn load_offsets(
    tx: &Transaction<'_>,
    topic_id: &str,
    partition: i32,
) -> Result<PartitionOffsets, MetadataError> {
    tx.query_row(
        "SELECT log_start_offset, next_offset FROM partitions
         WHERE topic_id = ?1 AND partition = ?2",
        params![topic_id, partition],
        |row| {
            Ok(PartitionOffsets {
                log_start_offset: row.get(0)?,
                high_watermark: row.get(1)?,
            })
        },
    )
    .optional()
    .map_err(map_err)?
    .ok_or(MetadataError::UnknownTopicOrPartition)
}

fn insert_partitions(
    tx: &Transaction<'_>,
    topic_id: &str,
    range: std::ops::Range<i32>,
) -> Result<(), MetadataError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO partitions (topic_id, partition, next_offset, log_start_offset)
             VALUES (?1, ?2, 0, 0)",
        )
        .map_err(map_err)?;
    for partition in range {
        stmt.execute(params![topic_id, partition])
            .map_err(map_err)?;
    }
    Ok(())
}

impl MetadataBackend for SqliteBackend {
    /// Rejects a count below 1: a topic without partitions could never be written or deleted
    /// meaningfully, and resolving Kafka's "-1 = broker default" is the caller's job.
    fn create_topic(
        &mut self,
        name: &str,
        partition_count: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<TopicInfo, MetadataError> {
        if partition_count < 1 {
            return Err(MetadataError::InvalidPartitions(
                "Number of partitions must be larger than 0.".to_string(),
            ));
        }
        let tx = self.write_tx()?;
        let taken: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM topics WHERE name = ?1",
                params![name],
                |row| row.get(0),
            )
            .optional()
            .map_err(map_err)?;
        if taken.is_some() {
            return Err(MetadataError::TopicExists(name.to_string()));
        }
        let id = Uuid::new_v4();
        let id_text = id.to_string();
        let created_ms = now_ms();
        tx.execute(
            "INSERT INTO topics (id, name, partition_count, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![id_text, name, partition_count, created_ms],
        )
        .map_err(map_err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO topic_configs (topic_id, key, value) VALUES (?1, ?2, ?3)",
                )
                .map_err(map_err)?;
            for (key, value) in configs {
                stmt.execute(params![id_text, key, value])
                    .map_err(map_err)?;
            }
        }
        insert_partitions(&tx, &id_text, 0..partition_count)?;
        tx.commit().map_err(map_err)?;
        Ok(TopicInfo {
            id,
            name: name.to_string(),
            partition_count,
            configs: configs.clone(),
            created_ms,
        })
    }

    fn delete_topic(&mut self, name: &str) -> Result<TopicInfo, MetadataError> {
        let tx = self.write_tx()?;
        let topic = load_topic(&tx, "name", name)?.ok_or(MetadataError::UnknownTopicOrPartition)?;
        let id = topic.id.to_string();
        // Children first, so the foreign keys hold at every statement without relying on
        // cascades (which a shared Postgres schema would have to declare identically).
        for sql in [
            "DELETE FROM chunks WHERE topic_id = ?1",
            "DELETE FROM producer_state WHERE topic_id = ?1",
            "DELETE FROM partitions WHERE topic_id = ?1",
            "DELETE FROM topic_configs WHERE topic_id = ?1",
            "DELETE FROM topics WHERE id = ?1",
        ] {
            tx.execute(sql, params![id]).map_err(map_err)?;
        }
        tx.commit().map_err(map_err)?;
        Ok(topic)
    }

    fn create_partitions(
        &mut self,
        name: &str,
        new_total: i32,
    ) -> Result<TopicInfo, MetadataError> {
        let tx = self.write_tx()?;
        let mut topic =
            load_topic(&tx, "name", name)?.ok_or(MetadataError::UnknownTopicOrPartition)?;
        let current = topic.partition_count;
        // Kafka's own wording, which clients show to users as is.
        if new_total < current {
            return Err(MetadataError::InvalidPartitions(format!(
                "Topic currently has {current} partitions, which is higher than the requested \
                 {new_total}."
            )));
        }
        if new_total == current {
            return Err(MetadataError::InvalidPartitions(format!(
                "Topic already has {current} partition(s)."
            )));
        }
        let id = topic.id.to_string();
        insert_partitions(&tx, &id, current..new_total)?;
        tx.execute(
            "UPDATE topics SET partition_count = ?1 WHERE id = ?2",
            params![new_total, id],
        )
        .map_err(map_err)?;
        tx.commit().map_err(map_err)?;
        topic.partition_count = new_total;
        Ok(topic)
    }

    fn list_topics(&mut self) -> Result<Vec<TopicInfo>, MetadataError> {
        let tx = self.read_tx()?;
        let mut configs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        {
            let mut stmt = tx
                .prepare_cached("SELECT topic_id, key, value FROM topic_configs")
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?))
                })
                .map_err(map_err)?;
            for row in rows {
                let (id, key, value) = row.map_err(map_err)?;
                configs.entry(id).or_default().insert(key, value);
            }
        }
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, name, partition_count, created_ms FROM topics ORDER BY name",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i32>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })
            .map_err(map_err)?;
        let mut topics = Vec::new();
        for row in rows {
            let (id, name, partition_count, created_ms) = row.map_err(map_err)?;
            topics.push(TopicInfo {
                id: parse_uuid(&id)?,
                configs: configs.remove(&id).unwrap_or_default(),
                name,
                partition_count,
                created_ms,
            });
        }
        Ok(topics)
    }

    fn save_group(&mut self, group: &StoredGroup) -> Result<(), MetadataError> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO groups (group_id, protocol_type, state, updated_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (group_id) DO UPDATE SET protocol_type = excluded.protocol_type,
                 state = excluded.state, updated_ms = excluded.updated_ms",
            params![group.group_id, group.protocol_type, group.state, now_ms()],
        )
        .map_err(map_err)?;
        tx.commit().map_err(map_err)
    }

    fn load_group(&mut self, group_id: &str) -> Result<Option<StoredGroup>, MetadataError> {
        let tx = self.read_tx()?;
        let row = tx
            .query_row(
                "SELECT protocol_type, state FROM groups WHERE group_id = ?1",
                params![group_id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()
            .map_err(map_err)?;
        Ok(row.map(|(protocol_type, state)| StoredGroup {
            group_id: group_id.to_string(),
            protocol_type,
            state,
        }))
    }

    fn list_groups(&mut self) -> Result<Vec<(String, String)>, MetadataError> {
        let tx = self.read_tx()?;
        let mut stmt = tx
            .prepare_cached(
                "SELECT group_id, protocol_type FROM groups
                 UNION
                 SELECT DISTINCT group_id, '' FROM group_offsets
                 WHERE group_id NOT IN (SELECT group_id FROM groups)
                 ORDER BY group_id",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(map_err)?
            .collect::<rusqlite::Result<Vec<(String, String)>>>()
            .map_err(map_err)?;
        Ok(rows)
    }

    fn delete_group(&mut self, group_id: &str) -> Result<bool, MetadataError> {
        let tx = self.write_tx()?;
        let a = tx
            .execute("DELETE FROM groups WHERE group_id = ?1", params![group_id])
            .map_err(map_err)?;
        let b = tx
            .execute(
                "DELETE FROM group_offsets WHERE group_id = ?1",
                params![group_id],
            )
            .map_err(map_err)?;
        tx.commit().map_err(map_err)?;
        Ok(a + b > 0)
    }

    fn commit_offsets(
        &mut self,
        group_id: &str,
        offsets: &[CommittedOffset],
    ) -> Result<(), MetadataError> {
        let tx = self.write_tx()?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO group_offsets (group_id, topic, partition, committed_offset,
                         leader_epoch, metadata, commit_time_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (group_id, topic, partition) DO UPDATE SET
                         committed_offset = excluded.committed_offset,
                         leader_epoch = excluded.leader_epoch,
                         metadata = excluded.metadata,
                         commit_time_ms = excluded.commit_time_ms",
                )
                .map_err(map_err)?;
            for o in offsets {
                stmt.execute(params![
                    group_id,
                    o.topic,
                    o.partition,
                    o.offset,
                    o.leader_epoch,
                    o.metadata,
                    o.commit_time_ms
                ])
                .map_err(map_err)?;
            }
        }
        tx.commit().map_err(map_err)
    }

    fn fetch_offsets(
        &mut self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<CommittedOffset>, MetadataError> {
        let tx = self.read_tx()?;
        let row = |r: &Row<'_>| {
            Ok(CommittedOffset {
                topic: r.get(0)?,
                partition: r.get(1)?,
                offset: r.get(2)?,
                leader_epoch: r.get(3)?,
                metadata: r.get(4)?,
                commit_time_ms: r.get(5)?,
            })
        };
        const COLUMNS: &str =
            "topic, partition, committed_offset, leader_epoch, metadata, commit_time_ms";
        let mut out = Vec::new();
        match partitions {
            None => {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM group_offsets WHERE group_id = ?1
                         ORDER BY topic, partition"
                    ))
                    .map_err(map_err)?;
                for r in stmt.query_map(params![group_id], row).map_err(map_err)? {
                    out.push(r.map_err(map_err)?);
                }
            }
            Some(list) => {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM group_offsets
                         WHERE group_id = ?1 AND topic = ?2 AND partition = ?3"
                    ))
                    .map_err(map_err)?;
                for (topic, partition) in list {
                    if let Some(o) = stmt
                        .query_row(params![group_id, topic, partition], row)
                        .optional()
                        .map_err(map_err)?
                    {
                        out.push(o);
                    }
                }
            }
        }
        Ok(out)
    }

    fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), MetadataError> {
        let tx = self.write_tx()?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "DELETE FROM group_offsets WHERE group_id = ?1 AND topic = ?2 AND partition = ?3",
                )
                .map_err(map_err)?;
            for (topic, partition) in partitions {
                stmt.execute(params![group_id, topic, partition])
                    .map_err(map_err)?;
            }
        }
        tx.commit().map_err(map_err)
    }

    fn allocate_producer_id(&mut self) -> Result<i64, MetadataError> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO producer_ids (id, next_producer_id) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
            [],
        )
        .map_err(map_err)?;
        let id: i64 = tx
            .query_row(
                "SELECT next_producer_id FROM producer_ids WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .map_err(map_err)?;
        tx.execute(
            "UPDATE producer_ids SET next_producer_id = ?1 WHERE id = 1",
            params![id + 1],
        )
        .map_err(map_err)?;
        tx.commit().map_err(map_err)?;
        Ok(id)
    }

    fn cluster_id(&mut self) -> Result<String, MetadataError> {
        let tx = self.write_tx()?;
        let existing: Option<String> = tx
            .query_row("SELECT id FROM cluster LIMIT 1", [], |row| row.get(0))
            .optional()
            .map_err(map_err)?;
        let id = match existing {
            Some(id) => id,
            None => {
                let id = Uuid::new_v4().simple().to_string();
                tx.execute("INSERT INTO cluster (id) VALUES (?1)", params![id])
                    .map_err(map_err)?;
                id
            }
        };
        tx.commit().map_err(map_err)?;
        Ok(id)
    }

    fn topic_by_name(&mut self, name: &str) -> Result<Option<TopicInfo>, MetadataError> {
        let tx = self.read_tx()?;
        load_topic(&tx, "name", name)
    }

    fn topic_by_id(&mut self, id: Uuid) -> Result<Option<TopicInfo>, MetadataError> {
        let tx = self.read_tx()?;
        load_topic(&tx, "id", &id.to_string())
    }

    fn commit_segment(
        &mut self,
        segment: &SegmentCommit,
    ) -> Result<SegmentCommitted, MetadataError> {
        // Checked before the transaction: a zero-offset chunk would get last_offset < base_offset
        // and break the non-overlapping-ranges invariant fetches rely on.
        if let Some(chunk) = segment.chunks.iter().find(|c| c.offset_count == 0) {
            return Err(MetadataError::Backend(format!(
                "chunk of {}/{} in segment {} has no offsets",
                chunk.topic_id, chunk.partition, segment.object_key
            )));
        }
        let size_bytes = to_i64(segment.size_bytes, "segment size")?;
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO segments (object_key, size_bytes, created_ms) VALUES (?1, ?2, ?3)",
            params![segment.object_key, size_bytes, segment.created_ms],
        )
        .map_err(map_err)?;
        let mut chunks = Vec::with_capacity(segment.chunks.len());
        // Producer states touched by this segment, written back once at the end.
        let mut producers: HashMap<(i64, String, i32), Option<ProducerState>> = HashMap::new();
        {
            let mut next_offset = tx
                .prepare_cached(
                    "SELECT next_offset, log_start_offset FROM partitions
                     WHERE topic_id = ?1 AND partition = ?2",
                )
                .map_err(map_err)?;
            let mut advance = tx
                .prepare_cached(
                    "UPDATE partitions SET next_offset = ?1 WHERE topic_id = ?2 AND partition = ?3",
                )
                .map_err(map_err)?;
            let mut insert_chunk = tx
                .prepare_cached(
                    "INSERT INTO chunks (topic_id, partition, base_offset, last_offset, object_key,
                         byte_pos, byte_len, crc32c, max_timestamp_ms, skipped_batches)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(map_err)?;
            let mut load_producer = tx
                .prepare_cached(
                    "SELECT producer_epoch, recent_batches FROM producer_state
                     WHERE producer_id = ?1 AND topic_id = ?2 AND partition = ?3",
                )
                .map_err(map_err)?;
            for chunk in &segment.chunks {
                let topic_id = chunk.topic_id.to_string();
                let found: Option<(i64, i64)> = next_offset
                    .query_row(params![topic_id, chunk.partition], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()
                    .map_err(map_err)?;
                let Some((base, log_start_offset)) = found else {
                    // Topic deleted (or shrunk, were that possible) while the segment was being
                    // uploaded: its bytes become garbage for the cleaner; the rest still commits.
                    chunks.push(None);
                    continue;
                };
                // Idempotent batches first: each is checked against its producer's state as
                // left by the batches before it, in this segment or earlier ones.
                let mut outcomes = Vec::with_capacity(chunk.producer_batches.len());
                let mut skipped_before = 0u32;
                let mut skipped = Vec::new();
                for pb in &chunk.producer_batches {
                    let key = (pb.producer_id, topic_id.clone(), chunk.partition);
                    if !producers.contains_key(&key) {
                        let row: Option<(i16, String)> = load_producer
                            .query_row(params![pb.producer_id, topic_id, chunk.partition], |r| {
                                Ok((r.get(0)?, r.get(1)?))
                            })
                            .optional()
                            .map_err(map_err)?;
                        let state = match row {
                            None => None,
                            Some((epoch, text)) => Some(ProducerState {
                                epoch,
                                recent: producer_state::decode_recent(&text).ok_or_else(|| {
                                    MetadataError::Backend(format!(
                                        "corrupt producer state for {}",
                                        pb.producer_id
                                    ))
                                })?,
                            }),
                        };
                        producers.insert(key.clone(), state);
                    }
                    let state = producers.get_mut(&key).expect("inserted above");
                    let outcome = producer_state::check(state.as_ref(), pb);
                    if outcome == BatchOutcome::Appended {
                        let offset = base + i64::from(pb.offset_in_chunk - skipped_before);
                        *state = Some(producer_state::record(state.take(), pb, offset));
                    } else {
                        skipped.push(pb.batch_index.to_string());
                        skipped_before += pb.offset_count;
                    }
                    outcomes.push(outcome);
                }
                let taken = chunk.offset_count - skipped_before;
                if taken == 0 {
                    chunks.push(Some(ChunkCommitted {
                        base_offset: None,
                        log_start_offset,
                        producer_outcomes: outcomes,
                    }));
                    continue;
                }
                let next = base.checked_add(i64::from(taken)).ok_or_else(|| {
                    MetadataError::Backend(format!(
                        "offsets of {topic_id}/{} overflow",
                        chunk.partition
                    ))
                })?;
                advance
                    .execute(params![next, topic_id, chunk.partition])
                    .map_err(map_err)?;
                let skipped = (!skipped.is_empty()).then(|| skipped.join(","));
                insert_chunk
                    .execute(params![
                        topic_id,
                        chunk.partition,
                        base,
                        next - 1,
                        segment.object_key,
                        to_i64(chunk.byte_pos, "chunk position")?,
                        i64::from(chunk.byte_len),
                        i64::from(chunk.crc32c),
                        chunk.max_timestamp_ms,
                        skipped,
                    ])
                    .map_err(map_err)?;
                chunks.push(Some(ChunkCommitted {
                    base_offset: Some(base),
                    log_start_offset,
                    producer_outcomes: outcomes,
                }));
            }
        }
        if !producers.is_empty() {
            let mut store = tx
                .prepare_cached(
                    "INSERT INTO producer_state
                         (producer_id, topic_id, partition, producer_epoch, recent_batches)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (producer_id, topic_id, partition) DO UPDATE SET
                         producer_epoch = excluded.producer_epoch,
                         recent_batches = excluded.recent_batches",
                )
                .map_err(map_err)?;
            for ((producer_id, topic_id, partition), state) in &producers {
                if let Some(state) = state {
                    store
                        .execute(params![
                            producer_id,
                            topic_id,
                            partition,
                            state.epoch,
                            producer_state::encode_recent(&state.recent),
                        ])
                        .map_err(map_err)?;
                }
            }
        }
        // Read under the write lock, so that commits ordered by the store also get ordered
        // append times (given agents whose clocks agree).
        let commit_time_ms = now_ms();
        tx.commit().map_err(map_err)?;
        Ok(SegmentCommitted {
            chunks,
            commit_time_ms,
        })
    }

    fn partition_offsets(
        &mut self,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<PartitionOffsets, MetadataError> {
        let tx = self.read_tx()?;
        load_offsets(&tx, &topic_id.to_string(), partition)
    }

    fn fetch_chunks(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        from_offset: i64,
        bytes_budget: u64,
        chunks_max: usize,
    ) -> Result<FetchChunks, MetadataError> {
        let tx = self.read_tx()?;
        let topic_id = topic_id.to_string();
        let offsets = load_offsets(&tx, &topic_id, partition)?;
        let mut chunks = Vec::new();
        if chunks_max > 0 {
            let limit = i64::try_from(chunks_max).unwrap_or(i64::MAX);
            // Ordered by last_offset, not base_offset: the orders agree (ranges never overlap)
            // and this one lets the chunks_by_last_offset index serve both the range and the
            // order, instead of walking the partition from its first chunk.
            let sql = format!(
                "SELECT {CHUNK_COLUMNS} FROM chunks
                 WHERE topic_id = ?1 AND partition = ?2 AND last_offset >= ?3
                 ORDER BY last_offset LIMIT ?4"
            );
            let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
            let rows = stmt
                .query_map(
                    params![topic_id, partition, from_offset, limit],
                    chunk_from_row,
                )
                .map_err(map_err)?;
            let mut bytes = 0u64;
            for row in rows {
                let chunk = row.map_err(map_err)?;
                bytes = bytes.saturating_add(u64::from(chunk.byte_len));
                chunks.push(chunk);
                if bytes >= bytes_budget {
                    break;
                }
            }
        }
        Ok(FetchChunks { offsets, chunks })
    }

    fn chunk_for_timestamp(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<Option<ChunkLocation>, MetadataError> {
        let tx = self.read_tx()?;
        let topic_id = topic_id.to_string();
        load_offsets(&tx, &topic_id, partition)?;
        let sql = format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks
             WHERE topic_id = ?1 AND partition = ?2 AND max_timestamp_ms >= ?3
             ORDER BY base_offset LIMIT 1"
        );
        tx.query_row(
            &sql,
            params![topic_id, partition, timestamp_ms],
            chunk_from_row,
        )
        .optional()
        .map_err(map_err)
    }

    fn chunk_with_max_timestamp(
        &mut self,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<Option<ChunkLocation>, MetadataError> {
        let tx = self.read_tx()?;
        let topic_id = topic_id.to_string();
        load_offsets(&tx, &topic_id, partition)?;
        let sql = format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks
             WHERE topic_id = ?1 AND partition = ?2
             ORDER BY max_timestamp_ms DESC, base_offset ASC LIMIT 1"
        );
        tx.query_row(&sql, params![topic_id, partition], chunk_from_row)
            .optional()
            .map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::ChunkCommit;

    fn backend() -> SqliteBackend {
        SqliteBackend::open_in_memory().expect("in-memory database")
    }

    fn topic(b: &mut SqliteBackend, name: &str, partitions: i32) -> TopicInfo {
        b.create_topic(name, partitions, &BTreeMap::new())
            .expect("create topic")
    }

    fn chunk(
        topic_id: Uuid,
        partition: i32,
        byte_pos: u64,
        len: u32,
        count: u32,
        ts: i64,
    ) -> ChunkCommit {
        ChunkCommit {
            topic_id,
            partition,
            byte_pos,
            byte_len: len,
            crc32c: 0xdead_beef,
            offset_count: count,
            max_timestamp_ms: ts,
            producer_batches: vec![],
        }
    }

    fn segment(key: &str, chunks: Vec<ChunkCommit>) -> SegmentCommit {
        SegmentCommit {
            object_key: key.to_string(),
            size_bytes: chunks.iter().map(|c| u64::from(c.byte_len)).sum(),
            created_ms: 1,
            chunks,
        }
    }

    /// One partition with five chunks: offsets 0-9, 10-19, ..., 40-49, 100 bytes each,
    /// timestamps 1000, 3000, 2000, 3000, 500.
    fn five_chunks(b: &mut SqliteBackend) -> Uuid {
        let id = topic(b, "t", 1).id;
        for (i, ts) in [1000, 3000, 2000, 3000, 500].into_iter().enumerate() {
            let key = format!("seg-{i}");
            b.commit_segment(&segment(&key, vec![chunk(id, 0, 0, 100, 10, ts)]))
                .expect("commit");
        }
        id
    }

    #[test]
    fn create_list_and_look_up_topics() {
        let mut b = backend();
        let configs = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let a = b.create_topic("a", 3, &configs).expect("create a");
        let z = topic(&mut b, "z", 1);
        assert_eq!(a.configs, configs);
        assert_eq!(
            b.create_topic("a", 1, &BTreeMap::new()),
            Err(MetadataError::TopicExists("a".to_string()))
        );
        assert!(matches!(
            b.create_topic("zero", 0, &BTreeMap::new()),
            Err(MetadataError::InvalidPartitions(_))
        ));
        assert_eq!(b.list_topics().expect("list"), vec![a.clone(), z.clone()]);
        assert_eq!(b.topic_by_name("a").expect("by name"), Some(a.clone()));
        assert_eq!(b.topic_by_id(z.id).expect("by id"), Some(z));
        assert_eq!(b.topic_by_name("nope").expect("by name"), None);
        assert_eq!(b.topic_by_id(Uuid::new_v4()).expect("by id"), None);
        for p in 0..3 {
            assert_eq!(
                b.partition_offsets(a.id, p).expect("offsets"),
                PartitionOffsets {
                    log_start_offset: 0,
                    high_watermark: 0
                }
            );
        }
        assert_eq!(
            b.partition_offsets(a.id, 3),
            Err(MetadataError::UnknownTopicOrPartition)
        );
    }

    #[test]
    fn delete_and_recreate_topic() {
        let mut b = backend();
        let configs = BTreeMap::from([("cleanup.policy".to_string(), "delete".to_string())]);
        let old = b.create_topic("t", 2, &configs).expect("create");
        b.commit_segment(&segment("s1", vec![chunk(old.id, 1, 0, 10, 5, 1)]))
            .expect("commit");
        assert_eq!(b.delete_topic("t").expect("delete"), old);
        assert_eq!(
            b.delete_topic("t"),
            Err(MetadataError::UnknownTopicOrPartition)
        );
        assert_eq!(b.topic_by_name("t").expect("by name"), None);
        assert_eq!(b.topic_by_id(old.id).expect("by id"), None);
        assert!(b.list_topics().expect("list").is_empty());
        assert_eq!(
            b.fetch_chunks(old.id, 1, 0, 1000, 10),
            Err(MetadataError::UnknownTopicOrPartition)
        );

        let new = topic(&mut b, "t", 1);
        assert_ne!(new.id, old.id);
        assert!(new.configs.is_empty());
        assert_eq!(
            b.partition_offsets(new.id, 0)
                .expect("offsets")
                .high_watermark,
            0
        );
        let left: i64 = b
            .conn
            .query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0))
            .expect("count chunks");
        assert_eq!(left, 0);
    }

    #[test]
    fn create_partitions_grows_and_rejects_shrinking() {
        let mut b = backend();
        let t = topic(&mut b, "t", 2);
        assert_eq!(
            b.create_partitions("t", 1),
            Err(MetadataError::InvalidPartitions(
                "Topic currently has 2 partitions, which is higher than the requested 1."
                    .to_string()
            ))
        );
        assert_eq!(
            b.create_partitions("t", 2),
            Err(MetadataError::InvalidPartitions(
                "Topic already has 2 partition(s).".to_string()
            ))
        );
        assert_eq!(
            b.create_partitions("nope", 5),
            Err(MetadataError::UnknownTopicOrPartition)
        );
        b.commit_segment(&segment("s1", vec![chunk(t.id, 0, 0, 10, 7, 1)]))
            .expect("commit");
        let grown = b.create_partitions("t", 5).expect("grow");
        assert_eq!(grown.partition_count, 5);
        assert_eq!(grown.id, t.id);
        assert_eq!(b.topic_by_name("t").expect("by name"), Some(grown));
        assert_eq!(b.partition_offsets(t.id, 0).expect("p0").high_watermark, 7);
        assert_eq!(b.partition_offsets(t.id, 4).expect("p4").high_watermark, 0);
        assert_eq!(
            b.partition_offsets(t.id, 5),
            Err(MetadataError::UnknownTopicOrPartition)
        );
    }

    #[test]
    fn commit_assigns_consecutive_offsets() {
        let mut b = backend();
        let t = topic(&mut b, "t", 2).id;
        let first = b
            .commit_segment(&segment(
                "s1",
                vec![
                    chunk(t, 0, 0, 10, 3, 1),
                    chunk(t, 1, 10, 10, 4, 1),
                    chunk(t, 0, 20, 10, 2, 1),
                ],
            ))
            .expect("commit s1");
        assert_eq!(first.base_offsets(), vec![Some(0), Some(0), Some(3)]);
        assert!(first.commit_time_ms > 0);
        let second = b
            .commit_segment(&segment(
                "s2",
                vec![chunk(t, 1, 0, 10, 1, 1), chunk(t, 0, 10, 10, 6, 1)],
            ))
            .expect("commit s2");
        assert_eq!(second.base_offsets(), vec![Some(4), Some(5)]);
        assert_eq!(b.partition_offsets(t, 0).expect("p0").high_watermark, 11);
        assert_eq!(b.partition_offsets(t, 1).expect("p1").high_watermark, 5);

        let p0 = b.fetch_chunks(t, 0, 0, u64::MAX, 100).expect("fetch");
        let ranges: Vec<_> = p0
            .chunks
            .iter()
            .map(|c| {
                (
                    c.object_key.as_str(),
                    c.byte_pos,
                    c.base_offset,
                    c.last_offset,
                )
            })
            .collect();
        assert_eq!(
            ranges,
            vec![("s1", 0, 0, 2), ("s1", 20, 3, 4), ("s2", 10, 5, 10)]
        );
        assert_eq!(p0.chunks[0].crc32c, 0xdead_beef);
    }

    fn idempotent_chunk(topic_id: Uuid, batches: &[(i16, i32, u32)]) -> ChunkCommit {
        let mut c = chunk(topic_id, 0, 0, 100, 0, 1);
        let mut offset = 0;
        for (i, &(epoch, seq, count)) in batches.iter().enumerate() {
            c.producer_batches.push(crate::metadata::ProducerBatch {
                batch_index: i as u32,
                offset_in_chunk: offset,
                offset_count: count,
                producer_id: 42,
                producer_epoch: epoch,
                base_sequence: seq,
            });
            offset += count;
        }
        c.offset_count = offset;
        c
    }

    #[test]
    fn idempotent_batches_are_deduplicated_and_ordered() {
        let mut b = backend();
        let t = topic(&mut b, "idem", 1).id;
        assert_eq!(b.allocate_producer_id().unwrap(), 0);
        assert_eq!(b.allocate_producer_id().unwrap(), 1);

        // Seq 0-2 and 3-4 appended.
        let first = b
            .commit_segment(&segment(
                "s1",
                vec![idempotent_chunk(t, &[(0, 0, 3), (0, 3, 2)])],
            ))
            .unwrap();
        let done = first.chunks[0].clone().unwrap();
        assert_eq!(done.base_offset, Some(0));
        assert_eq!(
            done.producer_outcomes,
            vec![BatchOutcome::Appended, BatchOutcome::Appended]
        );

        // A retry of seq 3-4, then new seq 5, in one chunk: the retry is skipped and keeps
        // its original offset; the new batch follows directly at offset 5.
        let c = idempotent_chunk(t, &[(0, 3, 2), (0, 5, 1)]);
        let second = b.commit_segment(&segment("s2", vec![c.clone()])).unwrap();
        let done = second.chunks[0].clone().unwrap();
        assert_eq!(
            done.producer_outcomes,
            vec![
                BatchOutcome::Duplicate { base_offset: 3 },
                BatchOutcome::Appended
            ]
        );
        assert_eq!(done.base_offset, Some(5));
        assert_eq!(done.offset_of(&c, 2), Some(5));
        assert_eq!(done.offsets_taken(&c), 1);
        let fetched = b.fetch_chunks(t, 0, 5, 1 << 20, 10).unwrap();
        assert_eq!(fetched.offsets.high_watermark, 6);
        assert_eq!(fetched.chunks[0].skipped_batches, vec![0]);
        assert_eq!(
            (fetched.chunks[0].base_offset, fetched.chunks[0].last_offset),
            (5, 5)
        );

        // A gap, and a stale epoch, are refused and take no offsets.
        let gap = b
            .commit_segment(&segment("s3", vec![idempotent_chunk(t, &[(0, 9, 1)])]))
            .unwrap();
        let done = gap.chunks[0].clone().unwrap();
        assert_eq!(
            done.producer_outcomes,
            vec![BatchOutcome::OutOfOrderSequence]
        );
        assert_eq!(done.base_offset, None);
        let bumped = b
            .commit_segment(&segment("s4", vec![idempotent_chunk(t, &[(1, 0, 1)])]))
            .unwrap();
        assert_eq!(bumped.base_offsets(), vec![Some(6)]);
        let stale = b
            .commit_segment(&segment("s5", vec![idempotent_chunk(t, &[(0, 6, 1)])]))
            .unwrap();
        assert_eq!(
            stale.chunks[0].as_ref().unwrap().producer_outcomes,
            vec![BatchOutcome::StaleEpoch]
        );
        assert_eq!(b.partition_offsets(t, 0).unwrap().high_watermark, 7);
    }

    #[test]
    fn group_state_and_offsets() {
        let mut b = backend();
        let o = |topic: &str, partition, offset| CommittedOffset {
            topic: topic.to_string(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: Some("m".to_string()),
            commit_time_ms: 5,
        };
        b.commit_offsets("g1", &[o("a", 0, 10), o("a", 1, 11)])
            .unwrap();
        b.commit_offsets("g1", &[o("a", 0, 12)]).unwrap();
        b.commit_offsets("g2", &[o("b", 0, 1)]).unwrap();
        let all = b.fetch_offsets("g1", None).unwrap();
        assert_eq!(all, vec![o("a", 0, 12), o("a", 1, 11)]);
        let some = b
            .fetch_offsets("g1", Some(&[("a".into(), 1), ("zz".into(), 0)]))
            .unwrap();
        assert_eq!(some, vec![o("a", 1, 11)]);
        b.save_group(&StoredGroup {
            group_id: "g1".into(),
            protocol_type: "consumer".into(),
            state: vec![1, 2, 3],
        })
        .unwrap();
        assert_eq!(b.load_group("g1").unwrap().unwrap().state, vec![1, 2, 3]);
        assert_eq!(
            b.list_groups().unwrap(),
            vec![
                ("g1".to_string(), "consumer".to_string()),
                ("g2".to_string(), String::new())
            ]
        );
        b.delete_offsets("g1", &[("a".into(), 0)]).unwrap();
        assert_eq!(b.fetch_offsets("g1", None).unwrap(), vec![o("a", 1, 11)]);
        assert!(b.delete_group("g1").unwrap());
        assert!(!b.delete_group("g1").unwrap());
        assert!(b.load_group("g1").unwrap().is_none());
        assert!(b.fetch_offsets("g1", None).unwrap().is_empty());
    }

    #[test]
    fn commit_skips_deleted_topic_and_commits_the_rest() {
        let mut b = backend();
        let gone = topic(&mut b, "gone", 1).id;
        let kept = topic(&mut b, "kept", 1).id;
        b.delete_topic("gone").expect("delete");
        let committed = b
            .commit_segment(&segment(
                "s1",
                vec![
                    chunk(gone, 0, 0, 10, 3, 1),
                    chunk(kept, 0, 10, 10, 4, 1),
                    chunk(kept, 7, 20, 10, 4, 1),
                ],
            ))
            .expect("commit");
        assert_eq!(committed.base_offsets(), vec![None, Some(0), None]);
        assert_eq!(
            b.partition_offsets(kept, 0).expect("kept").high_watermark,
            4
        );
    }

    #[test]
    fn commit_rejects_empty_chunk_without_side_effects() {
        let mut b = backend();
        let t = topic(&mut b, "t", 1).id;
        let result = b.commit_segment(&segment(
            "s1",
            vec![chunk(t, 0, 0, 10, 3, 1), chunk(t, 0, 10, 10, 0, 1)],
        ));
        assert!(
            matches!(result, Err(MetadataError::Backend(_))),
            "{result:?}"
        );
        assert_eq!(
            b.partition_offsets(t, 0).expect("offsets").high_watermark,
            0
        );
        // The segment row was not written either, so the same key can still be committed.
        b.commit_segment(&segment("s1", vec![chunk(t, 0, 0, 10, 3, 1)]))
            .expect("commit");
    }

    #[test]
    fn failed_commit_rolls_back() {
        let mut b = backend();
        let t = topic(&mut b, "t", 1).id;
        b.commit_segment(&segment("s1", vec![chunk(t, 0, 0, 10, 3, 1)]))
            .expect("commit");
        let dup = b.commit_segment(&segment("s1", vec![chunk(t, 0, 0, 10, 3, 1)]));
        assert!(matches!(dup, Err(MetadataError::Backend(_))), "{dup:?}");
        assert_eq!(
            b.partition_offsets(t, 0).expect("offsets").high_watermark,
            3
        );
        // The second chunk fails after the first one advanced the partition and was indexed.
        let late_failure = b.commit_segment(&segment(
            "s2",
            vec![chunk(t, 0, 0, 10, 3, 1), chunk(t, 0, u64::MAX, 10, 3, 1)],
        ));
        assert!(
            matches!(late_failure, Err(MetadataError::Backend(_))),
            "{late_failure:?}"
        );
        assert_eq!(
            b.partition_offsets(t, 0).expect("offsets").high_watermark,
            3
        );
        assert_eq!(
            b.fetch_chunks(t, 0, 0, u64::MAX, 10)
                .expect("fetch")
                .chunks
                .len(),
            1
        );
        let committed = b
            .commit_segment(&segment("s2", vec![chunk(t, 0, 0, 10, 3, 1)]))
            .expect("commit after rollback");
        assert_eq!(committed.base_offsets(), vec![Some(3)]);
    }

    #[test]
    fn two_connections_share_one_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("meta.db");
        let mut a = SqliteBackend::open(&path).expect("open a");
        let mut b = SqliteBackend::open(&path).expect("open b");
        let t = topic(&mut a, "t", 1).id;
        assert_eq!(
            b.topic_by_name("t").expect("seen by b").map(|t| t.id),
            Some(t)
        );
        for i in 0..3 {
            let backend = if i % 2 == 0 { &mut a } else { &mut b };
            let committed = backend
                .commit_segment(&segment(&format!("s{i}"), vec![chunk(t, 0, 0, 10, 2, 1)]))
                .expect("commit");
            assert_eq!(committed.base_offsets(), vec![Some(2 * i)]);
        }
        assert_eq!(
            b.partition_offsets(t, 0).expect("offsets").high_watermark,
            6
        );
    }

    #[test]
    fn fetch_from_the_middle_of_a_chunk() {
        let mut b = backend();
        let t = five_chunks(&mut b);
        let fetched = b.fetch_chunks(t, 0, 15, u64::MAX, 2).expect("fetch");
        assert_eq!(
            fetched.offsets,
            PartitionOffsets {
                log_start_offset: 0,
                high_watermark: 50
            }
        );
        let bases: Vec<i64> = fetched.chunks.iter().map(|c| c.base_offset).collect();
        assert_eq!(bases, vec![10, 20]);
        assert_eq!(fetched.chunks[0].last_offset, 19);
        assert_eq!(fetched.chunks[1].object_key, "seg-2");
    }

    #[test]
    fn fetch_respects_byte_budget_and_chunks_max() {
        let mut b = backend();
        let t = five_chunks(&mut b);
        let bases = |f: FetchChunks| f.chunks.iter().map(|c| c.base_offset).collect::<Vec<_>>();
        // The first chunk counts even when it alone exceeds the budget.
        assert_eq!(
            bases(b.fetch_chunks(t, 0, 0, 1, 10).expect("fetch")),
            vec![0]
        );
        assert_eq!(
            bases(b.fetch_chunks(t, 0, 0, 0, 10).expect("fetch")),
            vec![0]
        );
        // Reaching the budget exactly stops; going one byte past it needs one more chunk.
        assert_eq!(
            bases(b.fetch_chunks(t, 0, 0, 200, 10).expect("fetch")),
            vec![0, 10]
        );
        assert_eq!(
            bases(b.fetch_chunks(t, 0, 0, 201, 10).expect("fetch")),
            vec![0, 10, 20]
        );
        assert_eq!(
            bases(b.fetch_chunks(t, 0, 5, u64::MAX, 3).expect("fetch")),
            vec![0, 10, 20]
        );
        assert_eq!(
            bases(b.fetch_chunks(t, 0, 0, u64::MAX, 100).expect("fetch")),
            vec![0, 10, 20, 30, 40]
        );
        assert!(b
            .fetch_chunks(t, 0, 0, u64::MAX, 0)
            .expect("fetch")
            .chunks
            .is_empty());
    }

    #[test]
    fn fetch_past_the_end_and_of_unknown_partitions() {
        let mut b = backend();
        let t = five_chunks(&mut b);
        assert_eq!(
            b.fetch_chunks(t, 0, 49, u64::MAX, 10)
                .expect("fetch")
                .chunks
                .len(),
            1
        );
        let past = b.fetch_chunks(t, 0, 50, u64::MAX, 10).expect("fetch");
        assert!(past.chunks.is_empty());
        assert_eq!(past.offsets.high_watermark, 50);
        assert!(b
            .fetch_chunks(t, 0, 1_000, u64::MAX, 10)
            .expect("fetch")
            .chunks
            .is_empty());
        assert_eq!(
            b.fetch_chunks(t, 1, 0, u64::MAX, 10),
            Err(MetadataError::UnknownTopicOrPartition)
        );
        assert_eq!(
            b.fetch_chunks(Uuid::new_v4(), 0, 0, u64::MAX, 10),
            Err(MetadataError::UnknownTopicOrPartition)
        );
    }

    #[test]
    fn fetch_uses_the_last_offset_index() {
        let b = backend();
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT {CHUNK_COLUMNS} FROM chunks
             WHERE topic_id = ?1 AND partition = ?2 AND last_offset >= ?3
             ORDER BY last_offset LIMIT ?4"
        );
        let mut stmt = b.conn.prepare(&sql).expect("prepare");
        let plan: Vec<String> = stmt
            .query_map(params!["x", 0, 0, 10], |r| r.get(3))
            .expect("plan")
            .collect::<rusqlite::Result<_>>()
            .expect("plan rows");
        let plan = plan.join("\n");
        assert!(plan.contains("chunks_by_last_offset"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn timestamp_lookups() {
        let mut b = backend();
        let t = five_chunks(&mut b);
        let base = |c: Option<ChunkLocation>| c.map(|c| c.base_offset);
        assert_eq!(base(b.chunk_for_timestamp(t, 0, 0).expect("ts")), Some(0));
        assert_eq!(
            base(b.chunk_for_timestamp(t, 0, 1000).expect("ts")),
            Some(0)
        );
        assert_eq!(
            base(b.chunk_for_timestamp(t, 0, 1001).expect("ts")),
            Some(10)
        );
        assert_eq!(
            base(b.chunk_for_timestamp(t, 0, 2500).expect("ts")),
            Some(10)
        );
        assert_eq!(base(b.chunk_for_timestamp(t, 0, 3001).expect("ts")), None);
        // Greatest timestamp is 3000, in chunks 10 and 30: the earlier wins.
        let max = b
            .chunk_with_max_timestamp(t, 0)
            .expect("max")
            .expect("some chunk");
        assert_eq!(
            (
                max.base_offset,
                max.max_timestamp_ms,
                max.object_key.as_str()
            ),
            (10, 3000, "seg-1")
        );

        let empty = topic(&mut b, "empty", 1).id;
        assert_eq!(b.chunk_for_timestamp(empty, 0, 0).expect("ts"), None);
        assert_eq!(b.chunk_with_max_timestamp(empty, 0).expect("max"), None);
        assert_eq!(
            b.chunk_for_timestamp(empty, 1, 0),
            Err(MetadataError::UnknownTopicOrPartition)
        );
        assert_eq!(
            b.chunk_with_max_timestamp(empty, 1),
            Err(MetadataError::UnknownTopicOrPartition)
        );
    }

    #[test]
    fn file_database_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("meta.db");
        let (id, chunks) = {
            let mut b = SqliteBackend::open(&path).expect("open");
            let mode: String = b
                .conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .expect("journal mode");
            assert_eq!(mode, "wal");
            let sync: i64 = b
                .conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .expect("synchronous");
            assert_eq!(sync, 2, "FULL");
            let fk: i64 = b
                .conn
                .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
                .expect("foreign keys");
            assert_eq!(fk, 1);
            let id = topic(&mut b, "t", 2).id;
            b.commit_segment(&segment(
                "s1",
                vec![chunk(id, 0, 0, 10, 3, 7), chunk(id, 1, 10, 20, 4, 8)],
            ))
            .expect("commit");
            b.commit_segment(&segment("s2", vec![chunk(id, 0, 0, 30, 5, 9)]))
                .expect("commit");
            (id, b.fetch_chunks(id, 0, 0, u64::MAX, 10).expect("fetch"))
        };
        let mut b = SqliteBackend::open(&path).expect("reopen");
        assert_eq!(
            b.topic_by_id(id).expect("by id").map(|t| t.partition_count),
            Some(2)
        );
        assert_eq!(
            b.fetch_chunks(id, 0, 0, u64::MAX, 10).expect("fetch"),
            chunks
        );
        assert_eq!(chunks.offsets.high_watermark, 8);
        assert_eq!(b.partition_offsets(id, 1).expect("p1").high_watermark, 4);
        let committed = b
            .commit_segment(&segment("s3", vec![chunk(id, 0, 0, 10, 1, 10)]))
            .expect("commit after reopen");
        assert_eq!(committed.base_offsets(), vec![Some(8)]);
        let versions: i64 = b
            .conn
            .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
            .expect("versions");
        assert_eq!(versions, 1);
    }

    #[test]
    fn newer_schema_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("meta.db");
        let b = SqliteBackend::open(&path).expect("open");
        b.conn
            .execute("UPDATE schema_version SET version = 99", [])
            .expect("bump version");
        drop(b);
        assert!(matches!(
            SqliteBackend::open(&path),
            Err(MetadataError::Backend(_))
        ));
    }

    #[test]
    fn busy_maps_to_unavailable() {
        let err = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("database is locked".to_string()),
        );
        assert!(matches!(map_err(err), MetadataError::Unavailable(_)));
        assert!(matches!(
            map_err(rusqlite::Error::QueryReturnedNoRows),
            MetadataError::Backend(_)
        ));
    }
}
