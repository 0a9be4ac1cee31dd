//! OffsetDelete (key 47), v0: deletes a group's committed offsets for partitions of topics the
//! group is not subscribed to (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use std::rc::Rc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::ResponseError;

use crate::groups::{GroupOp, GroupReply};
use crate::server::dispatch::RequestContext;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let mut resp = OffsetDeleteResponse::default();
    if req.group_id.is_empty() {
        resp.error_code = ResponseError::InvalidGroupId.code();
        return resp;
    }
    let mut wanted = Vec::new();
    let mut skeleton = Vec::new();
    for t in &req.topics {
        let known = matches!(shard.topics.get(t.name.as_str(), false).await, Ok(Some(_)));
        let mut topic = OffsetDeleteResponseTopic::default().with_name(t.name.clone());
        for p in &t.partitions {
            let code = if known {
                wanted.push((t.name.to_string(), p.partition_index));
                -1
            } else {
                ResponseError::UnknownTopicOrPartition.code()
            };
            topic.partitions.push(
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        skeleton.push(topic);
    }
    match shard
        .groups
        .call(req.group_id.as_str(), GroupOp::DeleteOffsets(wanted))
        .await
    {
        GroupReply::Codes(codes) => {
            let mut codes = codes.into_iter();
            for p in skeleton.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                if p.error_code == -1 {
                    p.error_code = codes.next().unwrap_or_default();
                }
            }
            resp.topics = skeleton;
        }
        GroupReply::Code(code) => resp.error_code = code,
        other => unreachable!("offset delete answered with {other:?}"),
    }
    resp
}
