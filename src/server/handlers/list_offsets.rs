//! ListOffsets (key 2), v1–v7: earliest (-2), latest (-1), max timestamp (-3) and by timestamp.
//! A timestamp lookup finds the first chunk whose largest timestamp reaches the target, then
//! the first batch inside it that does, then (for uncompressed batches) the first record that
//! does, and answers its offset and timestamp.

use std::rc::Rc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::fetch::read_chunk;
use crate::metadata::ChunkLocation;
use crate::protocol::record_batch;
use crate::server::dispatch::RequestContext;
use crate::server::errors::metadata_error_code;
use crate::shard::Shard;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    for t in req.topics {
        let wanted = t.partitions.iter().map(|p| p.partition_index);
        let topic = shard
            .topics
            .get_partitions(t.name.0.as_str(), wanted, false)
            .await;
        let mut out = ListOffsetsTopicResponse::default().with_name(t.name.clone());
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            if version >= 4 {
                pr.leader_epoch = 0;
            }
            match &topic {
                Ok(Some(info))
                    if p.partition_index >= 0 && p.partition_index < info.info.partition_count =>
                {
                    match lookup(shard, info.info.id, p.partition_index, p.timestamp).await {
                        Ok((offset, timestamp)) => {
                            pr.offset = offset;
                            pr.timestamp = timestamp;
                        }
                        Err(code) => pr.error_code = code,
                    }
                }
                Ok(_) => pr.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Err(e) => pr.error_code = metadata_error_code(e),
            }
            out.partitions.push(pr);
        }
        resp.topics.push(out);
    }
    resp
}

/// (offset, timestamp) for one partition, or a Kafka error code.
async fn lookup(
    shard: &Rc<Shard>,
    topic_id: Uuid,
    partition: i32,
    timestamp: i64,
) -> Result<(i64, i64), i16> {
    let code = |e: crate::metadata::MetadataError| metadata_error_code(&e);
    match timestamp {
        LATEST | EARLIEST => {
            let offsets = shard
                .metadata
                .call("partition_offsets", move |b| {
                    b.partition_offsets(topic_id, partition)
                })
                .await
                .map_err(code)?;
            let offset = if timestamp == LATEST {
                offsets.high_watermark
            } else {
                offsets.log_start_offset
            };
            Ok((offset, -1))
        }
        MAX_TIMESTAMP => {
            let chunk = shard
                .metadata
                .call("chunk_with_max_timestamp", move |b| {
                    b.chunk_with_max_timestamp(topic_id, partition)
                })
                .await
                .map_err(code)?;
            match chunk {
                None => Ok((-1, -1)),
                Some(c) => {
                    let target = c.max_timestamp_ms;
                    // The batch holding the largest timestamp; Kafka answers the offset of the
                    // record, which for a batch is bounded by its last offset.
                    find_in_chunk(shard, &c, target, true).await
                }
            }
        }
        ts if ts >= 0 => {
            let chunk = shard
                .metadata
                .call("chunk_for_timestamp", move |b| {
                    b.chunk_for_timestamp(topic_id, partition, ts)
                })
                .await
                .map_err(code)?;
            match chunk {
                None => Ok((-1, -1)),
                Some(c) => find_in_chunk(shard, &c, ts, false).await,
            }
        }
        _ => Err(ResponseError::InvalidRequest.code()),
    }
}

/// The first batch of a chunk whose max timestamp reaches `target` (or equals it, for
/// MAX_TIMESTAMP), as (offset, timestamp).
async fn find_in_chunk(
    shard: &Rc<Shard>,
    chunk: &ChunkLocation,
    target: i64,
    exact: bool,
) -> Result<(i64, i64), i16> {
    let bytes = read_chunk(&*shard.store, &shard.cache, chunk)
        .await
        .map_err(|e| {
            tracing::error!(key = chunk.object_key, error = %e, "chunk read failed");
            ResponseError::KafkaStorageError.code()
        })?;
    let mut base = chunk.base_offset;
    for (index, item) in record_batch::batches(&bytes).enumerate() {
        let (range, h) = item.map_err(|_| ResponseError::KafkaStorageError.code())?;
        if chunk.skipped_batches.contains(&(index as u32)) {
            continue;
        }
        let hit = if exact {
            h.max_timestamp_ms == target
        } else {
            h.max_timestamp_ms >= target
        };
        if hit {
            if h.compression() == 0 {
                // Uncompressed: the exact record, as Kafka answers.
                for r in record_batch::records_of(&bytes[range.clone()], &h) {
                    let r = r.map_err(|_| ResponseError::KafkaStorageError.code())?;
                    let found = if exact {
                        r.timestamp_ms == target
                    } else {
                        r.timestamp_ms >= target
                    };
                    if found {
                        return Ok((base + i64::from(r.offset_delta), r.timestamp_ms));
                    }
                }
            }
            // Compressed payloads are never opened: answer at batch level, with the first
            // offset of the batch for a search and its last for the largest timestamp.
            let offset = if exact {
                base + i64::from(h.last_offset_delta)
            } else {
                base
            };
            return Ok((offset, h.max_timestamp_ms));
        }
        base += i64::from(h.offset_count());
    }
    Ok((-1, -1))
}
