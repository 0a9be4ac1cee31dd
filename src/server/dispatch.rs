//! Request dispatch: the single list of supported APIs (which also builds the ApiVersions
//! answer), header decoding, and response framing.

use std::net::SocketAddr;
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
#[rustfmt::skip]
pub const APIS: &[ApiSpec] = &[
    // v10+ only add leader-discovery tags for moved partitions, which never move here.
    ApiSpec { key: ApiKey::Produce, min: 3, max: 9 },
    // v13+ address topics by id only; clients fall back to names at v12.
    ApiSpec { key: ApiKey::Fetch, min: 4, max: 12 },
    // v8+ add tiered-storage offset specs that have no meaning here.
    ApiSpec { key: ApiKey::ListOffsets, min: 1, max: 7 },
    ApiSpec { key: ApiKey::Metadata, min: 0, max: 12 },
    ApiSpec { key: ApiKey::ApiVersions, min: 0, max: 4 },
    ApiSpec { key: ApiKey::CreateTopics, min: 2, max: 7 },
    ApiSpec { key: ApiKey::DeleteTopics, min: 1, max: 6 },
    ApiSpec { key: ApiKey::DescribeConfigs, min: 1, max: 4 },
    ApiSpec { key: ApiKey::CreatePartitions, min: 0, max: 3 },
    // v2 adds fenced-broker reporting for KRaft controllers.
    ApiSpec { key: ApiKey::DescribeCluster, min: 0, max: 1 },
    // v6 adds two-phase-commit transactions (KIP-939).
    ApiSpec { key: ApiKey::InitProducerId, min: 0, max: 5 },
    // v5+ serve transaction coordinators of KIP-890 and share groups.
    ApiSpec { key: ApiKey::FindCoordinator, min: 0, max: 4 },
    ApiSpec { key: ApiKey::JoinGroup, min: 0, max: 9 },
    ApiSpec { key: ApiKey::SyncGroup, min: 0, max: 5 },
    ApiSpec { key: ApiKey::Heartbeat, min: 0, max: 4 },
    ApiSpec { key: ApiKey::LeaveGroup, min: 0, max: 5 },
    // v9+ carry the member epochs of the new group protocol (KIP-848).
    ApiSpec { key: ApiKey::OffsetCommit, min: 2, max: 8 },
    ApiSpec { key: ApiKey::OffsetFetch, min: 1, max: 8 },
    ApiSpec { key: ApiKey::ListGroups, min: 0, max: 5 },
    ApiSpec { key: ApiKey::DescribeGroups, min: 0, max: 5 },
    ApiSpec { key: ApiKey::DeleteGroups, min: 0, max: 2 },
    ApiSpec { key: ApiKey::OffsetDelete, min: 0, max: 0 },
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
    /// Kafka closes the connection when a Produce with acks=0 fails, since there is no
    /// answer to carry the error: the producer notices and refreshes its metadata.
    #[error("produce with acks=0 failed with error {0}")]
    UnacknowledgedProduceFailed(i16),
}

impl Disconnect {
    /// How a request that never ran is counted; a failed acks=0 Produce did run, and is
    /// counted with its API instead.
    pub fn rejection(&self) -> crate::metrics::Rejection {
        use crate::metrics::Rejection;
        match self {
            Disconnect::UnknownApi(_) => Rejection::UnknownApi,
            Disconnect::UnsupportedVersion { .. } => Rejection::UnsupportedVersion,
            Disconnect::Malformed(_) | Disconnect::UnacknowledgedProduceFailed(_) => {
                Rejection::Malformed
            }
        }
    }
}

/// Declares, once, every API the agent decodes and the handler module that answers it.
macro_rules! handled_apis {
    ($($key:ident => $module:ident : $request:ty),* $(,)?) => {
        /// A request body, decoded.
        pub enum Body {
            /// `None` for an unsupported version, which is answered in v0.
            ApiVersions(Option<kafka_protocol::messages::ApiVersionsRequest>),
            Produce(kafka_protocol::messages::ProduceRequest),
            Metadata(kafka_protocol::messages::MetadataRequest),
            $($key($request),)*
        }

        fn decode_body(key: ApiKey, version: i16, frame: &mut Bytes) -> Result<Body, Disconnect> {
            fn body<T: Decodable>(key: ApiKey, version: i16, frame: &mut Bytes) -> Result<T, Disconnect> {
                T::decode(frame, version)
                    .map_err(|e| Disconnect::Malformed(format!("{key:?} v{version} body: {e}")))
            }
            Ok(match key {
                ApiKey::ApiVersions => Body::ApiVersions(Some(body(key, version, frame)?)),
                ApiKey::Produce => Body::Produce(body(key, version, frame)?),
                ApiKey::Metadata => Body::Metadata(body(key, version, frame)?),
                $(ApiKey::$key => Body::$key(body(key, version, frame)?),)*
                other => return Err(Disconnect::UnsupportedVersion { key: other, version }),
            })
        }

        /// Handles one request. `Ok(None)` means no response is sent (Produce with acks=0).
        pub async fn handle(shard: &Rc<Shard>, req: Request) -> Result<Option<Bytes>, Disconnect> {
            let version = req.version;
            let correlation_id = req.ctx.header.correlation_id;
            tracing::trace!(shard = shard.id, api = ?req.key, version, correlation_id, peer = %req.ctx.peer, "request");
            match req.body {
                Body::ApiVersions(body) => {
                    let (resp, answer_version) = handlers::api_versions::handle(body.as_ref(), version);
                    // An unsupported version is answered in v0 and with header v0.
                    Ok(Some(encode(req.key, answer_version, answer_version, correlation_id, &resp)?))
                }
                Body::Produce(body) => {
                    match handlers::produce::handle(shard, &req.ctx, body, version).await? {
                        Some(resp) => Ok(Some(encode(req.key, version, version, correlation_id, &resp)?)),
                        None => Ok(None),
                    }
                }
                // Written by hand, framed already.
                Body::Metadata(body) => {
                    Ok(Some(handlers::metadata::handle(shard, &req.ctx, body, version).await))
                }
                $(Body::$key(body) => {
                    let resp = handlers::$module::handle(shard, &req.ctx, body, version).await;
                    Ok(Some(encode(req.key, version, version, correlation_id, &resp)?))
                })*
            }
        }
    };
}

