//! DescribeGroups (key 15), v0–v5: state, protocol and members of each group, from the shard
//! that owns it. An unknown group is described as "Dead", as Kafka does.

use std::rc::Rc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::groups::{GroupOp, GroupReply};
use crate::server::dispatch::RequestContext;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut resp = DescribeGroupsResponse::default();
    for group_id in req.groups {
        let mut out = DescribedGroup::default().with_group_id(group_id.clone());
        if group_id.is_empty() {
            out.error_code = ResponseError::InvalidGroupId.code();
            resp.groups.push(out);
            continue;
        }
        match shard
            .groups
            .call(group_id.as_str(), GroupOp::Describe)
            .await
        {
            GroupReply::Described(d) => {
                out.group_state = str_bytes(&d.state);
                out.protocol_type = str_bytes(&d.protocol_type);
                out.protocol_data = str_bytes(&d.protocol);
                out.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(str_bytes(&m.member_id))
                            .with_group_instance_id(if version >= 4 {
                                m.instance_id.map(|i| str_bytes(&i))
                            } else {
                                None
                            })
                            .with_client_id(str_bytes(&m.client_id))
                            .with_client_host(str_bytes(&m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment)
                    })
                    .collect();
            }
            GroupReply::Code(code) => out.error_code = code,
            other => unreachable!("describe answered with {other:?}"),
        }
        resp.groups.push(out);
    }
    resp
}
