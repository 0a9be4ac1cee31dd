//! Heartbeat (key 12), v0–v4: keeps a member's session alive and tells it when to rejoin.

use std::rc::Rc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use kafka_protocol::ResponseError;

use crate::groups::{GroupOp, GroupReply};
use crate::server::dispatch::RequestContext;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let mut resp = HeartbeatResponse::default();
    if req.group_id.is_empty() {
        resp.error_code = ResponseError::InvalidGroupId.code();
        return resp;
    }
    let op = GroupOp::Heartbeat {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        generation: req.generation_id,
    };
    resp.error_code = match shard.groups.call(req.group_id.as_str(), op).await {
        GroupReply::Code(code) => code,
        other => unreachable!("heartbeat answered with {other:?}"),
    };
    resp
}
