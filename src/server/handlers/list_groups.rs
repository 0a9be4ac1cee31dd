//! ListGroups (key 16), v0–v5: every group with stored state or offsets, with its live state
//! from the shard that owns it, filtered by state (v4+) and type (v5+).

use std::rc::Rc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::groups::{GroupOp, GroupReply};
use crate::server::dispatch::RequestContext;
use crate::server::errors::metadata_error_code;
use crate::shard::Shard;

/// Every group here uses the classic protocol.
const GROUP_TYPE: &str = "classic";

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: ListGroupsRequest,
    _version: i16,
) -> ListGroupsResponse {
    let mut resp = ListGroupsResponse::default();
    let stored = match shard
        .metadata
        .call("list_groups", |b| b.list_groups())
        .await
    {
        Ok(g) => g,
        Err(e) => {
            resp.error_code = metadata_error_code(&e);
            return resp;
        }
    };
    let types: Vec<String> = req.types_filter.iter().map(|t| t.to_lowercase()).collect();
    if !types.is_empty() && !types.iter().any(|t| t == GROUP_TYPE) {
        return resp;
    }
    for (group_id, stored_type) in stored {
        let (state, protocol_type) = match shard.groups.call(&group_id, GroupOp::State).await {
            GroupReply::State(Some(s)) => s,
            // Known only by its stored offsets.
            _ => ("Empty".to_string(), stored_type),
        };
        if !req.states_filter.is_empty()
            && !req
                .states_filter
                .iter()
                .any(|s| s.as_str().eq_ignore_ascii_case(&state))
        {
            continue;
        }
        resp.groups.push(
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&group_id)))
                .with_protocol_type(str_bytes(&protocol_type))
                .with_group_state(str_bytes(&state))
                .with_group_type(str_bytes(GROUP_TYPE)),
        );
    }
    resp
}
