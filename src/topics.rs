//! A shard's view of topics: a short-lived cache in front of the metadata store, auto-creation,
//! and the effective topic configuration (overrides merged with defaults).
//!
//! Owned by one shard. The metadata store stays the source of truth: entries expire after
//! `topic_cache_ttl`, and a commit that finds a topic gone invalidates it at once.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Instant;

use uuid::Uuid;

use crate::config::AgentConfig;
use crate::metadata::{MetadataClient, MetadataError, TopicInfo};

/// Where a config value comes from, as DescribeConfigs reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (Kafka's DYNAMIC_TOPIC_CONFIG, 1).
    Topic = 1,
    /// Set by an agent flag (Kafka's STATIC_BROKER_CONFIG, 4).
    Agent = 4,
    /// Built-in default (Kafka's DEFAULT_CONFIG, 5).
    Default = 5,
}

/// Kafka's config type codes for DescribeConfigs v3+.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Topic configs weft accepts, with their type. Unknown names are rejected with INVALID_CONFIG,
/// as Kafka does.
pub const TOPIC_CONFIGS: &[(&str, ConfigType)] = &[
    ("cleanup.policy", ConfigType::List),
    ("compression.type", ConfigType::String),
    ("delete.retention.ms", ConfigType::Long),
    ("file.delete.delay.ms", ConfigType::Long),
    ("flush.messages", ConfigType::Long),
    ("flush.ms", ConfigType::Long),
    ("index.interval.bytes", ConfigType::Int),
    ("max.compaction.lag.ms", ConfigType::Long),
    ("max.message.bytes", ConfigType::Int),
    ("message.timestamp.type", ConfigType::String),
    ("min.cleanable.dirty.ratio", ConfigType::Double),
    ("min.compaction.lag.ms", ConfigType::Long),
    ("min.insync.replicas", ConfigType::Int),
    ("preallocate", ConfigType::Boolean),
    ("retention.bytes", ConfigType::Long),
    ("retention.ms", ConfigType::Long),
    ("segment.bytes", ConfigType::Int),
    ("segment.ms", ConfigType::Long),
    ("unclean.leader.election.enable", ConfigType::Boolean),
];

/// Checks a topic config override: known name, value of the right type.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    let Some((_, ty)) = TOPIC_CONFIGS.iter().find(|(n, _)| *n == name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let ok = match ty {
        ConfigType::Int => value.parse::<i32>().is_ok(),
        ConfigType::Long => value.parse::<i64>().is_ok(),
        ConfigType::Double => value.parse::<f64>().is_ok(),
        ConfigType::Boolean => value == "true" || value == "false",
        ConfigType::String | ConfigType::List => true,
    };
    let ok = ok
        && match name {
            "cleanup.policy" => value
                .split(',')
                .all(|p| matches!(p.trim(), "delete" | "compact")),
            "message.timestamp.type" => matches!(value, "CreateTime" | "LogAppendTime"),
            "compression.type" => matches!(
                value,
                "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd"
            ),
            "max.message.bytes" => value.parse::<i32>().is_ok_and(|v| v > 0),
            _ => true,
        };
    if ok {
        Ok(())
    } else {
        Err(format!("Invalid value {value} for configuration {name}"))
    }
}

/// One effective topic config value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigValue {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
    pub ty: ConfigType,
}

/// Every topic config with its effective value: the topic's override, else the agent's value.
pub fn effective_topic_configs(
    overrides: &BTreeMap<String, String>,
    config: &AgentConfig,
) -> Vec<ConfigValue> {
    TOPIC_CONFIGS
        .iter()
        .map(|&(name, ty)| {
            let (default, default_source) = topic_config_default(name, config);
            match overrides.get(name) {
                Some(v) => ConfigValue {
                    name,
                    value: v.clone(),
                    source: ConfigSource::Topic,
                    ty,
                },
                None => ConfigValue {
                    name,
                    value: default,
                    source: default_source,
                    ty,
                },
            }
        })
        .collect()
}

/// The agent-wide value of a topic config and where it comes from.
pub fn topic_config_default(name: &str, config: &AgentConfig) -> (String, ConfigSource) {
    let builtin = |v: &str| (v.to_string(), ConfigSource::Default);
    match name {
        "retention.ms" => (config.default_retention_ms.to_string(), ConfigSource::Agent),
        "max.message.bytes" => builtin(&config.limits.message_bytes_max_default.to_string()),
        "cleanup.policy" => builtin("delete"),
        "compression.type" => builtin("producer"),
        "delete.retention.ms" => builtin("86400000"),
        "file.delete.delay.ms" => builtin("60000"),
        "flush.messages" | "flush.ms" | "max.compaction.lag.ms" => builtin(&i64::MAX.to_string()),
        "index.interval.bytes" => builtin("4096"),
        "message.timestamp.type" => builtin("CreateTime"),
        "min.cleanable.dirty.ratio" => builtin("0.5"),
        "min.compaction.lag.ms" => builtin("0"),
        "min.insync.replicas" => builtin("1"),
        "preallocate" | "unclean.leader.election.enable" => builtin("false"),
        "retention.bytes" => builtin("-1"),
        "segment.bytes" => builtin("1073741824"),
        "segment.ms" => builtin("604800000"),
        _ => builtin(""),
    }
}

