//! CreateTopics (key 19), v2–v7. Partition count -1 takes the agent default; any replication
//! factor is accepted, since object storage does the replicating. Config overrides are checked
//! against the known topic configs.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::protocol::topic_name;
use crate::server::dispatch::RequestContext;
use crate::server::errors::metadata_error_code;
use crate::shard::Shard;
use crate::topics::{effective_topic_configs, validate_topic_config};

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    let limits = &shard.config.limits;
    // A name given twice is refused in every occurrence, and not created, as Kafka does.
    let mut counts = std::collections::HashMap::new();
    for t in &req.topics {
        *counts.entry(t.name.0.as_str().to_string()).or_insert(0) += 1;
    }
    for t in req.topics {
        let name = t.name.0.as_str().to_string();
        let mut result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let fail = |mut r: CreatableTopicResult, code: ResponseError, msg: String| {
            r.error_code = code.code();
            r.error_message = Some(str_bytes(&msg));
            r
        };
        if counts[&name] > 1 {
            resp.topics.push(fail(
                result,
                ResponseError::InvalidRequest,
                format!("Duplicate topic name {name} in the request"),
            ));
            continue;
        }
        if let Err(msg) = topic_name::validate(&name) {
            resp.topics
                .push(fail(result, ResponseError::InvalidTopicException, msg));
            continue;
        }
        let partitions = if !t.assignments.is_empty() {
            t.assignments.len() as i32
        } else if t.num_partitions == -1 {
            shard.config.default_partitions
        } else {
            t.num_partitions
        };
        if partitions < 1 || partitions > limits.topic_partitions_max {
            resp.topics.push(fail(
                result,
                ResponseError::InvalidPartitions,
                format!(
                    "Number of partitions must be between 1 and {}, got {partitions}",
                    limits.topic_partitions_max
                ),
            ));
            continue;
        }
        if t.replication_factor == 0 || t.replication_factor < -1 {
            resp.topics.push(fail(
                result,
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default".into(),
            ));
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut bad_config = None;
        for c in &t.configs {
            let key = c.name.as_str();
            let Some(value) = c.value.as_ref().map(|v| v.as_str()) else {
                continue;
            };
            if let Err(msg) = validate_topic_config(key, value) {
                bad_config = Some(msg);
                break;
            }
            configs.insert(key.to_string(), value.to_string());
        }
        if let Some(msg) = bad_config {
            resp.topics
                .push(fail(result, ResponseError::InvalidConfig, msg));
            continue;
        }
        let replication_factor = if t.replication_factor == -1 {
            1
        } else {
            t.replication_factor
        };

        let info = if req.validate_only {
            let owned = name.clone();
            match shard
                .metadata
                .call("topic_by_name", move |b| b.topic_by_name(&owned))
                .await
            {
                Ok(Some(_)) => Err(crate::metadata::MetadataError::TopicExists(name.clone())),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        } else {
            let owned = name.clone();
            let cfg = configs.clone();
            shard
                .metadata
                .call("create_topic", move |b| {
                    b.create_topic(&owned, partitions, &cfg)
                })
                .await
                .map(Some)
        };
        match info {
            Ok(created) => {
                if let Some(info) = &created {
                    result.topic_id = info.id;
                    shard.topics.refresh(info.clone());
                    tracing::info!(topic = name, partitions, "created topic");
                }
                result.num_partitions = partitions;
                result.replication_factor = replication_factor;
                if version >= 5 {
                    result.configs = Some(
                        effective_topic_configs(&configs, &shard.config)
                            .into_iter()
                            .map(|c| {
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(c.name))
                                    .with_value(Some(str_bytes(&c.value)))
                                    .with_config_source(c.source as i8)
                                    .with_read_only(false)
                                    .with_is_sensitive(false)
                            })
                            .collect(),
                    );
                }
                resp.topics.push(result);
            }
            Err(e) => {
                let msg = e.to_string();
                let mut r = result;
                r.error_code = metadata_error_code(&e);
                r.error_message = Some(str_bytes(&msg));
                resp.topics.push(r);
            }
        }
    }
    resp
}
