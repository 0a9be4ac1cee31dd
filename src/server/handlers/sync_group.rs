//! SyncGroup (key 14), v0–v5: the leader's assignment is handed, unchanged, to every member.

use std::rc::Rc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::groups::group::SyncParams;
use crate::groups::{GroupOp, GroupReply};
use crate::server::dispatch::RequestContext;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let mut resp = SyncGroupResponse::default();
    if req.group_id.is_empty() {
        resp.error_code = ResponseError::InvalidGroupId.code();
        return resp;
    }
    let params = SyncParams {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        generation: req.generation_id,
        protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    match shard
        .groups
        .call(req.group_id.as_str(), GroupOp::Sync(params))
        .await
    {
        GroupReply::Sync(r) => {
            resp.error_code = r.error;
            resp.assignment = r.assignment;
            if version >= 5 {
                resp.protocol_type = r.protocol_type.map(|s| str_bytes(&s));
                resp.protocol_name = r.protocol_name.map(|s| str_bytes(&s));
            }
        }
        GroupReply::Code(code) => resp.error_code = code,
        other => unreachable!("sync answered with {other:?}"),
    }
    resp
}
