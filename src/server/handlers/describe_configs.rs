//! DescribeConfigs (key 32), v1–v4: real topic values (overrides and the defaults they fall
//! back to) and this agent's broker-level values.

use std::rc::Rc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::server::dispatch::RequestContext;
use crate::server::errors::metadata_error_code;
use crate::shard::Shard;
use crate::topics::{effective_topic_configs, ConfigSource, ConfigType, ConfigValue};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    for r in req.resources {
        let name = r.resource_name.as_str().to_string();
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let values = match r.resource_type {
            RESOURCE_TOPIC => match shard.topics.get_fresh(&name, false).await {
                Ok(Some(t)) => Ok(effective_topic_configs(&t.info.configs, &shard.config)),
                Ok(None) => Err((
                    ResponseError::UnknownTopicOrPartition.code(),
                    format!("Topic '{name}' does not exist"),
                )),
                Err(e) => Err((metadata_error_code(&e), e.to_string())),
            },
            RESOURCE_BROKER if name.is_empty() || name == shard.config.node_id.to_string() => {
                Ok(broker_configs(shard))
            }
            RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => Err((
                ResponseError::InvalidRequest.code(),
                format!("Unexpected broker id, expected {}", shard.config.node_id),
            )),
            other => Err((
                ResponseError::InvalidRequest.code(),
                format!("Unsupported resource type {other}"),
            )),
        };
        match values {
            Ok(values) => {
                let keys = r.configuration_keys.as_ref();
                result.configs = values
                    .into_iter()
                    .filter(|c| keys.is_none_or(|k| k.iter().any(|k| k.as_str() == c.name)))
                    .map(|c| {
                        let mut e = DescribeConfigsResourceResult::default()
                            .with_name(str_bytes(c.name))
                            .with_value(Some(str_bytes(&c.value)))
                            .with_read_only(r.resource_type == RESOURCE_BROKER)
                            .with_config_source(c.source as i8)
                            .with_is_sensitive(false);
                        if version >= 3 {
                            e.config_type = c.ty as i8;
                        }
                        e
                    })
                    .collect();
            }
            Err((code, msg)) => {
                result.error_code = code;
                result.error_message = Some(str_bytes(&msg));
            }
        }
        resp.results.push(result);
    }
    resp
}

fn broker_configs(shard: &Shard) -> Vec<ConfigValue> {
    let c = &shard.config;
    let listener = format!("PLAINTEXT://{}", c.kafka_addr);
    let advertised = format!("PLAINTEXT://{}:{}", c.advertise_host, c.advertise_port);
    let entry = |name: &'static str, value: String, ty: ConfigType| ConfigValue {
        name,
        value,
        source: ConfigSource::Agent,
        ty,
    };
    vec![
        entry("advertised.listeners", advertised, ConfigType::String),
        entry(
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            ConfigType::Boolean,
        ),
        entry("broker.id", c.node_id.to_string(), ConfigType::Int),
        entry("listeners", listener, ConfigType::String),
        entry(
            "log.retention.ms",
            c.default_retention_ms.to_string(),
            ConfigType::Long,
        ),
        entry(
            "message.max.bytes",
            c.limits.message_bytes_max_default.to_string(),
            ConfigType::Int,
        ),
        entry(
            "num.partitions",
            c.default_partitions.to_string(),
            ConfigType::Int,
        ),
        entry(
            "socket.request.max.bytes",
            c.limits.request_bytes_max.to_string(),
            ConfigType::Int,
        ),
    ]
}
