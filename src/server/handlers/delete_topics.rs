//! DeleteTopics (key 20), v1–v6, by name or (v6) by topic id. The topic's index goes at once;
//! its segment objects are left to the background cleaner.

use std::rc::Rc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{str_bytes, topic_name};
use crate::metadata::MetadataError;
use crate::server::dispatch::RequestContext;
use crate::server::errors::metadata_error_code;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: DeleteTopicsRequest,
    _version: i16,
) -> DeleteTopicsResponse {
    let mut resp = DeleteTopicsResponse::default();
    let targets: Vec<(Option<String>, Uuid)> = if !req.topics.is_empty() {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.as_str().to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.as_str().to_string()), Uuid::nil()))
            .collect()
    };
    for (name, id) in targets {
        let mut result = DeletableTopicResult::default().with_topic_id(id);
        let name = match name {
            Some(n) => Some(n),
            None => match shard.topics.get_by_id(id).await {
                Ok(Some(t)) => Some(t.info.name.clone()),
                Ok(None) => {
                    result.error_code = ResponseError::UnknownTopicId.code();
                    resp.responses.push(result);
                    continue;
                }
                Err(e) => {
                    result.error_code = metadata_error_code(&e);
                    resp.responses.push(result);
                    continue;
                }
            },
        };
        let name = name.expect("resolved above");
        result.name = Some(topic_name(&name));
        let owned = name.clone();
        match shard
            .metadata
            .call("delete_topic", move |b| b.delete_topic(&owned))
            .await
        {
            Ok(info) => {
                result.topic_id = info.id;
                tracing::info!(topic = name, "deleted topic");
            }
            Err(e) => {
                result.error_code = metadata_error_code(&e);
                if e != MetadataError::UnknownTopicOrPartition {
                    result.error_message = Some(str_bytes(&e.to_string()));
                }
            }
        }
        shard.topics.invalidate(&name);
        resp.responses.push(result);
    }
    resp
}
