//! CreatePartitions (key 37), v0–v3: raises a topic's partition count. New partitions start
//! empty at offset 0.

use std::rc::Rc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::metadata::MetadataError;
use crate::server::dispatch::RequestContext;
use crate::server::errors::metadata_error_code;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    let max = shard.config.limits.topic_partitions_max;
    for t in req.topics {
        let name = t.name.0.as_str().to_string();
        let mut result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if t.count > max {
            result.error_code = ResponseError::InvalidPartitions.code();
            result.error_message = Some(str_bytes(&format!(
                "Number of partitions {} exceeds the limit of {max}",
                t.count
            )));
            resp.results.push(result);
            continue;
        }
        let owned = name.clone();
        let count = t.count;
        let validate_only = req.validate_only;
        let outcome = shard
            .metadata
            .call("create_partitions", move |b| {
                if validate_only {
                    let topic = b
                        .topic_by_name(&owned)?
                        .ok_or(MetadataError::UnknownTopicOrPartition)?;
                    if count <= topic.partition_count {
                        return Err(MetadataError::InvalidPartitions(format!(
                            "Topic currently has {} partitions, which is higher than the requested {count}.",
                            topic.partition_count
                        )));
                    }
                    Ok(None)
                } else {
                    b.create_partitions(&owned, count).map(Some)
                }
            })
            .await;
        match outcome {
            Ok(Some(info)) => {
                shard.topics.refresh(info);
                tracing::info!(topic = name, partitions = count, "added partitions");
            }
            Ok(None) => {}
            Err(e) => {
                result.error_code = metadata_error_code(&e);
                if let MetadataError::InvalidPartitions(msg) = &e {
                    result.error_message = Some(str_bytes(msg));
                }
            }
        }
        resp.results.push(result);
    }
    resp
}
