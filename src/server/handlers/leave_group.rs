//! LeaveGroup (key 13), v0–v5: one member (v0–v2) or a batch of members, possibly static ones
//! by instance id (v3+), leave the group, which then rebalances.

use std::rc::Rc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::ResponseError;

use crate::groups::{GroupOp, GroupReply};
use crate::server::dispatch::RequestContext;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let mut resp = LeaveGroupResponse::default();
    if req.group_id.is_empty() {
        resp.error_code = ResponseError::InvalidGroupId.code();
        return resp;
    }
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match shard
        .groups
        .call(req.group_id.as_str(), GroupOp::Leave(leaving))
        .await
    {
        GroupReply::Codes(codes) => {
            if version >= 3 {
                resp.members = req
                    .members
                    .iter()
                    .zip(&codes)
                    .map(|(m, &code)| {
                        MemberResponse::default()
                            .with_member_id(m.member_id.clone())
                            .with_group_instance_id(m.group_instance_id.clone())
                            .with_error_code(code)
                    })
                    .collect();
            } else {
                resp.error_code = codes.first().copied().unwrap_or_default();
            }
        }
        GroupReply::Code(code) => resp.error_code = code,
        other => unreachable!("leave answered with {other:?}"),
    }
    resp
}
