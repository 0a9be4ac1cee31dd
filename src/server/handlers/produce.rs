//! Produce (key 0), v3–v9. Each partition's batch is validated (framing, magic 2, CRC-32C,
//! record count, `max.message.bytes`); the valid ones go to the shard's producer together, so
//! the request is committed in one metadata transaction. The answer comes once the segment is
//! durable in object storage and committed. acks=0 gets no answer.

use std::rc::Rc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;

use crate::metrics;
use crate::produce::{Append, BatchResult, ProducerFields};
use crate::protocol::{record_batch, topic_name};
use crate::server::dispatch::Disconnect;
use crate::server::dispatch::RequestContext;
use crate::server::errors::{batch_error_code, metadata_error_code, produce_error_code};
use crate::shard::Shard;

fn partition(index: i32, code: ResponseError) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code.code())
        .with_base_offset(-1)
}

pub async fn handle(
    shard: &Rc<Shard>,
    ctx: &RequestContext,
    req: ProduceRequest,
    version: i16,
) -> Result<Option<ProduceResponse>, Disconnect> {
    // Everything up to the append runs in the connection's arrival order.
    let turn = ctx.append_turn.borrow_mut().take();
    if let Some(turn) = &turn {
        turn.wait().await;
    }
    let acks = req.acks;
    let mut resp = ProduceResponse::default();
    let valid_acks = matches!(acks, -1..=1);

    // (topic index, partition index) of each append, in append order.
    let mut slots = Vec::new();
    let mut appends = Vec::new();
    for topic in req.topic_data {
        let name = topic.name.0.as_str().to_string();
        let mut out = TopicProduceResponse::default().with_name(topic.name.clone());
        let resolved = if !valid_acks {
            Err(ResponseError::InvalidRequiredAcks.code())
        } else if topic_name::validate(&name).is_err() {
            Err(ResponseError::InvalidTopicException.code())
        } else {
            let wanted = topic.partition_data.iter().map(|p| p.index);
            match shard
                .topics
                .get_partitions(&name, wanted, shard.config.auto_create_topics)
                .await
            {
                Ok(Some(t)) => Ok(t),
                Ok(None) => Err(ResponseError::UnknownTopicOrPartition.code()),
                Err(e) => Err(metadata_error_code(&e)),
            }
        };
        for p in topic.partition_data {
            let topic_meta = match &resolved {
                Ok(t) => t,
                Err(code) => {
                    out.partition_responses.push(
                        partition(p.index, ResponseError::UnknownTopicOrPartition)
                            .with_error_code(*code),
                    );
                    continue;
                }
            };
            if p.index < 0 || p.index >= topic_meta.info.partition_count {
                out.partition_responses
                    .push(partition(p.index, ResponseError::UnknownTopicOrPartition));
                continue;
            }
            let records = p.records.unwrap_or_default();
            let header = match record_batch::validate_produce_batch(&records) {
                Ok(h) => h,
                Err(e) => {
                    tracing::debug!(topic = name, partition = p.index, error = %e, "rejected batch");
                    out.partition_responses.push(
                        partition(p.index, ResponseError::CorruptMessage)
                            .with_error_code(batch_error_code(&e))
                            .with_error_message(Some(super::str_bytes(&e.to_string()))),
                    );
                    continue;
                }
            };
            // ZStandard came with Produce v7; older requests may not carry it.
            if header.compression() == 4 && version < 7 {
                out.partition_responses.push(partition(
                    p.index,
                    ResponseError::UnsupportedCompressionType,
                ));
                continue;
            }
            metrics::record(|m| m.produce_bytes += records.len() as u64);
            if records.len() > topic_meta.message_bytes_max {
                out.partition_responses
                    .push(partition(p.index, ResponseError::MessageTooLarge));
                continue;
            }
            slots.push((resp.responses.len(), out.partition_responses.len()));
            out.partition_responses
                .push(partition(p.index, ResponseError::UnknownServerError));
            appends.push(Append {
                topic_id: topic_meta.info.id,
                partition: p.index,
                batch: records,
                offset_count: header.offset_count(),
                max_timestamp_ms: header.max_timestamp_ms,
                producer: (header.producer_id >= 0).then_some(ProducerFields {
                    producer_id: header.producer_id,
                    producer_epoch: header.producer_epoch,
                    base_sequence: header.base_sequence,
                }),
            });
        }
        resp.responses.push(out);
    }

    let outcome = if appends.is_empty() {
        None
    } else {
        Some(shard.producer.enqueue(appends).await)
    };
    drop(turn);
    if let Some(outcome) = outcome {
        let outcome = match outcome {
            Ok(committed) => committed
                .await
                .unwrap_or(Err(crate::produce::ProduceError::ShuttingDown)),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(done) => {
                for (slot, result) in slots.iter().zip(done.batches) {
                    let topic = &mut resp.responses[slot.0];
                    let p = &mut topic.partition_responses[slot.1];
                    match result {
                        BatchResult::Offset { base, log_start } => {
                            p.error_code = 0;
                            p.base_offset = base;
                            p.log_start_offset = log_start;
                            // CreateTime topics answer -1, as Kafka does.
                            p.log_append_time_ms = -1;
                        }
                        BatchResult::PartitionGone => {
                            p.error_code = ResponseError::UnknownTopicOrPartition.code();
                            shard.topics.invalidate(topic.name.0.as_str());
                        }
                        BatchResult::OutOfOrderSequence => {
                            p.error_code = ResponseError::OutOfOrderSequenceNumber.code();
                        }
                        BatchResult::StaleEpoch => {
                            p.error_code = ResponseError::InvalidProducerEpoch.code();
                        }
                    }
                }
            }
            Err(e) => {
                let code = produce_error_code(&e);
                for slot in &slots {
                    resp.responses[slot.0].partition_responses[slot.1].error_code = code;
                }
            }
        }
    }
    for p in resp.responses.iter().flat_map(|t| &t.partition_responses) {
        metrics::error_code(ApiKey::Produce, p.error_code);
    }
    if acks != 0 {
        return Ok(Some(resp));
    }
    let failed = resp
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .map(|p| p.error_code)
        .find(|&c| c != 0);
    match failed {
        Some(code) => Err(Disconnect::UnacknowledgedProduceFailed(code)),
        None => Ok(None),
    }
}
