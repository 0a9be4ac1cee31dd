//! ApiVersions (key 18), v0–v4. The answer is built from the dispatch table, so it always
//! lists exactly what the agent handles. An unsupported version gets a v0 answer carrying
//! UNSUPPORTED_VERSION and the supported ranges, so the client can pick again.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use crate::server::dispatch::APIS;

/// The response and the version to encode it in. `req` is `None` for an unsupported version.
pub fn handle(req: Option<&ApiVersionsRequest>, version: i16) -> (ApiVersionsResponse, i16) {
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
    let Some(req) = req else {
        resp.error_code = ResponseError::UnsupportedVersion.code();
        return (resp, 0);
    };
    if version >= 3
        && !(valid_software_token(req.client_software_name.as_str())
            && valid_software_token(req.client_software_version.as_str()))
    {
        resp.error_code = ResponseError::InvalidRequest.code();
        resp.api_keys.clear();
    }
    // Feature fields keep their defaults, which are never written on the wire: clients as old
    // as librdkafka 2.0 misread them otherwise.
    (resp, version)
}

/// Kafka's rule for client software names and versions: alphanumerics, with `.` and `-`
/// allowed inside.
fn valid_software_token(s: &str) -> bool {
    let b = s.as_bytes();
    let inner_ok = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.';
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() && b.iter().all(inner_ok)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn software_tokens() {
        for ok in ["librdkafka", "2.12.1", "a", "kafka-python", "x.y-z9"] {
            assert!(super::valid_software_token(ok), "{ok}");
        }
        for bad in ["", "bad name!", "-x", "x.", "é"] {
            assert!(!super::valid_software_token(bad), "{bad}");
        }
    }
}
