//! Request dispatch: the single list of supported APIs (which also builds the ApiVersions
//! answer), header decoding, and response framing.

use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::protocol::request_shape;
use crate::server::handlers;
use crate::shard::Shard;

/// One supported API and its version range. The reason for each limit sits next to it.
#[derive(Clone, Copy, Debug)]
pub struct ApiSpec {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

/// Every API weft answers. Minimums are the oldest versions Apache Kafka 4 still accepts (older
/// ones carry message formats before v2); maximums are what current clients use and what the
/// agent can answer fully.
pub const APIS: &[ApiSpec] = &[
    // v10+ only add leader-discovery tags for moved partitions, which never move here.
    ApiSpec {
        key: ApiKey::Produce,
        min: 3,
        max: 9,
    },
    // v13+ address topics by id only; clients fall back to names at v12.
    ApiSpec {
        key: ApiKey::Fetch,
        min: 4,
        max: 12,
    },
    // v8+ add tiered-storage offset specs that have no meaning here.
    ApiSpec {
        key: ApiKey::ListOffsets,
        min: 1,
        max: 7,
    },
    ApiSpec {
        key: ApiKey::Metadata,
        min: 0,
        max: 12,
    },
    ApiSpec {
        key: ApiKey::ApiVersions,
        min: 0,
        max: 4,
    },
    ApiSpec {
        key: ApiKey::CreateTopics,
        min: 2,
        max: 7,
    },
    ApiSpec {
        key: ApiKey::DeleteTopics,
        min: 1,
        max: 6,
    },
    ApiSpec {
        key: ApiKey::DescribeConfigs,
        min: 1,
        max: 4,
    },
    ApiSpec {
        key: ApiKey::CreatePartitions,
        min: 0,
        max: 3,
    },
    // v2 adds fenced-broker reporting for KRaft controllers.
    ApiSpec {
        key: ApiKey::DescribeCluster,
        min: 0,
        max: 1,
    },
];

pub fn supported(key: ApiKey, version: i16) -> bool {
    APIS.iter()
        .any(|a| a.key == key && (a.min..=a.max).contains(&version))
}

/// Why a connection must be closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum Disconnect {
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("unsupported version {version} of {key:?}")]
    UnsupportedVersion { key: ApiKey, version: i16 },
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// A request decoded up to its body.
pub struct Request {
    pub key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// Splits a frame into its header and body, checking the API and version are supported.
/// ApiVersions of an unsupported version is let through: it gets a v0 answer, as Kafka gives.
pub fn parse(mut frame: Bytes) -> Result<Request, Disconnect> {
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let key = ApiKey::try_from(raw_key).map_err(|_| Disconnect::UnknownApi(raw_key))?;
    if key == ApiKey::ApiVersions && !supported(key, version) {
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        return Ok(Request {
            key,
            version,
            header: RequestHeader::default().with_correlation_id(correlation_id),
            body: Bytes::new(),
        });
    }
    if !supported(key, version) {
        return Err(Disconnect::UnsupportedVersion { key, version });
    }
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| Disconnect::Malformed(format!("{key:?} v{version} header: {e}")))?;
    Ok(Request {
        key,
        version,
        header,
        body: frame,
    })
}

/// Decodes a request body, turning a codec failure into a disconnect.
pub fn decode<T: Decodable>(req: &mut Request) -> Result<T, Disconnect> {
    // The codec sizes allocations from counts on the wire; check them against the bytes first.
    request_shape::check(req.key, req.version, &req.body)
        .map_err(|e| Disconnect::Malformed(format!("{:?} v{} body: {e}", req.key, req.version)))?;
    T::decode(&mut req.body, req.version)
        .map_err(|e| Disconnect::Malformed(format!("{:?} v{} body: {e}", req.key, req.version)))
}

/// Frames a response: size, header, body.
pub fn encode<T: Encodable>(
    key: ApiKey,
    header_version_of: i16,
    body_version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, Disconnect> {
    let header_version = key.response_header_version(header_version_of);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let fail = |e: anyhow::Error| Disconnect::Malformed(format!("encoding {key:?} response: {e}"));
    let size = header.compute_size(header_version).map_err(fail)?
        + body.compute_size(body_version).map_err(fail)?;
    let mut out = BytesMut::with_capacity(4 + size);
    out.put_i32(size as i32);
    header.encode(&mut out, header_version).map_err(fail)?;
    body.encode(&mut out, body_version).map_err(fail)?;
    Ok(out.freeze())
}

/// Handles one request. `Ok(None)` means no response is sent (Produce with acks=0).
pub async fn handle(shard: &Rc<Shard>, mut req: Request) -> Result<Option<Bytes>, Disconnect> {
    let version = req.version;
    let correlation_id = req.header.correlation_id;
    macro_rules! answer {
        ($module:ident) => {{
            let body = decode(&mut req)?;
            let resp = handlers::$module::handle(shard, &req.header, body, version).await;
            Ok(Some(encode(
                req.key,
                version,
                version,
                correlation_id,
                &resp,
            )?))
        }};
    }
    match req.key {
        ApiKey::ApiVersions => {
            let (resp, answer_version) = handlers::api_versions::handle(&mut req);
            // An unsupported version is answered in v0 and with header v0.
            Ok(Some(encode(
                req.key,
                answer_version,
                answer_version,
                correlation_id,
                &resp,
            )?))
        }
        ApiKey::Produce => {
            let body = decode(&mut req)?;
            match handlers::produce::handle(shard, &req.header, body, version).await {
                Some(resp) => Ok(Some(encode(
                    req.key,
                    version,
                    version,
                    correlation_id,
                    &resp,
                )?)),
                None => Ok(None),
            }
        }
        ApiKey::Fetch => answer!(fetch),
        ApiKey::ListOffsets => answer!(list_offsets),
        ApiKey::Metadata => answer!(metadata),
        ApiKey::CreateTopics => answer!(create_topics),
        ApiKey::DeleteTopics => answer!(delete_topics),
        ApiKey::DescribeConfigs => answer!(describe_configs),
        ApiKey::CreatePartitions => answer!(create_partitions),
        ApiKey::DescribeCluster => answer!(describe_cluster),
        other => Err(Disconnect::UnsupportedVersion {
            key: other,
            version,
        }),
    }
}