handled_apis! {
    Fetch => fetch: kafka_protocol::messages::FetchRequest,
    ListOffsets => list_offsets: kafka_protocol::messages::ListOffsetsRequest,
    CreateTopics => create_topics: kafka_protocol::messages::CreateTopicsRequest,
    DeleteTopics => delete_topics: kafka_protocol::messages::DeleteTopicsRequest,
    DescribeConfigs => describe_configs: kafka_protocol::messages::DescribeConfigsRequest,
    CreatePartitions => create_partitions: kafka_protocol::messages::CreatePartitionsRequest,
    DescribeCluster => describe_cluster: kafka_protocol::messages::DescribeClusterRequest,
    InitProducerId => init_producer_id: kafka_protocol::messages::InitProducerIdRequest,
    FindCoordinator => find_coordinator: kafka_protocol::messages::FindCoordinatorRequest,
    JoinGroup => join_group: kafka_protocol::messages::JoinGroupRequest,
    SyncGroup => sync_group: kafka_protocol::messages::SyncGroupRequest,
    Heartbeat => heartbeat: kafka_protocol::messages::HeartbeatRequest,
    LeaveGroup => leave_group: kafka_protocol::messages::LeaveGroupRequest,
    OffsetCommit => offset_commit: kafka_protocol::messages::OffsetCommitRequest,
    OffsetFetch => offset_fetch: kafka_protocol::messages::OffsetFetchRequest,
    ListGroups => list_groups: kafka_protocol::messages::ListGroupsRequest,
    DescribeGroups => describe_groups: kafka_protocol::messages::DescribeGroupsRequest,
    DeleteGroups => delete_groups: kafka_protocol::messages::DeleteGroupsRequest,
    OffsetDelete => offset_delete: kafka_protocol::messages::OffsetDeleteRequest,
}

/// What a handler knows about the request besides its body.
pub struct RequestContext {
    pub header: RequestHeader,
    /// The client's address, as seen by this agent.
    pub peer: SocketAddr,
    /// For Produce: this request's place in its connection's append order.
    pub append_turn: std::cell::RefCell<Option<crate::server::ordering::Ticket>>,
}

/// A request, decoded.
pub struct Request {
    pub key: ApiKey,
    pub version: i16,
    pub ctx: RequestContext,
    pub body: Body,
}

/// Decodes a frame: header and body, checking that the API and version are supported and that
/// every length in the body is backed by its bytes. Decoding here, before the request runs,
/// means a malformed request closes the connection before anything pipelined behind it runs.
/// ApiVersions of an unsupported version is let through: it gets a v0 answer, as Kafka gives.
pub fn parse(mut frame: Bytes, peer: SocketAddr) -> Result<Request, Disconnect> {
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let key = ApiKey::try_from(raw_key).map_err(|_| Disconnect::UnknownApi(raw_key))?;
    if key == ApiKey::ApiVersions && !supported(key, version) {
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        return Ok(Request {
            key,
            version,
            ctx: RequestContext {
                header: RequestHeader::default().with_correlation_id(correlation_id),
                peer,
                append_turn: Default::default(),
            },
            body: Body::ApiVersions(None),
        });
    }
    if !supported(key, version) {
        return Err(Disconnect::UnsupportedVersion { key, version });
    }
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| Disconnect::Malformed(format!("{key:?} v{version} header: {e}")))?;
    // The codec sizes allocations from counts on the wire; check them against the bytes first.
    request_shape::check(key, version, &frame)
        .map_err(|e| Disconnect::Malformed(format!("{key:?} v{version} body: {e}")))?;
    let body = decode_body(key, version, &mut frame)?;
    Ok(Request {
        key,
        version,
        ctx: RequestContext {
            header,
            peer,
            append_turn: Default::default(),
        },
        body,
    })
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
