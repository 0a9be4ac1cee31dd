//! OffsetFetch (key 9), v1–v8, including the multi-group form (v8). Committed offsets are read
//! straight from the metadata store: they need no group membership check. A partition with no
//! committed offset answers -1.

use std::rc::Rc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name};
use crate::metadata::CommittedOffset;
use crate::server::dispatch::RequestContext;
use crate::server::errors::metadata_error_code;
use crate::shard::Shard;

/// One committed offset to answer: (topic, partition, offset, leader epoch, metadata).
type Row = (String, i32, i64, i32, String);

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if version >= 8 {
        for g in &req.groups {
            let wanted = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .flat_map(|t| {
                        t.partition_indexes
                            .iter()
                            .map(move |p| (t.name.to_string(), *p))
                    })
                    .collect::<Vec<_>>()
            });
            let mut out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            match fetch(shard, g.group_id.as_str(), wanted).await {
                Ok(rows) => {
                    out.topics = group_by_topic(rows)
                        .into_iter()
                        .map(|(name, parts)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|(p, o, e, m)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(o)
                                                .with_committed_leader_epoch(e)
                                                .with_metadata(Some(str_bytes(&m)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                }
                Err(code) => out.error_code = code,
            }
            resp.groups.push(out);
        }
        return resp;
    }
    let wanted = req.topics.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(move |p| (t.name.to_string(), *p))
            })
            .collect::<Vec<_>>()
    });
    match fetch(shard, req.group_id.as_str(), wanted).await {
        Ok(rows) => {
            resp.topics = group_by_topic(rows)
                .into_iter()
                .map(|(name, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, o, e, m)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(e)
                                        .with_metadata(Some(str_bytes(&m)))
                                })
                                .collect(),
                        )
                })
                .collect();
        }
        Err(code) if version >= 2 => resp.error_code = code,
        Err(_) => {}
    }
    resp
}

/// Committed offsets for the wanted partitions (every requested one answers, -1 when none was
/// committed), or for all of the group's partitions.
async fn fetch(
    shard: &Rc<Shard>,
    group_id: &str,
    wanted: Option<Vec<(String, i32)>>,
) -> Result<Vec<Row>, i16> {
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId.code());
    }
    let id = group_id.to_string();
    let query = wanted.clone();
    let committed: Vec<CommittedOffset> = shard
        .metadata
        .call("fetch_offsets", move |b| {
            b.fetch_offsets(&id, query.as_deref())
        })
        .await
        .map_err(|e| metadata_error_code(&e))?;
    let row = |c: &CommittedOffset| {
        (
            c.topic.clone(),
            c.partition,
            c.offset,
            c.leader_epoch,
            c.metadata.clone().unwrap_or_default(),
        )
    };
    Ok(match wanted {
        None => committed.iter().map(row).collect(),
        Some(list) => list
            .into_iter()
            .map(|(topic, partition)| {
                committed
                    .iter()
                    .find(|c| c.topic == topic && c.partition == partition)
                    .map(row)
                    .unwrap_or((topic, partition, -1, -1, String::new()))
            })
            .collect(),
    })
}

/// (topic, [(partition, offset, leader epoch, metadata)]) in first-seen order.
#[allow(clippy::type_complexity)]
fn group_by_topic(rows: Vec<Row>) -> Vec<(TopicName, Vec<(i32, i64, i32, String)>)> {
    let mut out: Vec<(String, Vec<(i32, i64, i32, String)>)> = Vec::new();
    for (topic, p, o, e, m) in rows {
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, parts)) => parts.push((p, o, e, m)),
            None => out.push((topic, vec![(p, o, e, m)])),
        }
    }
    out.into_iter().map(|(t, p)| (topic_name(&t), p)).collect()
}
