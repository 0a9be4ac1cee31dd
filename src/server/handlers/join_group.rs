//! JoinGroup (key 11), v0–v9: the rebalance barrier of Kafka's classic group protocol, run by
//! the shard that owns the group (see `groups`). v4+ new members first get a member id with
//! MEMBER_ID_REQUIRED; static members (v5+ `group.instance.id`) keep their identity across
//! restarts.

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::groups::group::JoinParams;
use crate::groups::{GroupOp, GroupReply};
use crate::server::dispatch::RequestContext;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    ctx: &RequestContext,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let mut resp = JoinGroupResponse::default()
        .with_generation_id(-1)
        .with_member_id(req.member_id.clone());
    if req.group_id.is_empty() {
        resp.error_code = ResponseError::InvalidGroupId.code();
        return resp;
    }
    let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
    // v0 has no rebalance timeout: Kafka uses the session timeout.
    let rebalance = if version >= 1 {
        Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64)
    } else {
        session
    };
    let params = JoinParams {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: ctx
            .header
            .client_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let result = match shard
        .groups
        .call(req.group_id.as_str(), GroupOp::Join(params))
        .await
    {
        GroupReply::Join(r) => r,
        GroupReply::Code(code) => {
            resp.error_code = code;
            return resp;
        }
        other => unreachable!("join answered with {other:?}"),
    };
    resp.error_code = result.error;
    resp.generation_id = result.generation;
    // Before v7 the protocol name is not nullable: an empty one stands for "none".
    resp.protocol_name = match (result.protocol_name, version >= 7) {
        (Some(p), _) => Some(str_bytes(&p)),
        (None, true) => None,
        (None, false) => Some(str_bytes("")),
    };
    if version >= 7 {
        resp.protocol_type = result.protocol_type.map(|t| str_bytes(&t));
    }
    resp.leader = str_bytes(&result.leader);
    resp.member_id = str_bytes(&result.member_id);
    resp.members = result
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_group_instance_id(if version >= 5 {
                    m.instance_id.map(|i| str_bytes(&i))
                } else {
                    None
                })
                .with_metadata(m.metadata)
        })
        .collect();
    resp
}
