//! DeleteGroups (key 42), v0–v2: removes empty groups with their committed offsets.

use std::rc::Rc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use kafka_protocol::ResponseError;

use crate::groups::{GroupOp, GroupReply};
use crate::server::dispatch::RequestContext;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let mut resp = DeleteGroupsResponse::default();
    for group_id in req.groups_names {
        let code = if group_id.is_empty() {
            ResponseError::InvalidGroupId.code()
        } else {
            match shard.groups.call(group_id.as_str(), GroupOp::Delete).await {
                GroupReply::Code(code) => code,
                other => unreachable!("delete answered with {other:?}"),
            }
        };
        if code == 0 {
            tracing::info!(group = group_id.as_str(), "deleted group");
        }
        resp.results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(code),
        );
    }
    resp
}
