//! Metadata (key 3), v0–v12. With one agent, every partition is led by this agent. Unknown
//! topics are created when both the client and the agent allow it. The answer is written by
//! `protocol::metadata_writer`, without the generic codec.

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::MetadataRequest;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::protocol::metadata_writer::{self, Broker, MetadataAnswer, TopicAnswer};
use crate::protocol::topic_name;
use crate::server::dispatch::RequestContext;
use crate::server::errors::metadata_error_code;
use crate::shard::Shard;
use crate::topics::Topic;

/// One requested topic, found or not.
enum Found {
    Topic(Rc<Topic>),
    Error {
        code: i16,
        name: Option<String>,
        id: Uuid,
    },
}

/// Answers with the framed response.
pub async fn handle(
    shard: &Rc<Shard>,
    ctx: &RequestContext,
    req: MetadataRequest,
    version: i16,
) -> Bytes {
    let config = &shard.config;
    // v0 has no null topic list: an empty one means every topic.
    let wanted = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let auto_create = config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);

    let mut found = Vec::new();
    match wanted {
        None => match shard
            .metadata
            .call("list_topics", |b| b.list_topics())
            .await
        {
            Ok(all) => found.extend(
                all.into_iter()
                    .map(|i| Found::Topic(shard.topics.refresh(i))),
            ),
            Err(e) => {
                // Metadata v0–v12 has no top-level error: answer with no topics, so the
                // client keeps its view and asks again.
                tracing::warn!(error = %e, "listing topics failed");
            }
        },
        Some(list) => {
            for t in list {
                found.push(match (&t.name, t.topic_id) {
                    (Some(name), _) => by_name(shard, name.0.as_str(), auto_create).await,
                    (None, id) => by_id(shard, id).await,
                });
            }
        }
    }

    let topics: Vec<TopicAnswer> = found
        .iter()
        .map(|f| match f {
            Found::Topic(t) => TopicAnswer {
                error_code: 0,
                name: Some(&t.info.name),
                topic_id: t.info.id,
                partitions: t.info.partition_count,
            },
            Found::Error { code, name, id } => TopicAnswer {
                error_code: *code,
                name: name.as_deref(),
                topic_id: *id,
                partitions: 0,
            },
        })
        .collect();
    let brokers = [Broker {
        node_id: config.node_id,
        host: &config.advertise_host,
        port: i32::from(config.advertise_port),
        rack: None,
    }];
    let mut out = shard.answer_buf.borrow_mut();
    metadata_writer::write(
        &mut out,
        &MetadataAnswer {
            correlation_id: ctx.header.correlation_id,
            version,
            brokers: &brokers,
            cluster_id: Some(&shard.cluster_id),
            controller_id: config.node_id,
            leaders: &[config.node_id],
            topics: &topics,
        },
    );
    out.split().freeze()
}

async fn by_name(shard: &Rc<Shard>, name: &str, auto_create: bool) -> Found {
    let error = |code: i16| Found::Error {
        code,
        name: Some(name.to_string()),
        id: Uuid::nil(),
    };
    if topic_name::validate(name).is_err() {
        return error(ResponseError::InvalidTopicException.code());
    }
    // Always from the store: a client asking for metadata wants what is current.
    match shard.topics.get_fresh(name, auto_create).await {
        Ok(Some(topic)) => Found::Topic(topic),
        Ok(None) => error(ResponseError::UnknownTopicOrPartition.code()),
        Err(e) => error(metadata_error_code(&e)),
    }
}

async fn by_id(shard: &Rc<Shard>, id: Uuid) -> Found {
    let error = |code: i16| Found::Error {
        code,
        name: None,
        id,
    };
    match shard.topics.get_by_id(id).await {
        Ok(Some(topic)) => Found::Topic(topic),
        Ok(None) => error(ResponseError::UnknownTopicId.code()),
        Err(e) => error(metadata_error_code(&e)),
    }
}
