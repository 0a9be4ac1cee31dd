//! Metadata (key 3), v0–v12. With one agent, every partition is led by this agent. Unknown
//! topics are created when both the client and the agent allow it.

use std::rc::Rc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{str_bytes, topic_name};
use crate::protocol::topic_name;
use crate::server::dispatch::RequestContext;
use crate::server::errors::metadata_error_code;
use crate::shard::Shard;
use crate::topics::Topic;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let config = &shard.config;
    let node = BrokerId(config.node_id);
    let mut resp = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(str_bytes(&config.advertise_host))
            .with_port(i32::from(config.advertise_port))])
        .with_cluster_id(Some(str_bytes(&shard.cluster_id)))
        .with_controller_id(node);

    // v0 has no null topic list: an empty one means every topic.
    let wanted = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let auto_create = config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);

    match wanted {
        None => match shard
            .metadata
            .call("list_topics", |b| b.list_topics())
            .await
        {
            Ok(all) => {
                for info in all {
                    let topic = shard.topics.refresh(info);
                    resp.topics.push(describe(&topic, node));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing topics failed");
                resp.error_code = metadata_error_code(&e);
            }
        },
        Some(list) => {
            for t in list {
                let entry = match (&t.name, t.topic_id) {
                    (Some(name), _) => by_name(shard, name.0.as_str(), auto_create).await,
                    (None, id) => by_id(shard, id).await,
                };
                resp.topics.push(entry);
            }
        }
    }
    resp
}

async fn by_name(shard: &Rc<Shard>, name: &str, auto_create: bool) -> MetadataResponseTopic {
    let error = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(topic_name(name)))
            .with_error_code(code.code())
    };
    if topic_name::validate(name).is_err() {
        return error(ResponseError::InvalidTopicException);
    }
    // Always from the store: a client asking for metadata wants what is current.
    match shard.topics.get_fresh(name, auto_create).await {
        Ok(Some(topic)) => describe(&topic, BrokerId(shard.config.node_id)),
        Ok(None) => error(ResponseError::UnknownTopicOrPartition),
        Err(e) => MetadataResponseTopic::default()
            .with_name(Some(topic_name(name)))
            .with_error_code(metadata_error_code(&e)),
    }
}

async fn by_id(shard: &Rc<Shard>, id: Uuid) -> MetadataResponseTopic {
    match shard.topics.get_by_id(id).await {
        Ok(Some(topic)) => describe(&topic, BrokerId(shard.config.node_id)),
        Ok(None) => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ResponseError::UnknownTopicId.code()),
        Err(e) => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(metadata_error_code(&e)),
    }
}

fn describe(topic: &Topic, node: BrokerId) -> MetadataResponseTopic {
    let partitions = (0..topic.info.partition_count)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.info.name)))
        .with_topic_id(topic.info.id)
        .with_partitions(partitions)
}
