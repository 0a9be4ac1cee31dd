//! DescribeCluster (key 60), v0–v1: the cluster id and the agents serving it.

use std::rc::Rc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::server::dispatch::RequestContext;
use crate::shard::Shard;

/// `endpoint_type` for broker endpoints (KIP-919).
const ENDPOINT_BROKERS: i8 = 1;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let c = &shard.config;
    let node = BrokerId(c.node_id);
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&shard.cluster_id))
        .with_controller_id(node)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(str_bytes(&c.advertise_host))
            .with_port(i32::from(c.advertise_port))]);
    if version >= 1 {
        if req.endpoint_type != ENDPOINT_BROKERS {
            resp.error_code = ResponseError::UnsupportedEndpointType.code();
            resp.error_message = Some(str_bytes("only broker endpoints are served"));
            resp.brokers.clear();
        }
        resp.endpoint_type = ENDPOINT_BROKERS;
    }
    resp
}
