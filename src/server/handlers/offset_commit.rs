//! OffsetCommit (key 8), v2–v8. Members commit with their generation, checked by the group's
//! owner; generation -1 with no member id is a "simple" commit by a client that only stores
//! offsets, allowed while the group has no members. Offsets go to the metadata store.

use std::rc::Rc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::ResponseError;

use crate::groups::{GroupOp, GroupReply};
use crate::metadata::CommittedOffset;
use crate::produce::now_ms;
use crate::server::dispatch::RequestContext;
use crate::shard::Shard;

/// Longest offset metadata string accepted (Kafka's offset.metadata.max.bytes).
const OFFSET_METADATA_BYTES_MAX: usize = 4096;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: OffsetCommitRequest,
    _version: i16,
) -> OffsetCommitResponse {
    let now = now_ms();
    let mut offsets = Vec::new();
    // Answers in request order, with each partition's code, or where its offset goes.
    let mut answers: Vec<OffsetCommitResponseTopic> = Vec::new();
    let group_error = if req.group_id.is_empty() {
        Some(ResponseError::InvalidGroupId.code())
    } else {
        None
    };
    for t in &req.topics {
        let wanted = t.partitions.iter().map(|p| p.partition_index);
        let known = shard
            .topics
            .get_partitions(t.name.as_str(), wanted, false)
            .await;
        let mut topic = OffsetCommitResponseTopic::default().with_name(t.name.clone());
        for p in &t.partitions {
            let code = match (&known, group_error) {
                (_, Some(code)) => code,
                (Ok(Some(info)), None)
                    if p.partition_index >= 0 && p.partition_index < info.info.partition_count =>
                {
                    if p.committed_metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > OFFSET_METADATA_BYTES_MAX)
                    {
                        ResponseError::OffsetMetadataTooLarge.code()
                    } else {
                        offsets.push(CommittedOffset {
                            topic: t.name.to_string(),
                            partition: p.partition_index,
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                            commit_time_ms: now,
                        });
                        -1 // filled in below
                    }
                }
                _ => ResponseError::UnknownTopicOrPartition.code(),
            };
            topic.partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        answers.push(topic);
    }
    if !offsets.is_empty() {
        let op = GroupOp::Commit {
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            generation: req.generation_id_or_member_epoch,
            offsets,
        };
        let code = match shard.groups.call(req.group_id.as_str(), op).await {
            GroupReply::Code(code) => code,
            other => unreachable!("commit answered with {other:?}"),
        };
        for p in answers.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            if p.error_code == -1 {
                p.error_code = code;
            }
        }
    }
    OffsetCommitResponse::default().with_topics(answers)
}
