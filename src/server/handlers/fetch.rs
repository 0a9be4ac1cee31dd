//! Fetch (key 1), v4–v12, sessionless. Offsets come from the metadata store's chunk index; data
//! comes from the shard's cache or ranged reads, checked against each chunk's CRC-32C. Base
//! offsets are rewritten in place. When fewer than `min_bytes` are ready, the request waits
//! until a commit lands on one of its partitions (from any shard) or `max_wait_ms` passes.

use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::future::{select, Either};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::fetch::{assemble, read_chunk};
use crate::metadata::{FetchChunks, MetadataError};
use crate::metrics;
use crate::server::dispatch::RequestContext;
use crate::server::errors::metadata_error_code;
use crate::shard::Shard;

/// A requested partition of a known topic.
struct Wanted {
    topic: usize,
    partition: usize,
    topic_id: Uuid,
    index: i32,
    offset: i64,
    max_bytes: usize,
}

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: FetchRequest,
    version: i16,
) -> FetchResponse {
    let resp = answer(shard, req, version).await;
    for p in resp.responses.iter().flat_map(|t| &t.partitions) {
        metrics::error_code(ApiKey::Fetch, p.error_code);
        let bytes = p.records.as_ref().map_or(0, |r| r.len() as u64);
        metrics::record(|m| m.fetch_bytes += bytes);
    }
    metrics::error_code(ApiKey::Fetch, resp.error_code);
    resp
}

async fn answer(shard: &Rc<Shard>, req: FetchRequest, version: i16) -> FetchResponse {
    let mut resp = FetchResponse::default();
    if version >= 7 && req.session_id != 0 {
        // Sessions are never created (we answer session id 0), so any id is unknown.
        resp.error_code = ResponseError::FetchSessionIdNotFound.code();
        return resp;
    }
    let read_committed = req.isolation_level == 1;

    // The response skeleton in request order, with the partitions that can be read.
    let mut wanted = Vec::new();
    let mut skeleton_error = false;
    for t in &req.topics {
        let name = t.topic.0.as_str();
        let mut out = FetchableTopicResponse::default()
            .with_topic(t.topic.clone())
            .with_topic_id(t.topic_id);
        let indexes = t.partitions.iter().map(|p| p.partition);
        let topic = shard.topics.get_partitions(name, indexes, false).await;
        for p in &t.partitions {
            let mut pd = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_aborted_transactions(read_committed.then(Vec::new))
                .with_records(Some(Default::default()));
            match &topic {
                Ok(Some(info)) if p.partition >= 0 && p.partition < info.info.partition_count => {
                    wanted.push(Wanted {
                        topic: resp.responses.len(),
                        partition: out.partitions.len(),
                        topic_id: info.info.id,
                        index: p.partition,
                        offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes.max(0) as usize,
                    });
                }
                Ok(_) => pd.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Err(e) => pd.error_code = metadata_error_code(e),
            }
            if pd.error_code != 0 {
                skeleton_error = true;
            }
            out.partitions.push(pd);
        }
        resp.responses.push(out);
    }

    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64)
        .min(shard.config.limits.fetch_wait_max);
    let deadline = Instant::now() + wait;
    let response_max_bytes = if req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        usize::MAX
    };
    let min_bytes = req.min_bytes.max(0) as usize;
    let chunks_max = shard.config.limits.fetch_chunks_per_partition_max;

    loop {
        let plan_in: Vec<_> = wanted
            .iter()
            .map(|w| (w.topic_id, w.index, w.offset, w.max_bytes as u64))
            .collect();
        let plans = shard
            .metadata
            .call("fetch_chunks", move |b| {
                Ok(plan_in
                    .into_iter()
                    .map(|(id, p, off, budget)| {
                        b.fetch_chunks(id, p, off, budget.max(1), chunks_max)
                    })
                    .collect::<Vec<Result<FetchChunks, MetadataError>>>())
            })
            .await;
        let plans = match plans {
            Ok(p) => p,
            Err(e) => {
                for w in &wanted {
                    resp.responses[w.topic].partitions[w.partition].error_code =
                        metadata_error_code(&e);
                }
                return resp;
            }
        };

        let mut total = 0usize;
        let mut any_error = skeleton_error;
        let mut seen_hw = Vec::with_capacity(wanted.len());
        for (w, plan) in wanted.iter().zip(plans) {
            let pd = &mut resp.responses[w.topic].partitions[w.partition];
            let plan = match plan {
                Ok(p) => p,
                Err(e) => {
                    pd.error_code = metadata_error_code(&e);
                    any_error = true;
                    seen_hw.push(i64::MAX);
                    continue;
                }
            };
            let offsets = plan.offsets;
            seen_hw.push(offsets.high_watermark);
            pd.high_watermark = offsets.high_watermark;
            pd.last_stable_offset = offsets.high_watermark;
            pd.log_start_offset = offsets.log_start_offset;
            if w.offset < offsets.log_start_offset || w.offset > offsets.high_watermark {
                pd.error_code = ResponseError::OffsetOutOfRange.code();
                any_error = true;
                continue;
            }
            let budget = w.max_bytes.min(response_max_bytes.saturating_sub(total));
            let mut out = BytesMut::new();
            let mut added = 0usize;
            for chunk in &plan.chunks {
                let bytes = match read_chunk(&*shard.store, &shard.cache, chunk).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(key = chunk.object_key, error = %e, "chunk read failed; not served");
                        pd.error_code = ResponseError::KafkaStorageError.code();
                        any_error = true;
                        break;
                    }
                };
                let min_one = total == 0 && added == 0;
                match assemble(
                    &bytes,
                    chunk.base_offset,
                    &chunk.skipped_batches,
                    w.offset,
                    budget.saturating_sub(added),
                    min_one,
                    &mut out,
                ) {
                    Ok((n, stopped)) => {
                        added += n;
                        if stopped {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!(key = chunk.object_key, error = %e, "malformed batch in chunk; not served");
                        pd.error_code = ResponseError::KafkaStorageError.code();
                        any_error = true;
                        break;
                    }
                }
            }
            total += added;
            pd.records = Some(out.freeze());
        }

        let now = Instant::now();
        if total >= min_bytes
            || wanted.is_empty()
            || any_error
            || now >= deadline
            || shard.shutdown.is_triggered()
        {
            return resp;
        }
        // Long-poll: sleep until a commit moves one of our partitions, or the deadline.
        metrics::record(|m| m.long_poll_waits += 1);
        let mut slept = false;
        loop {
            let listener = shard.watermarks.listen();
            let moved = wanted.iter().zip(&seen_hw).any(|(w, hw)| {
                shard
                    .watermarks
                    .get(w.topic_id, w.index)
                    .is_some_and(|known| known > *hw)
            });
            if moved || shard.shutdown.is_triggered() {
                if slept {
                    metrics::record(|m| m.long_poll_wakeups += 1);
                }
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                metrics::record(|m| m.long_poll_timeouts += 1);
                return resp;
            }
            let timer = glommio::timer::sleep(deadline - now);
            if let Either::Right(_) = select(pin!(listener), pin!(timer)).await {
                metrics::record(|m| m.long_poll_timeouts += 1);
                return resp;
            }
            slept = true;
        }
    }
}
