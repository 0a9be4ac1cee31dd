//! ApiVersions (key 18), v0–v4. The answer is built from the dispatch table, so it always
//! lists exactly what the agent handles. An unsupported version gets a v0 answer carrying
//! UNSUPPORTED_VERSION and the supported ranges, so the client can pick again.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::ResponseError;

use crate::server::dispatch::{supported, Request, APIS};

/// The response and the version to encode it in.
pub fn handle(req: &mut Request) -> (ApiVersionsResponse, i16) {
    let api_keys = APIS
        .iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min)
                .with_max_version(a.max)
        })
        .collect();
    let mut resp = ApiVersionsResponse::default().with_api_keys(api_keys);
    if !supported(req.key, req.version) {
        resp.error_code = ResponseError::UnsupportedVersion.code();
        return (resp, 0);
    }
    // Feature fields keep their defaults, which are never written on the wire: clients as old
    // as librdkafka 2.0 misread them otherwise.
    (resp, req.version)
}
