//! FindCoordinator (key 10), v0–v4, including batched keys (v4). Every group's coordinator is
//! reachable through this agent: the agent forwards each group's requests to the shard that
//! owns it, so the answer is always this agent.

use std::rc::Rc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::server::dispatch::RequestContext;
use crate::shard::Shard;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let c = &shard.config;
    let answer = |key: StrBytes| -> Coordinator {
        let mut out = Coordinator::default().with_key(key.clone());
        if key.is_empty() && req.key_type == KEY_TYPE_GROUP {
            out.error_code = ResponseError::InvalidGroupId.code();
            out.node_id = BrokerId(-1);
            out.port = -1;
        } else if req.key_type != KEY_TYPE_GROUP && req.key_type != KEY_TYPE_TRANSACTION {
            out.error_code = ResponseError::InvalidRequest.code();
            out.node_id = BrokerId(-1);
            out.port = -1;
        } else {
            out.node_id = BrokerId(c.node_id);
            out.host = str_bytes(&c.advertise_host);
            out.port = i32::from(c.advertise_port);
        }
        out
    };
    let mut resp = FindCoordinatorResponse::default();
    if version >= 4 {
        resp.coordinators = req.coordinator_keys.iter().cloned().map(answer).collect();
    } else {
        let one = answer(req.key.clone());
        resp.error_code = one.error_code;
        resp.node_id = one.node_id;
        resp.host = one.host;
        resp.port = one.port;
    }
    resp
}