/// A topic as a shard uses it on the data path.
#[derive(Debug)]
pub struct Topic {
    pub info: TopicInfo,
    /// Effective `max.message.bytes`.
    pub message_bytes_max: usize,
}

struct Entry {
    topic: Rc<Topic>,
    fetched_at: Instant,
}

/// The shard's topic cache.
pub struct TopicCache {
    by_name: RefCell<HashMap<String, Entry>>,
    config: Rc<AgentConfig>,
    metadata: MetadataClient,
}

impl TopicCache {
    pub fn new(config: Rc<AgentConfig>, metadata: MetadataClient) -> TopicCache {
        TopicCache {
            by_name: RefCell::new(HashMap::new()),
            config,
            metadata,
        }
    }

    fn wrap(&self, info: TopicInfo) -> Rc<Topic> {
        let message_bytes_max = info
            .configs
            .get("max.message.bytes")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(self.config.limits.message_bytes_max_default);
        Rc::new(Topic {
            info,
            message_bytes_max,
        })
    }

    fn remember(&self, info: TopicInfo) -> Rc<Topic> {
        let topic = self.wrap(info);
        self.by_name.borrow_mut().insert(
            topic.info.name.clone(),
            Entry {
                topic: topic.clone(),
                fetched_at: Instant::now(),
            },
        );
        topic
    }

    /// Looks a topic up by name, creating it when `auto_create` is set and it does not exist.
    pub async fn get(
        &self,
        name: &str,
        auto_create: bool,
    ) -> Result<Option<Rc<Topic>>, MetadataError> {
        let now = Instant::now();
        if let Some(e) = self.by_name.borrow().get(name) {
            if now.duration_since(e.fetched_at) < self.config.limits.topic_cache_ttl {
                return Ok(Some(e.topic.clone()));
            }
        }
        self.get_fresh(name, auto_create).await
    }

    /// Like [`TopicCache::get`], but a cached copy that does not have every one of
    /// `partitions` yet is refreshed first: partitions added on another shard or agent are seen
    /// at once.
    pub async fn get_partitions(
        &self,
        name: &str,
        partitions: impl IntoIterator<Item = i32>,
        auto_create: bool,
    ) -> Result<Option<Rc<Topic>>, MetadataError> {
        let partition = partitions.into_iter().max().unwrap_or(0);
        match self.get(name, auto_create).await? {
            Some(t) if partition >= t.info.partition_count => self.get_fresh(name, false).await,
            other => Ok(other),
        }
    }

    /// Looks a topic up in the metadata store, bypassing the cache.
    pub async fn get_fresh(
        &self,
        name: &str,
        auto_create: bool,
    ) -> Result<Option<Rc<Topic>>, MetadataError> {
        let owned = name.to_string();
        let found = self
            .metadata
            .call("topic_by_name", move |b| b.topic_by_name(&owned))
            .await?;
        match found {
            Some(info) => Ok(Some(self.remember(info))),
            None if auto_create && crate::protocol::topic_name::validate(name).is_ok() => {
                Ok(Some(self.create(name).await?))
            }
            None => {
                self.by_name.borrow_mut().remove(name);
                Ok(None)
            }
        }
    }

    /// Auto-creates a topic with the agent's defaults; a concurrent creation is not an error.
    async fn create(&self, name: &str) -> Result<Rc<Topic>, MetadataError> {
        let owned = name.to_string();
        let partitions = self.config.default_partitions;
        let created = self
            .metadata
            .call("create_topic", move |b| {
                match b.create_topic(&owned, partitions, &BTreeMap::new()) {
                    Err(MetadataError::TopicExists(_)) => b
                        .topic_by_name(&owned)?
                        .ok_or(MetadataError::UnknownTopicOrPartition),
                    other => other,
                }
            })
            .await?;
        tracing::info!(topic = name, partitions, "auto-created topic");
        Ok(self.remember(created))
    }

    /// Looks a topic up by id (Metadata and DeleteTopics by id).
    pub async fn get_by_id(&self, id: Uuid) -> Result<Option<Rc<Topic>>, MetadataError> {
        let found = self
            .metadata
            .call("topic_by_id", move |b| b.topic_by_id(id))
            .await?;
        Ok(found.map(|info| self.remember(info)))
    }

    /// Forgets a topic, so that the next lookup asks the metadata store.
    pub fn invalidate(&self, name: &str) {
        self.by_name.borrow_mut().remove(name);
    }

    /// Replaces the cache entry with a fresh copy (after create or alter on this shard).
    pub fn refresh(&self, info: TopicInfo) -> Rc<Topic> {
        self.remember(info)
    }
}
