//! InitProducerId (key 22), v0–v5, for idempotent producers. As in Kafka, a request without a
//! transactional id always gets a fresh producer id at epoch 0, allocated by the metadata store
//! so that ids are unique across agents. Transactions are not supported yet: a transactional
//! id is refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients report as fatal
//! instead of retrying forever.

use std::rc::Rc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::server::dispatch::RequestContext;
use crate::server::errors::metadata_error_code;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _ctx: &RequestContext,
    req: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return resp;
    }
    match shard
        .metadata
        .call("allocate_producer_id", |b| b.allocate_producer_id())
        .await
    {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => resp.error_code = metadata_error_code(&e),
    }
    resp
}
