//! weft: a diskless, Kafka-compatible agent.
//!
//! Words used throughout the crate:
//! - **agent**: one `weft agent` process. Agents are stateless; any agent can serve any partition.
//! - **shard**: one core, running one glommio executor. A shard owns its connections, its open
//!   segment, its caches and its copy of the topic table; shards share nothing mutable.
//! - **segment**: one immutable object in object storage, written by one flush of one shard. It
//!   holds record batches of many partitions, grouped by partition.
//! - **chunk**: one partition's contiguous batches inside a segment; the unit the metadata store
//!   indexes and a fetch reads.
//! - **metadata store**: the database that orders records (SQLite embedded; Postgres later).
//!
//! Kafka words (topic, partition, offset, record batch, high watermark) mean exactly what Kafka
//! means.
//!
//! The data path follows the folders: `server` (listener, connection, dispatch, one handler per
//! Kafka API) → `produce` and `fetch` → `segment`, `object_store`, `metadata`.

pub mod agent;
pub mod config;
pub mod fetch;
pub mod groups;
pub mod limits;
pub mod metadata;
pub mod metrics;
pub mod object_store;
pub mod produce;
pub mod protocol;
pub mod segment;
pub mod server;
pub mod shard;
pub mod topics;
