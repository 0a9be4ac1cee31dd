//! End-to-end tests of the Kafka wire protocol against a real `weft agent` process.
//!
//! A tiny blocking client writes requests encoded by `kafka_protocol` (4-byte size, request
//! header, body) over a plain `std::net::TcpStream` and decodes the responses, so every byte the
//! agent sends is checked, including that nothing trails a response body. Each test starts its
//! own agent. Nothing here asserts on timing: timeouts only bound how long a test may wait.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchResponse, PartitionData};
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse,
};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::{MetadataResponse, MetadataResponseTopic};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, ProduceResponse};
use kafka_protocol::messages::{ApiKey, BrokerId, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};
use uuid::Uuid;

use common::Agent;

/// Upper bound on any single socket read or write; never reached by a healthy agent.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// A CreateTime timestamp for records whose timestamp does not matter.
const TS: i64 = 1_700_000_000_000;

// Kafka error codes used below.
const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_REQUIRED_ACKS: i16 = 21;
const UNSUPPORTED_VERSION: i16 = 35;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_RECORD: i16 = 87;
const UNKNOWN_TOPIC_ID: i16 = 100;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// One blocking connection to the agent.
struct Client {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    fn connect(agent: &Agent) -> Client {
        let stream = TcpStream::connect(agent.addr()).expect("connect to the agent");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            next_correlation_id: 1,
        }
    }

    fn take_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        id
    }

    /// A whole request frame (size, header, body) and its correlation id.
    fn encode<R: Request>(&mut self, version: i16, body: &R) -> (i32, Vec<u8>) {
        let key = api_key(R::KEY);
        let correlation_id = self.take_correlation_id();
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("raw-protocol-test")));
        let mut body_bytes = BytesMut::new();
        body.encode(&mut body_bytes, version)
            .unwrap_or_else(|e| panic!("encoding {key:?} v{version} request: {e}"));
        let frame = raw_frame(&header, key.request_header_version(version), &body_bytes);
        (correlation_id, frame)
    }

    fn send<R: Request>(&mut self, version: i16, body: &R) -> i32 {
        let (id, frame) = self.encode(version, body);
        self.stream.write_all(&frame).expect("write request");
        id
    }

    fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads one response frame, without its size prefix.
    fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        assert!(
            (4..=256 * 1024 * 1024).contains(&size),
            "response size {size} is not sane"
        );
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    fn recv<R: Request>(&mut self, version: i16) -> (i32, R::Response) {
        let frame = self
            .read_frame()
            .unwrap_or_else(|e| panic!("reading {:?} response: {e}", api_key(R::KEY)));
        decode_response::<R>(frame, version)
    }

    /// Sends a request and reads its response, checking the correlation id.
    fn call<R: Request>(&mut self, version: i16, body: &R) -> R::Response {
        let id = self.send(version, body);
        let (got, resp) = self.recv::<R>(version);
        assert_eq!(
            got,
            id,
            "correlation id of the {:?} response",
            api_key(R::KEY)
        );
        resp
    }

    /// Asserts the agent closes this connection without answering: a read sees end of stream
    /// or a reset, not data, within the read timeout.
    fn expect_closed(&mut self, what: &str) {
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("{what}: expected the connection to close, got {n} bytes"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what}: the connection was still open after {IO_TIMEOUT:?}")
            }
            // A reset (unread request bytes were discarded) is a close too.
            Err(_) => {}
        }
    }
}

fn api_key(key: i16) -> ApiKey {
    ApiKey::try_from(key).expect("known API key")
}

/// size + header (in `header_version`) + body.
fn raw_frame(header: &RequestHeader, header_version: i16, body: &[u8]) -> Vec<u8> {
    let mut payload = BytesMut::new();
    header
        .encode(&mut payload, header_version)
        .expect("encode request header");
    payload.put_slice(body);
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// A frame with an arbitrary API key and version, the header in `header_version`.
fn frame_for(
    key: i16,
    version: i16,
    correlation_id: i32,
    header_version: i16,
    body: &[u8],
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("raw-protocol-test")));
    raw_frame(&header, header_version, body)
}

fn decode_response<R: Request>(mut frame: Bytes, version: i16) -> (i32, R::Response) {
    let key = api_key(R::KEY);
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .unwrap_or_else(|e| panic!("decoding {key:?} v{version} response header: {e}"));
    let body = R::Response::decode(&mut frame, version)
        .unwrap_or_else(|e| panic!("decoding {key:?} v{version} response body: {e}"));
    assert!(
        !frame.has_remaining(),
        "{} bytes trail the {key:?} v{version} response",
        frame.remaining()
    );
    (header.correlation_id, body)
}

fn encode_body<T: Encodable>(body: &T, version: i16) -> Vec<u8> {
    let mut out = BytesMut::new();
    body.encode(&mut out, version).expect("encode body");
    out.to_vec()
}

fn tn(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

// ---------------------------------------------------------------------------------------------
// Record batches
// ---------------------------------------------------------------------------------------------

fn record(offset: i64, timestamp: i64, key: Option<&[u8]>, value: &[u8]) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        timestamp_type: TimestampType::Creation,
        offset,
        // The encoder keeps records in one batch while offset - sequence stays constant; this
        // makes the batch's base sequence -1, as a non-idempotent producer sends.
        sequence: offset as i32 - 1,
        timestamp,
        key: key.map(Bytes::copy_from_slice),
        value: Some(Bytes::copy_from_slice(value)),
        headers: Default::default(),
    }
}

fn encode_batch(records: &[Record]) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode record batch");
    buf.freeze()
}

/// One uncompressed v2 batch holding `values`, all with timestamp `ts`.
fn batch(values: &[&str], ts: i64) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| record(i as i64, ts, None, v.as_bytes()))
        .collect();
    let b = encode_batch(&records);
    assert_eq!(batch_count(&b), 1, "the encoder made one batch");
    b
}

/// One batch with a timestamp per record.
fn batch_ts(entries: &[(&str, i64)]) -> Bytes {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (v, ts))| record(i as i64, *ts, None, v.as_bytes()))
        .collect();
    let b = encode_batch(&records);
    assert_eq!(batch_count(&b), 1, "the encoder made one batch");
    b
}

fn batch_count(bytes: &Bytes) -> usize {
    RecordBatchDecoder::decode_batch_info(&mut bytes.clone())
        .expect("batch headers")
        .len()
}

/// One batch of `records` compressed with `compression`.
fn compressed_batch(values: &[&str], compression: Compression) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            record(
                i as i64,
                TS,
                Some(format!("key-{i}").as_bytes()),
                v.as_bytes(),
            )
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode compressed batch");
    buf.freeze()
}

/// A batch framed by hand: a v2 header (with `magic`) around `records`, which may be anything,
/// with a correct length and CRC-32C.
fn raw_batch(magic: i8, record_count: i32, records: &[u8]) -> Bytes {
    let mut b = Vec::new();
    b.extend(0i64.to_be_bytes()); // base offset
    b.extend(0i32.to_be_bytes()); // length, set below
    b.extend((-1i32).to_be_bytes()); // partition leader epoch
    b.push(magic as u8);
    b.extend(0u32.to_be_bytes()); // crc, set below
    b.extend(0i16.to_be_bytes()); // attributes
    b.extend((record_count - 1).to_be_bytes()); // last offset delta
    b.extend(TS.to_be_bytes());
    b.extend(TS.to_be_bytes());
    b.extend((-1i64).to_be_bytes()); // producer id
    b.extend((-1i16).to_be_bytes()); // producer epoch
    b.extend((-1i32).to_be_bytes()); // base sequence
    b.extend(record_count.to_be_bytes());
    b.extend_from_slice(records);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// A batch as a fetch returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fetched {
    base_offset: i64,
    /// (offset, value) of each record.
    records: Vec<(i64, String)>,
}

fn parse_records(records: &Option<Bytes>) -> Vec<Fetched> {
    let bytes = records.clone().unwrap_or_default();
    let infos = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).expect("batch headers");
    let sets = RecordBatchDecoder::decode_all(&mut bytes.clone()).expect("decode fetched batches");
    assert_eq!(infos.len(), sets.len());
    infos
        .into_iter()
        .zip(sets)
        .map(|(info, set)| Fetched {
            base_offset: info.min_offset,
            records: set
                .records
                .into_iter()
                .map(|r| {
                    let value = r.value.expect("record value");
                    (
                        r.offset,
                        String::from_utf8(value.to_vec()).expect("utf-8 value"),
                    )
                })
                .collect(),
        })
        .collect()
}

/// Every (offset, value) in fetched batches, in order.
fn flatten(batches: &[Fetched]) -> Vec<(i64, String)> {
    batches.iter().flat_map(|b| b.records.clone()).collect()
}

fn records_len(pd: &PartitionData) -> usize {
    pd.records.as_ref().map_or(0, |r| r.len())
}

// ---------------------------------------------------------------------------------------------
// Request builders and small helpers
// ---------------------------------------------------------------------------------------------

fn produce_request(acks: i16, topic: &str, partitions: Vec<(i32, Bytes)>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(tn(topic))
            .with_partition_data(
                partitions
                    .into_iter()
                    .map(|(p, records)| {
                        PartitionProduceData::default()
                            .with_index(p)
                            .with_records(Some(records))
                    })
                    .collect(),
            )])
}

fn produce_partition<'a>(
    resp: &'a ProduceResponse,
    topic: &str,
    partition: i32,
) -> &'a PartitionProduceResponse {
    let t = resp
        .responses
        .iter()
        .find(|t| t.name.0.as_str() == topic)
        .unwrap_or_else(|| panic!("topic {topic} in produce response {resp:?}"));
    t.partition_responses
        .iter()
        .find(|p| p.index == partition)
        .unwrap_or_else(|| panic!("partition {partition} in produce response {resp:?}"))
}

/// Produces one batch with acks=-1 and returns the partition's answer.
fn produce(
    c: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    let resp = c.call(
        version,
        &produce_request(-1, topic, vec![(partition, records)]),
    );
    assert_eq!(resp.responses.len(), 1, "{resp:?}");
    assert_eq!(resp.responses[0].partition_responses.len(), 1, "{resp:?}");
    produce_partition(&resp, topic, partition).clone()
}

/// Produces one batch and asserts it was appended at `expected_base`.
fn produce_ok(c: &mut Client, topic: &str, partition: i32, records: Bytes, expected_base: i64) {
    let p = produce(c, 9, topic, partition, records);
    assert_eq!(p.error_code, NONE, "produce to {topic}/{partition}: {p:?}");
    assert_eq!(
        p.base_offset, expected_base,
        "base offset of {topic}/{partition}"
    );
}

fn fetch_request(topic: &str, partitions: &[(i32, i64)], partition_max_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(i32::MAX)
        .with_topics(vec![FetchTopic::default()
            .with_topic(tn(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(p, offset)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )])
}

fn fetch_partition<'a>(resp: &'a FetchResponse, topic: &str, partition: i32) -> &'a PartitionData {
    let t = resp
        .responses
        .iter()
        .find(|t| t.topic.0.as_str() == topic)
        .unwrap_or_else(|| panic!("topic {topic} in fetch response {resp:?}"));
    t.partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .unwrap_or_else(|| panic!("partition {partition} in fetch response"))
}

/// Fetches one partition from `offset` with version 12 and no waiting.
fn fetch_one(c: &mut Client, topic: &str, partition: i32, offset: i64) -> PartitionData {
    let resp = c.call(12, &fetch_request(topic, &[(partition, offset)], 1 << 20));
    assert_eq!(resp.error_code, NONE, "fetch top-level error");
    fetch_partition(&resp, topic, partition).clone()
}

/// Reads a partition from offset 0 up to its high watermark, as many fetches as it takes.
fn read_all(c: &mut Client, version: i16, topic: &str, partition: i32) -> (i64, Vec<Fetched>) {
    let mut batches: Vec<Fetched> = Vec::new();
    let mut next = 0i64;
    for _ in 0..1000 {
        let resp = c.call(
            version,
            &fetch_request(topic, &[(partition, next)], 1 << 20),
        );
        let pd = fetch_partition(&resp, topic, partition);
        assert_eq!(
            pd.error_code, NONE,
            "fetch {topic}/{partition} at {next}: {pd:?}"
        );
        let got = parse_records(&pd.records);
        for b in got {
            let last = b.records.last().map(|r| r.0).expect("non-empty batch");
            if last >= next {
                next = last + 1;
                batches.push(b);
            }
        }
        if next >= pd.high_watermark {
            return (pd.high_watermark, batches);
        }
    }
    panic!("{topic}/{partition} was not read to its end in 1000 fetches");
}

fn creatable(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(tn(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(sb(k))
                        .with_value(Some(sb(v)))
                })
                .collect(),
        )
}

fn create_topics(
    c: &mut Client,
    version: i16,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> Vec<CreatableTopicResult> {
    let resp = c.call(
        version,
        &CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(30_000)
            .with_validate_only(validate_only),
    );
    resp.topics
}

/// Creates a topic with CreateTopics v7 and returns its id.
fn create_topic(c: &mut Client, name: &str, partitions: i32, configs: &[(&str, &str)]) -> Uuid {
    let results = create_topics(c, 7, vec![creatable(name, partitions, configs)], false);
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r.error_code, NONE, "create {name}: {r:?}");
    assert_eq!(r.num_partitions, partitions);
    assert!(!r.topic_id.is_nil(), "created topic has an id");
    r.topic_id
}

fn metadata(c: &mut Client, version: i16, names: &[&str], allow_auto: bool) -> MetadataResponse {
    let topics = names
        .iter()
        .map(|n| MetadataRequestTopic::default().with_name(Some(tn(n))))
        .collect();
    c.call(
        version,
        &MetadataRequest::default()
            .with_topics(Some(topics))
            .with_allow_auto_topic_creation(allow_auto),
    )
}

fn metadata_topic<'a>(resp: &'a MetadataResponse, name: &str) -> &'a MetadataResponseTopic {
    resp.topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(name))
        .unwrap_or_else(|| panic!("topic {name} in metadata response {resp:?}"))
}

fn list_offsets(
    c: &mut Client,
    version: i16,
    topic: &str,
    queries: &[(i32, i64)],
) -> Vec<ListOffsetsPartitionResponse> {
    let resp: ListOffsetsResponse = c.call(
        version,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(tn(topic))
                .with_partitions(
                    queries
                        .iter()
                        .map(|&(p, ts)| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(ts)
                        })
                        .collect(),
                )]),
    );
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(resp.topics[0].name.0.as_str(), topic);
    resp.topics[0].partitions.clone()
}

fn describe_configs(
    c: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> DescribeConfigsResult {
    let resp = c.call(
        version,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(sb(name))
            .with_configuration_keys(keys.map(|k| k.iter().map(|s| sb(s)).collect()))]),
    );
    assert_eq!(resp.results.len(), 1);
    resp.results[0].clone()
}

fn config_value(result: &DescribeConfigsResult, name: &str) -> (String, i8) {
    let c = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("config {name} in {result:?}"));
    (
        c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        c.config_source,
    )
}

/// Listening TCP sockets on `port` (IPv4), from /proc/net/tcp.
fn listening_sockets(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[1].ends_with(&local) && fields[3] == "0A"
        })
        .count()
}

/// Kills the agent with SIGKILL and starts it again on the same port and data directory.
///
/// The killed agent's SO_REUSEPORT listening sockets outlive its process for a moment (their
/// io_uring is torn down after exit), and connections the kernel hands them are then reset.
/// So the new agent starts only once they are gone.
fn kill9_and_start_again(agent: &mut Agent) {
    agent.kill9();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while listening_sockets(agent.port) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the killed agent still listens on port {}",
            agent.port
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.start_again();
}

/// Connects after a restart, retrying while the connection is refused or reset (the killed
/// agent's dying listeners can take it, and `restart()` may have seen one of them), until an
/// ApiVersions request is answered. The deadline is for liveness only.
fn connect_when_ready(agent: &Agent) -> Client {
    fn attempt(agent: &Agent) -> std::io::Result<Client> {
        let stream = TcpStream::connect(agent.addr())?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            stream,
            next_correlation_id: 1,
        };
        let (id, frame) = c.encode(0, &ApiVersionsRequest::default());
        c.write_raw(&frame)?;
        let (got, resp) = decode_response::<ApiVersionsRequest>(c.read_frame()?, 0);
        assert_eq!((got, resp.error_code), (id, NONE));
        c.stream.set_read_timeout(Some(IO_TIMEOUT))?;
        Ok(c)
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match attempt(agent) {
            Ok(c) => return c,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the restarted agent never answered: {e}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn assert_no_panic(agent: &Agent) {
    let log = agent.log();
    assert!(
        !log.contains("panicked"),
        "the agent log shows a panic:\n{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// ApiVersions and connection handling
// ---------------------------------------------------------------------------------------------

/// The (key, min, max) the agent must list: exactly its dispatch table.
fn expected_api_versions() -> Vec<(i16, i16, i16)> {
    let mut v: Vec<_> = weft::server::dispatch::APIS
        .iter()
        .map(|a| (a.key as i16, a.min, a.max))
        .collect();
    v.sort();
    v
}

fn listed_api_versions(resp: &ApiVersionsResponse) -> Vec<(i16, i16, i16)> {
    let mut v: Vec<_> = resp
        .api_keys
        .iter()
        .map(|a| (a.api_key, a.min_version, a.max_version))
        .collect();
    v.sort();
    v
}

#[test]
fn api_versions_lists_the_dispatch_table_in_every_version() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let expected = expected_api_versions();
    for key in [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::DescribeConfigs,
        ApiKey::CreatePartitions,
        ApiKey::DescribeCluster,
    ] {
        assert!(
            expected.iter().any(|(k, _, _)| *k == key as i16),
            "{key:?} is in the dispatch table"
        );
    }
    // The versions these tests speak are in range.
    for (key, versions) in [
        (ApiKey::Produce, &[3i16, 9][..]),
        (ApiKey::Fetch, &[4, 12]),
        (ApiKey::ListOffsets, &[1, 7]),
        (ApiKey::Metadata, &[1, 4, 12]),
        (ApiKey::CreateTopics, &[2, 7]),
        (ApiKey::DeleteTopics, &[1, 6]),
        (ApiKey::DescribeConfigs, &[1, 4]),
        (ApiKey::CreatePartitions, &[0, 3]),
        (ApiKey::DescribeCluster, &[0, 1]),
    ] {
        let (_, min, max) = expected.iter().find(|(k, _, _)| *k == key as i16).unwrap();
        for v in versions {
            assert!((min..=max).contains(&v), "{key:?} v{v} supported");
        }
    }

    for version in 0..=4 {
        let req = if version >= 3 {
            ApiVersionsRequest::default()
                .with_client_software_name(sb("raw-protocol-test"))
                .with_client_software_version(sb("1.0"))
        } else {
            ApiVersionsRequest::default()
        };
        let resp = c.call(version, &req);
        assert_eq!(resp.error_code, NONE, "ApiVersions v{version}");
        assert_eq!(
            listed_api_versions(&resp),
            expected,
            "ApiVersions v{version}"
        );
    }
}

#[test]
fn api_versions_of_an_unknown_version_gets_a_v0_answer_with_unsupported_version() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let correlation_id = 4242;
    // A client newer than the agent: header v2, a body the agent cannot know.
    let body = encode_body(
        &ApiVersionsRequest::default()
            .with_client_software_name(sb("future-client"))
            .with_client_software_version(sb("99")),
        3,
    );
    let frame = frame_for(ApiKey::ApiVersions as i16, 99, correlation_id, 2, &body);
    c.write_raw(&frame).unwrap();
    let mut resp = c.read_frame().expect("an answer to ApiVersions v99");
    // Header v0: the correlation id alone; body v0: error code and the list.
    let header = ResponseHeader::decode(&mut resp, 0).unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    let body = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert!(
        !resp.has_remaining(),
        "{} bytes trail the v0 answer",
        resp.remaining()
    );
    assert_eq!(body.error_code, UNSUPPORTED_VERSION);
    assert_eq!(listed_api_versions(&body), expected_api_versions());

    // The connection stays usable: the client picks a version from the list and asks again.
    let again = c.call(3, &named_api_versions());
    assert_eq!(again.error_code, NONE);
}

/// Kafka checks ApiVersions v3+ client software name and version against
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?` and answers INVALID_REQUEST when they do not match.
#[test]

fn api_versions_rejects_an_invalid_client_software_name() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let resp = c.call(
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(sb("bad name!"))
            .with_client_software_version(sb("1.0")),
    );
    assert_eq!(resp.error_code, INVALID_REQUEST);
}

#[test]
fn unsupported_api_or_version_closes_only_that_connection() {
    let agent = Agent::start();
    let mut healthy = Client::connect(&agent);
    assert_eq!(metadata(&mut healthy, 12, &[], true).brokers.len(), 1);

    let produce_body = encode_body(&produce_request(1, "t", vec![(0, batch(&["x"], TS))]), 3);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "Produce v2",
            frame_for(ApiKey::Produce as i16, 2, 1, 1, &produce_body),
        ),
        (
            "Fetch v13",
            frame_for(ApiKey::Fetch as i16, 13, 1, 2, &[0u8; 32]),
        ),
        (
            "ListOffsets v0",
            frame_for(ApiKey::ListOffsets as i16, 0, 1, 1, &[0u8; 16]),
        ),
        (
            "DeleteRecords v2 (not served)",
            frame_for(ApiKey::DeleteRecords as i16, 2, 1, 1, &[0u8; 32]),
        ),
        (
            "OffsetCommit v9 (newer than served)",
            frame_for(ApiKey::OffsetCommit as i16, 9, 1, 2, &[0u8; 32]),
        ),
        (
            "unknown API key 12345",
            frame_for(12345, 0, 1, 1, &[0u8; 8]),
        ),
    ];
    for (what, frame) in cases {
        let mut bad = Client::connect(&agent);
        // A request pipelined behind the bad one is never answered either.
        let mut bytes = frame;
        bytes.extend(bad.encode(12, &MetadataRequest::default()).1);
        let _ = bad.write_raw(&bytes);
        bad.expect_closed(what);

        // Another connection, old or new, is still served.
        let resp = metadata(&mut healthy, 12, &[], true);
        assert_eq!(resp.brokers.len(), 1, "after {what}");
        let mut fresh = Client::connect(&agent);
        assert_eq!(fresh.call(3, &named_api_versions()).error_code, NONE);
    }
    assert_no_panic(&agent);
}

/// Kafka reads one request at a time from a connection and closes it at the first bad one, so
/// a request pipelined behind an unsupported one is never executed.
#[test]

fn requests_pipelined_behind_a_bad_one_are_not_executed() {
    let agent = Agent::start();
    let topic = "behind-bad";
    let mut c = Client::connect(&agent);
    create_topic(&mut c, topic, 1, &[]);
    let mut bytes = frame_for(ApiKey::DeleteRecords as i16, 2, 100, 1, &[0u8; 32]);
    bytes.extend(
        c.encode(
            9,
            &produce_request(-1, topic, vec![(0, batch(&["ghost"], TS))]),
        )
        .1,
    );
    c.write_raw(&bytes).unwrap();
    c.expect_closed("DeleteRecords v2 followed by a Produce");

    // Whatever the closed connection left behind would land within this long poll.
    let mut other = Client::connect(&agent);
    let req = fetch_request(topic, &[(0, 0)], 1 << 20)
        .with_max_wait_ms(3_000)
        .with_min_bytes(1);
    let resp = other.call(12, &req);
    let pd = fetch_partition(&resp, topic, 0);
    assert_eq!(
        (pd.high_watermark, flatten(&parse_records(&pd.records))),
        (0, vec![]),
        "the produce behind the bad request was appended"
    );
}

#[test]
fn a_request_written_one_byte_at_a_time_is_answered() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    for correlation_id in [i32::MAX, -7, 0] {
        let body = encode_body(&MetadataRequest::default().with_topics(None), 12);
        let frame = frame_for(ApiKey::Metadata as i16, 12, correlation_id, 2, &body);
        for byte in &frame {
            c.write_raw(std::slice::from_ref(byte)).unwrap();
        }
        let (got, resp) = decode_response::<MetadataRequest>(c.read_frame().unwrap(), 12);
        assert_eq!(got, correlation_id, "the correlation id is echoed as sent");
        assert_eq!(resp.brokers.len(), 1);
    }
}

#[test]
fn bad_frames_close_only_that_connection() {
    let agent = Agent::start();
    let mut healthy = Client::connect(&agent);
    assert_eq!(metadata(&mut healthy, 12, &[], true).brokers.len(), 1);

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("size 0x7fff_ffff", 0x7fff_ffffi32.to_be_bytes().to_vec()),
        (
            "size just above the 100 MiB limit",
            (100 * 1024 * 1024 + 1i32).to_be_bytes().to_vec(),
        ),
        ("size -1", (-1i32).to_be_bytes().to_vec()),
        ("size i32::MIN", i32::MIN.to_be_bytes().to_vec()),
        ("size 0", 0i32.to_be_bytes().to_vec()),
        ("size 3", [0, 0, 0, 3, 0, 18, 0].to_vec()),
    ];
    // Garbage after a valid size: an impossible API key.
    let mut garbage = 64i32.to_be_bytes().to_vec();
    garbage.extend([0xffu8; 64]);
    cases.push(("64 bytes of 0xff", garbage));
    // A supported key and version whose header is cut short (client id longer than the frame).
    let mut cut_header = 12i32.to_be_bytes().to_vec();
    cut_header.extend([0, 3, 0, 12, 0, 0, 0, 9, 0x7f, 0xff, b'a', b'b']);
    cases.push(("Metadata v12 with a truncated header", cut_header));
    // A valid header followed by a body that is not a Produce request.
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_correlation_id(9)
        .with_client_id(Some(sb("x")));
    cases.push((
        "Produce v9 with a garbage body",
        raw_frame(&header, 2, &[0xde, 0xad, 0xbe, 0xef, 0x01]),
    ));
    // A valid Produce v9 request cut short inside its record set.
    let mut c = Client::connect(&agent);
    let (_, full) = c.encode(
        9,
        &produce_request(-1, "t", vec![(0, batch(&["hello"], TS))]),
    );
    drop(c);
    let mut cut = full[..full.len() - 20].to_vec();
    let size = (cut.len() - 4) as i32;
    cut[..4].copy_from_slice(&size.to_be_bytes());
    cases.push(("Produce v9 with a truncated body", cut));

    for (what, bytes) in cases {
        let mut bad = Client::connect(&agent);
        let _ = bad.write_raw(&bytes);
        bad.expect_closed(what);
        let resp = metadata(&mut healthy, 12, &[], true);
        assert_eq!(resp.brokers.len(), 1, "after {what}");
    }
    let mut fresh = Client::connect(&agent);
    assert_eq!(
        fresh.call(0, &ApiVersionsRequest::default()).error_code,
        NONE
    );
    assert_no_panic(&agent);
}

/// An array length near i32::MAX in a tiny request must be rejected as malformed, not sized up
/// front: the agent must survive it and keep serving other connections.
#[test]
fn huge_array_length_in_a_small_request_closes_only_that_connection() {
    let agent = Agent::start();
    let mut healthy = Client::connect(&agent);
    assert_eq!(metadata(&mut healthy, 1, &[], true).brokers.len(), 1);

    // Produce v3: null transactional id, acks, timeout, then 2^31-1 topics.
    let mut produce_v3 = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0x75, 0x30];
    produce_v3.extend(0x7fff_ffffi32.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "Metadata v1 with a 2^31-1 topic array",
            frame_for(
                ApiKey::Metadata as i16,
                1,
                7,
                1,
                &0x7fff_ffffi32.to_be_bytes(),
            ),
        ),
        (
            "Metadata v12 with a 2^32-2 compact topic array",
            frame_for(
                ApiKey::Metadata as i16,
                12,
                7,
                2,
                &[0xff, 0xff, 0xff, 0xff, 0x0f],
            ),
        ),
        (
            "Produce v3 with a 2^31-1 topic array",
            frame_for(ApiKey::Produce as i16, 3, 7, 1, &produce_v3),
        ),
    ];
    for (what, frame) in cases {
        let mut bad = Client::connect(&agent);
        let _ = bad.write_raw(&frame);
        bad.expect_closed(what);
        let resp = metadata(&mut healthy, 1, &[], true);
        assert_eq!(resp.brokers.len(), 1, "after {what}");
    }
    assert_no_panic(&agent);
}

// ---------------------------------------------------------------------------------------------
// Produce
// ---------------------------------------------------------------------------------------------

#[test]
fn produce_v9_and_v3_then_fetch_v12_and_v4_round_trip() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "round-trip";
    create_topic(&mut c, topic, 3, &[]);

    let n = 4usize;
    let mut expected: Vec<Vec<(i64, String)>> = vec![Vec::new(); 3];
    for p in 0..3i32 {
        for (round, version) in [(0usize, 9i16), (1, 3)] {
            let values: Vec<String> = (0..n).map(|i| format!("v{version}-p{p}-r{i}")).collect();
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let resp = produce(&mut c, version, topic, p, batch(&refs, TS + round as i64));
            assert_eq!(
                resp.error_code, NONE,
                "produce v{version} to partition {p}: {resp:?}"
            );
            let base = (round * n) as i64;
            assert_eq!(
                resp.base_offset, base,
                "base offset of produce v{version} to {p}"
            );
            for (i, v) in values.into_iter().enumerate() {
                expected[p as usize].push((base + i as i64, v));
            }
        }
    }

    for version in [12i16, 4] {
        let resp = c.call(
            version,
            &fetch_request(topic, &[(0, 0), (1, 0), (2, 0)], 1 << 20),
        );
        assert_eq!(resp.error_code, NONE);
        assert_eq!(resp.responses.len(), 1);
        assert_eq!(resp.responses[0].partitions.len(), 3);
        for p in 0..3i32 {
            let pd = fetch_partition(&resp, topic, p);
            assert_eq!(pd.error_code, NONE, "fetch v{version} partition {p}");
            assert_eq!(pd.high_watermark, 2 * n as i64, "high watermark of {p}");
            if version >= 5 {
                assert_eq!(pd.log_start_offset, 0);
            }
            let batches = parse_records(&pd.records);
            let bases: Vec<i64> = batches.iter().map(|b| b.base_offset).collect();
            assert_eq!(
                bases,
                vec![0, n as i64],
                "base offsets rewritten, v{version} p{p}"
            );
            assert_eq!(
                flatten(&batches),
                expected[p as usize],
                "records of {p}, v{version}"
            );
        }
        // read_committed: no transactions here, so the last stable offset is the high
        // watermark and the aborted-transaction list is empty (not null).
        let req = fetch_request(topic, &[(0, 0)], 1 << 20).with_isolation_level(1);
        let resp = c.call(version, &req);
        let pd = fetch_partition(&resp, topic, 0);
        assert_eq!(pd.error_code, NONE);
        assert_eq!((pd.high_watermark, pd.last_stable_offset), (8, 8));
        assert_eq!(pd.aborted_transactions.as_ref().map(Vec::len), Some(0));
        assert_eq!(flatten(&parse_records(&pd.records)), expected[0]);
    }
}

#[test]
fn produce_to_three_partitions_in_one_request() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "three";
    create_topic(&mut c, topic, 3, &[]);
    // Different amounts already in each partition, so every base offset differs.
    produce_ok(&mut c, topic, 1, batch(&["a"], TS), 0);
    produce_ok(&mut c, topic, 2, batch(&["a", "b"], TS), 0);

    for version in [3i16, 9] {
        let resp = c.call(
            version,
            &produce_request(
                -1,
                topic,
                vec![
                    (0, batch(&["x", "y"], TS)),
                    (1, batch(&["x"], TS)),
                    (2, batch(&["x", "y", "z"], TS)),
                ],
            ),
        );
        assert_eq!(resp.responses.len(), 1, "one topic answer");
        assert_eq!(
            resp.responses[0].partition_responses.len(),
            3,
            "three partition answers"
        );
        for p in 0..3 {
            assert_eq!(produce_partition(&resp, topic, p).error_code, NONE);
        }
        let bases: Vec<i64> = (0..3)
            .map(|p| produce_partition(&resp, topic, p).base_offset)
            .collect();
        if version == 3 {
            assert_eq!(bases, vec![0, 1, 2]);
        } else {
            assert_eq!(bases, vec![2, 2, 5]);
        }
    }
    let hws: Vec<i64> = (0..3)
        .map(|p| fetch_one(&mut c, topic, p, 0).high_watermark)
        .collect();
    assert_eq!(hws, vec![4, 3, 8]);
}

#[test]
fn produce_rejects_bad_batches_per_partition() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "bad-batches";
    create_topic(&mut c, topic, 3, &[]);

    // A corrupted CRC in one partition fails that partition only.
    let mut corrupt = batch(&["hello", "world"], TS).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    let resp = c.call(
        9,
        &produce_request(
            -1,
            topic,
            vec![
                (0, batch(&["a"], TS)),
                (1, Bytes::from(corrupt)),
                (2, batch(&["b", "c"], TS)),
            ],
        ),
    );
    let p0 = produce_partition(&resp, topic, 0);
    let p1 = produce_partition(&resp, topic, 1);
    let p2 = produce_partition(&resp, topic, 2);
    assert_eq!((p0.error_code, p0.base_offset), (NONE, 0));
    assert_eq!(p1.error_code, CORRUPT_MESSAGE, "{p1:?}");
    assert_eq!(p1.base_offset, -1);
    assert_eq!((p2.error_code, p2.base_offset), (NONE, 0));

    // Two batches in one partition's record set.
    let mut two = batch(&["a"], TS).to_vec();
    two.extend_from_slice(&batch(&["b"], TS));
    let p = produce(&mut c, 9, topic, 0, Bytes::from(two));
    assert_eq!(p.error_code, INVALID_RECORD, "{p:?}");

    // Unknown partitions.
    for bad in [3, 7, -1] {
        let p = produce(&mut c, 9, topic, bad, batch(&["a"], TS));
        assert_eq!(
            p.error_code, UNKNOWN_TOPIC_OR_PARTITION,
            "partition {bad}: {p:?}"
        );
    }

    // Nothing rejected was written: partition 1 is still empty, 0 and 2 hold the good batches.
    assert_eq!(fetch_one(&mut c, topic, 0, 0).high_watermark, 1);
    assert_eq!(fetch_one(&mut c, topic, 1, 0).high_watermark, 0);
    assert_eq!(fetch_one(&mut c, topic, 2, 0).high_watermark, 2);
    assert_no_panic(&agent);
}

#[test]
fn produce_enforces_the_topic_max_message_bytes() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "small-messages";
    create_topic(&mut c, topic, 1, &[("max.message.bytes", "1000")]);

    /// A one-record batch of exactly `size` bytes.
    fn batch_of_size(size: usize) -> Bytes {
        let mut value_len = size - 100;
        for _ in 0..4 {
            let b = batch(&[&"v".repeat(value_len)], TS);
            if b.len() == size {
                return b;
            }
            value_len = value_len + size - b.len();
        }
        panic!("could not build a batch of {size} bytes");
    }

    let p = produce(&mut c, 9, topic, 0, batch(&[&"x".repeat(2000)], TS));
    assert_eq!(p.error_code, MESSAGE_TOO_LARGE, "{p:?}");
    let p = produce(&mut c, 9, topic, 0, batch_of_size(1001));
    assert_eq!(p.error_code, MESSAGE_TOO_LARGE, "1001-byte batch: {p:?}");
    // The limit itself is allowed.
    let p = produce(&mut c, 9, topic, 0, batch_of_size(1000));
    assert_eq!(
        (p.error_code, p.base_offset),
        (NONE, 0),
        "1000-byte batch: {p:?}"
    );
}

#[test]
fn produce_compressed_batches_round_trip() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "compressed";
    create_topic(&mut c, topic, 1, &[]);
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut expected = Vec::new();
    for (i, codec) in codecs.iter().enumerate() {
        let values: Vec<String> = (0..5)
            .map(|k| format!("{codec:?}-{k}-{}", "x".repeat(50)))
            .collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let b = compressed_batch(&refs, *codec);
        produce_ok(&mut c, topic, 0, b, 5 * i as i64);
        for (k, v) in values.into_iter().enumerate() {
            expected.push(((5 * i + k) as i64, v));
        }
    }
    let (hw, batches) = read_all(&mut c, 12, topic, 0);
    assert_eq!(hw, 25);
    assert_eq!(flatten(&batches), expected);
}

#[test]

fn produce_zstd_before_v7_is_rejected() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "zstd-old";
    create_topic(&mut c, topic, 1, &[]);
    let p = produce(
        &mut c,
        3,
        topic,
        0,
        compressed_batch(&["a"], Compression::Zstd),
    );
    assert_eq!(p.error_code, 76, "UNSUPPORTED_COMPRESSION_TYPE: {p:?}");
    // Produce v7 may carry ZSTD.
    let p = produce(
        &mut c,
        7,
        topic,
        0,
        compressed_batch(&["a"], Compression::Zstd),
    );
    assert_eq!((p.error_code, p.base_offset), (NONE, 0));
}

/// Kafka's ProduceRequest.validateRecords answers INVALID_RECORD (87) for a record set without
/// a whole batch and for a batch whose magic is not 2.
#[test]

fn produce_old_magic_and_truncated_record_sets_get_invalid_record() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "invalid-records";
    create_topic(&mut c, topic, 1, &[]);
    let good = batch(&["a", "b"], TS);
    let mut magic1 = good.to_vec();
    magic1[16] = 1;
    let old_magic = produce(&mut c, 9, topic, 0, Bytes::from(magic1)).error_code;
    let truncated = produce(&mut c, 9, topic, 0, good.slice(..good.len() - 3)).error_code;
    assert_eq!(
        (old_magic, truncated),
        (INVALID_RECORD, INVALID_RECORD),
        "(magic 1, truncated batch)"
    );
}

/// Kafka decodes every record of an appended batch (LogValidator) and refuses records that do
/// not parse; a batch whose CRC is right but whose records are garbage is never stored, so no
/// consumer is handed it.
#[test]

fn produce_rejects_a_batch_whose_records_do_not_parse() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "garbage-records";
    create_topic(&mut c, topic, 1, &[]);
    let bad = raw_batch(2, 1, &[0x7f; 24]);
    assert!(
        RecordBatchDecoder::decode_all(&mut bad.clone()).is_err(),
        "the records do not parse"
    );
    let p = produce(&mut c, 9, topic, 0, bad);
    assert!(
        p.error_code == INVALID_RECORD || p.error_code == CORRUPT_MESSAGE,
        "expected INVALID_RECORD or CORRUPT_MESSAGE, got {p:?}"
    );
    assert_eq!(fetch_one(&mut c, topic, 0, 0).high_watermark, 0);
}

#[test]

fn produce_response_reports_the_log_start_offset() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "log-start";
    create_topic(&mut c, topic, 1, &[]);
    let p = produce(&mut c, 9, topic, 0, batch(&["a"], TS));
    assert_eq!((p.error_code, p.base_offset), (NONE, 0));
    assert_eq!(p.log_start_offset, 0);
}

#[test]
fn concurrent_producers_on_many_connections_get_distinct_offsets() {
    let agent = Agent::start();
    let topic = "concurrent";
    let mut admin = Client::connect(&agent);
    create_topic(&mut admin, topic, 1, &[]);

    // Four connections (so both shards take part), each pipelining ten requests.
    let mut clients: Vec<Client> = (0..4).map(|_| Client::connect(&agent)).collect();
    let mut sent: Vec<Vec<(i32, Vec<String>)>> = Vec::new();
    for (ci, c) in clients.iter_mut().enumerate() {
        let mut bytes = Vec::new();
        let mut ids = Vec::new();
        for r in 0..10 {
            let values: Vec<String> = (0..1 + r % 3).map(|k| format!("c{ci}-r{r}-k{k}")).collect();
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let (id, frame) = c.encode(9, &produce_request(-1, topic, vec![(0, batch(&refs, TS))]));
            bytes.extend(frame);
            ids.push((id, values));
        }
        c.write_raw(&bytes).unwrap();
        sent.push(ids);
    }
    let mut expected: Vec<(i64, String)> = Vec::new();
    for (c, ids) in clients.iter_mut().zip(&sent) {
        let mut last_base = -1;
        for (id, values) in ids {
            let (got, resp) = c.recv::<ProduceRequest>(9);
            assert_eq!(got, *id);
            let p = produce_partition(&resp, topic, 0);
            assert_eq!(p.error_code, NONE);
            assert!(
                p.base_offset > last_base,
                "one connection's requests keep their order"
            );
            last_base = p.base_offset;
            for (k, v) in values.iter().enumerate() {
                expected.push((p.base_offset + k as i64, v.clone()));
            }
        }
    }
    expected.sort();
    let offsets: Vec<i64> = expected.iter().map(|e| e.0).collect();
    let total = offsets.len() as i64;
    assert_eq!(
        offsets,
        (0..total).collect::<Vec<_>>(),
        "offsets are distinct and gapless"
    );
    let (hw, batches) = read_all(&mut admin, 12, topic, 0);
    assert_eq!(hw, total);
    assert_eq!(flatten(&batches), expected);
}

#[test]
fn produce_with_invalid_acks_is_rejected() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "acks";
    create_topic(&mut c, topic, 2, &[]);
    for acks in [2i16, -2, 5] {
        let resp = c.call(
            9,
            &produce_request(
                acks,
                topic,
                vec![(0, batch(&["a"], TS)), (1, batch(&["b"], TS))],
            ),
        );
        for p in 0..2 {
            let pr = produce_partition(&resp, topic, p);
            assert_eq!(pr.error_code, INVALID_REQUIRED_ACKS, "acks={acks}: {pr:?}");
        }
    }
    assert_eq!(fetch_one(&mut c, topic, 0, 0).high_watermark, 0);
    // acks=1 is accepted.
    let resp = c.call(9, &produce_request(1, topic, vec![(0, batch(&["a"], TS))]));
    assert_eq!(produce_partition(&resp, topic, 0).error_code, NONE);
}

#[test]
fn produce_with_acks_zero_sends_no_response() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "fire-and-forget";
    create_topic(&mut c, topic, 1, &[]);

    let produce_id = c.send(
        9,
        &produce_request(0, topic, vec![(0, batch(&["silent"], TS))]),
    );
    let metadata_id = c.send(12, &MetadataRequest::default());
    assert_ne!(produce_id, metadata_id);
    let (got, resp) = c.recv::<MetadataRequest>(12);
    assert_eq!(got, metadata_id, "the first answer is the Metadata one");
    assert_eq!(resp.brokers.len(), 1);

    // The record lands: a long-polling fetch sees it (max_wait bounds the wait).
    let req = fetch_request(topic, &[(0, 0)], 1 << 20)
        .with_max_wait_ms(10_000)
        .with_min_bytes(1);
    let resp = c.call(12, &req);
    let pd = fetch_partition(&resp, topic, 0);
    assert_eq!(pd.error_code, NONE);
    assert_eq!(
        flatten(&parse_records(&pd.records)),
        vec![(0, "silent".to_string())]
    );

    // Also in Produce v3, and the connection keeps answering in order afterwards.
    c.send(
        3,
        &produce_request(0, topic, vec![(0, batch(&["silent-v3"], TS))]),
    );
    let id = c.send(1, &MetadataRequest::default().with_topics(None));
    let (got, _) = c.recv::<MetadataRequest>(1);
    assert_eq!(got, id);
}

/// With acks=0 the producer sees no answer, so Kafka closes the connection when such a request
/// fails: the producer notices, refreshes its metadata and reconnects.
#[test]

fn produce_with_acks_zero_that_fails_closes_the_connection() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "acks-zero-errors";
    create_topic(&mut c, topic, 1, &[]);
    c.send(
        9,
        &produce_request(0, topic, vec![(5, batch(&["nowhere"], TS))]),
    );
    c.send(12, &MetadataRequest::default());
    c.expect_closed("acks=0 Produce to an unknown partition");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "pipelined";
    create_topic(&mut c, topic, 1, &[]);

    enum Sent {
        Produce(i32, usize),
        Metadata(i32),
    }
    let mut sent = Vec::new();
    let mut bytes = Vec::new();
    let mut produce_index = 0usize;
    for i in 0..20 {
        if i % 2 == 0 || i % 5 == 0 {
            let values = [format!("req{i}-a"), format!("req{i}-b")];
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let (id, frame) = c.encode(9, &produce_request(-1, topic, vec![(0, batch(&refs, TS))]));
            bytes.extend(frame);
            sent.push(Sent::Produce(id, produce_index));
            produce_index += 1;
        } else {
            let (id, frame) = c.encode(12, &MetadataRequest::default().with_topics(None));
            bytes.extend(frame);
            sent.push(Sent::Metadata(id));
        }
    }
    // All 20 in one write, nothing read in between.
    c.write_raw(&bytes).unwrap();

    for s in &sent {
        match s {
            Sent::Produce(id, index) => {
                let (got, resp) = c.recv::<ProduceRequest>(9);
                assert_eq!(got, *id, "correlation ids come back in request order");
                let p = produce_partition(&resp, topic, 0);
                assert_eq!(p.error_code, NONE);
                // Requests on one connection are appended in the order they were sent.
                assert_eq!(p.base_offset, 2 * *index as i64, "produce #{index}");
            }
            Sent::Metadata(id) => {
                let (got, resp) = c.recv::<MetadataRequest>(12);
                assert_eq!(got, *id, "correlation ids come back in request order");
                assert!(resp
                    .topics
                    .iter()
                    .any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic)));
            }
        }
    }
    let (hw, batches) = read_all(&mut c, 12, topic, 0);
    assert_eq!(hw, 2 * produce_index as i64);
    assert_eq!(batches.len(), produce_index);

    // More requests than the agent keeps in flight per connection.
    let mut bytes = Vec::new();
    let mut ids = Vec::new();
    for i in 0..100 {
        let (id, frame) = if i % 3 == 0 {
            c.encode(3, &named_api_versions())
        } else {
            c.encode(12, &fetch_request(topic, &[(0, 0)], 1 << 20))
        };
        bytes.extend(frame);
        ids.push((i, id));
    }
    c.write_raw(&bytes).unwrap();
    for (i, id) in ids {
        let got = if i % 3 == 0 {
            c.recv::<ApiVersionsRequest>(3).0
        } else {
            let (got, resp) = c.recv::<FetchRequest>(12);
            assert_eq!(fetch_partition(&resp, topic, 0).high_watermark, hw);
            got
        };
        assert_eq!(got, id, "response #{i}");
    }
}

// ---------------------------------------------------------------------------------------------
// Fetch
// ---------------------------------------------------------------------------------------------

#[test]
fn fetch_out_of_range_and_at_the_high_watermark() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "ranges";
    create_topic(&mut c, topic, 1, &[]);
    produce_ok(&mut c, topic, 0, batch(&["a", "b", "c"], TS), 0);

    for version in [4i16, 12] {
        for offset in [4i64, 10, 1 << 40, -5] {
            let resp = c.call(version, &fetch_request(topic, &[(0, offset)], 1 << 20));
            let pd = fetch_partition(&resp, topic, 0);
            assert_eq!(
                pd.error_code, OFFSET_OUT_OF_RANGE,
                "v{version} offset {offset}"
            );
            assert_eq!(pd.high_watermark, 3, "high watermark with the error");
            if version >= 5 {
                assert_eq!(pd.log_start_offset, 0, "log start offset with the error");
            }
            assert_eq!(records_len(pd), 0);
        }
        // At the high watermark: no error, no records, at once.
        let resp = c.call(version, &fetch_request(topic, &[(0, 3)], 1 << 20));
        let pd = fetch_partition(&resp, topic, 0);
        assert_eq!(pd.error_code, NONE);
        assert_eq!(pd.high_watermark, 3);
        assert_eq!(records_len(pd), 0);
    }
    // An unknown topic and an unknown partition.
    let resp = c.call(12, &fetch_request("no-such-topic", &[(0, 0)], 1 << 20));
    assert_eq!(
        fetch_partition(&resp, "no-such-topic", 0).error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let resp = c.call(12, &fetch_request(topic, &[(1, 0)], 1 << 20));
    assert_eq!(
        fetch_partition(&resp, topic, 1).error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // Fetch does not auto-create.
    let m = metadata(&mut c, 12, &["no-such-topic"], false);
    assert_eq!(
        metadata_topic(&m, "no-such-topic").error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn fetch_partition_max_bytes_keeps_the_first_batch_rule() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "first-batch";
    create_topic(&mut c, topic, 1, &[]);
    let first = batch(&["first-1", "first-2", "first-3"], TS);
    let second = batch(&["second-1", "second-2"], TS);
    produce_ok(&mut c, topic, 0, first.clone(), 0);
    produce_ok(&mut c, topic, 0, second.clone(), 3);

    let bases = |c: &mut Client, limit: i32| -> Vec<i64> {
        let resp = c.call(12, &fetch_request(topic, &[(0, 0)], limit));
        let pd = fetch_partition(&resp, topic, 0);
        assert_eq!(pd.error_code, NONE);
        assert_eq!(pd.high_watermark, 5);
        parse_records(&pd.records)
            .iter()
            .map(|b| b.base_offset)
            .collect()
    };
    // Smaller than the first batch: that batch alone, whole.
    assert_eq!(bases(&mut c, 1), vec![0]);
    assert_eq!(bases(&mut c, 10), vec![0]);
    // One byte short of both: the first only.
    let both = (first.len() + second.len()) as i32;
    assert_eq!(bases(&mut c, both - 1), vec![0]);
    // Room for both.
    assert_eq!(bases(&mut c, both), vec![0, 3]);
    // The rule holds from the middle of the log too.
    let resp = c.call(12, &fetch_request(topic, &[(0, 3)], 1));
    let got = parse_records(&fetch_partition(&resp, topic, 0).records);
    assert_eq!(
        flatten(&got),
        vec![(3, "second-1".to_string()), (4, "second-2".to_string())]
    );
}

#[test]
fn fetch_max_bytes_stops_after_the_first_partition() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "two-parts";
    create_topic(&mut c, topic, 2, &[]);
    let b0 = batch(&["zero-a", "zero-b"], TS);
    let b1 = batch(&["one-a", "one-b", "one-c"], TS);
    produce_ok(&mut c, topic, 0, b0.clone(), 0);
    produce_ok(&mut c, topic, 1, b1.clone(), 0);
    let both = (b0.len() + b1.len()) as i32;

    let fetch = |c: &mut Client, max_bytes: i32| -> (Vec<Fetched>, Vec<Fetched>) {
        let req = fetch_request(topic, &[(0, 0), (1, 0)], 1 << 20).with_max_bytes(max_bytes);
        let resp = c.call(12, &req);
        let p0 = fetch_partition(&resp, topic, 0);
        let p1 = fetch_partition(&resp, topic, 1);
        assert_eq!((p0.error_code, p1.error_code), (NONE, NONE));
        assert_eq!((p0.high_watermark, p1.high_watermark), (2, 3));
        (parse_records(&p0.records), parse_records(&p1.records))
    };
    let (p0, p1) = fetch(&mut c, both - 1);
    assert_eq!(p0.len(), 1, "the first partition's batch");
    assert!(p1.is_empty(), "nothing from the second partition: {p1:?}");
    // Smaller than even the first batch: still that batch, and nothing more.
    let (p0, p1) = fetch(&mut c, 1);
    assert_eq!(p0.len(), 1);
    assert!(p1.is_empty());
    let (p0, p1) = fetch(&mut c, both);
    assert_eq!((p0.len(), p1.len()), (1, 1));
}

#[test]
fn fetch_from_the_middle_of_a_batch_returns_the_whole_batch() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "middle";
    create_topic(&mut c, topic, 1, &[]);
    produce_ok(&mut c, topic, 0, batch(&["a", "b"], TS), 0);
    produce_ok(&mut c, topic, 0, batch(&["c", "d", "e", "f", "g"], TS), 2);
    produce_ok(&mut c, topic, 0, batch(&["h"], TS), 7);

    for version in [4i16, 12] {
        let resp = c.call(version, &fetch_request(topic, &[(0, 4)], 1 << 20));
        let pd = fetch_partition(&resp, topic, 0);
        assert_eq!(pd.error_code, NONE);
        let batches = parse_records(&pd.records);
        let bases: Vec<i64> = batches.iter().map(|b| b.base_offset).collect();
        assert_eq!(
            bases,
            vec![2, 7],
            "the batch holding offset 4, then the next"
        );
        assert!(batches[0].base_offset < 4);
        let offsets: Vec<i64> = flatten(&batches).iter().map(|r| r.0).collect();
        assert_eq!(offsets, vec![2, 3, 4, 5, 6, 7]);
    }
}

#[test]
fn fetch_long_poll_answers_when_a_record_arrives() {
    let agent = Agent::start();
    let mut admin = Client::connect(&agent);
    let topic = "long-poll";
    create_topic(&mut admin, topic, 1, &[]);
    produce_ok(&mut admin, topic, 0, batch(&["before"], TS), 0);

    let mut consumer = Client::connect(&agent);
    consumer
        .stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let req = fetch_request(topic, &[(0, 1)], 1 << 20)
        .with_max_wait_ms(10_000)
        .with_min_bytes(1);
    let id = consumer.send(12, &req);
    // Give the fetch a chance to park first (not asserted: it answers the same either way).
    std::thread::sleep(Duration::from_millis(300));

    let mut producer = Client::connect(&agent);
    produce_ok(&mut producer, topic, 0, batch(&["after"], TS), 1);

    let (got, resp) = consumer.recv::<FetchRequest>(12);
    assert_eq!(got, id);
    let pd = fetch_partition(&resp, topic, 0);
    assert_eq!(pd.error_code, NONE);
    assert_eq!(pd.high_watermark, 2);
    assert_eq!(
        flatten(&parse_records(&pd.records)),
        vec![(1, "after".to_string())]
    );

    // min_bytes never reached: the answer comes at max_wait_ms with what there is.
    let req = fetch_request(topic, &[(0, 0)], 1 << 20)
        .with_max_wait_ms(500)
        .with_min_bytes(1 << 20);
    let resp = consumer.call(12, &req);
    let pd = fetch_partition(&resp, topic, 0);
    assert_eq!(pd.error_code, NONE);
    assert_eq!(
        flatten(&parse_records(&pd.records)),
        vec![(0, "before".to_string()), (1, "after".to_string())]
    );
}

#[test]
fn fetch_with_a_session_id_is_rejected() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "sessions";
    create_topic(&mut c, topic, 1, &[]);
    produce_ok(&mut c, topic, 0, batch(&["a"], TS), 0);
    for version in [7i16, 12] {
        let req = fetch_request(topic, &[(0, 0)], 1 << 20)
            .with_session_id(12345)
            .with_session_epoch(1);
        let resp = c.call(version, &req);
        assert_eq!(resp.error_code, FETCH_SESSION_ID_NOT_FOUND, "v{version}");
        // A sessionless full fetch works, and no session is created.
        let resp = c.call(version, &fetch_request(topic, &[(0, 0)], 1 << 20));
        assert_eq!(resp.error_code, NONE);
        assert_eq!(resp.session_id, 0);
        assert_eq!(fetch_partition(&resp, topic, 0).high_watermark, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// ListOffsets
// ---------------------------------------------------------------------------------------------

#[test]
fn list_offsets_earliest_latest_and_by_timestamp() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "offsets";
    create_topic(&mut c, topic, 2, &[]);
    produce_ok(&mut c, topic, 0, batch(&["t1000"], 1000), 0);
    produce_ok(&mut c, topic, 0, batch(&["t2000"], 2000), 1);
    produce_ok(&mut c, topic, 0, batch(&["t3000"], 3000), 2);

    for version in [1i16, 7] {
        let r = list_offsets(
            &mut c,
            version,
            topic,
            &[(0, -2), (0, -1), (1, -2), (1, -1)],
        );
        let got: Vec<(i32, i16, i64)> = r
            .iter()
            .map(|p| (p.partition_index, p.error_code, p.offset))
            .collect();
        assert_eq!(
            got,
            vec![(0, NONE, 0), (0, NONE, 3), (1, NONE, 0), (1, NONE, 0)],
            "v{version}"
        );

        let r = list_offsets(
            &mut c,
            version,
            topic,
            &[
                (0, 0),
                (0, 1000),
                (0, 1500),
                (0, 2000),
                (0, 3000),
                (0, 3001),
            ],
        );
        let got: Vec<(i16, i64, i64)> = r
            .iter()
            .map(|p| (p.error_code, p.offset, p.timestamp))
            .collect();
        assert_eq!(
            got,
            vec![
                (NONE, 0, 1000),
                (NONE, 0, 1000),
                (NONE, 1, 2000),
                (NONE, 1, 2000),
                (NONE, 2, 3000),
                (NONE, -1, -1),
            ],
            "v{version} timestamp lookups"
        );
        let r = list_offsets(&mut c, version, topic, &[(5, -1)]);
        assert_eq!(r[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    }
    // MAX_TIMESTAMP (v7+): the record with the largest timestamp.
    let r = list_offsets(&mut c, 7, topic, &[(0, -3), (1, -3)]);
    assert_eq!(
        (r[0].error_code, r[0].offset, r[0].timestamp),
        (NONE, 2, 3000)
    );
    assert_eq!(
        (r[1].error_code, r[1].offset),
        (NONE, -1),
        "empty partition"
    );
    // A timestamp lookup on an empty partition.
    let r = list_offsets(&mut c, 7, topic, &[(1, 500)]);
    assert_eq!((r[0].error_code, r[0].offset), (NONE, -1));
}

/// Kafka answers a timestamp lookup with the first *record* whose timestamp reaches the target
/// and MAX_TIMESTAMP with the record holding the largest timestamp, looking inside batches.
#[test]

fn list_offsets_by_timestamp_looks_inside_batches() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "offsets-in-batch";
    create_topic(&mut c, topic, 1, &[]);
    // Offsets 0, 1, 2 with timestamps 1000, 2000, 3000 in one batch; then 3 with 2500.
    produce_ok(
        &mut c,
        topic,
        0,
        batch_ts(&[("a", 1000), ("b", 3000), ("c", 2000)]),
        0,
    );
    produce_ok(&mut c, topic, 0, batch_ts(&[("d", 2500)]), 3);
    let r = list_offsets(&mut c, 7, topic, &[(0, 1500), (0, 2600), (0, -3)]);
    let got: Vec<(i64, i64)> = r.iter().map(|p| (p.offset, p.timestamp)).collect();
    assert_eq!(got, vec![(1, 3000), (1, 3000), (1, 3000)]);
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

#[test]
fn metadata_auto_creates_and_reports_errors() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);

    // v1 auto-creates (no flag before v4).
    let resp = metadata(&mut c, 1, &["auto-v1"], true);
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(resp.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(resp.brokers[0].port, i32::from(agent.port));
    let t = metadata_topic(&resp, "auto-v1");
    assert_eq!(t.error_code, NONE);
    assert_eq!(t.partitions.len(), 1);
    assert_eq!(t.partitions[0].leader_id, resp.brokers[0].node_id);

    // v12 auto-creates and shows the topic id, the same on a second look.
    let resp = metadata(&mut c, 12, &["auto-v12"], true);
    let t = metadata_topic(&resp, "auto-v12");
    assert_eq!(t.error_code, NONE);
    assert!(!t.topic_id.is_nil(), "auto-created topic has an id");
    let id = t.topic_id;
    let again = metadata(&mut c, 12, &["auto-v12", "auto-v1"], false);
    assert_eq!(metadata_topic(&again, "auto-v12").topic_id, id);
    assert!(!metadata_topic(&again, "auto-v1").topic_id.is_nil());

    // v10+ by topic id, known and unknown.
    let by_id = c.call(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default()
                    .with_name(None)
                    .with_topic_id(id),
                MetadataRequestTopic::default()
                    .with_name(None)
                    .with_topic_id(Uuid::from_u128(42)),
            ]))
            .with_allow_auto_topic_creation(false),
    );
    assert_eq!(by_id.topics.len(), 2);
    assert_eq!(by_id.topics[0].error_code, NONE);
    assert_eq!(
        by_id.topics[0].name.as_ref().map(|n| n.0.as_str()),
        Some("auto-v12")
    );
    assert_eq!(by_id.topics[1].error_code, UNKNOWN_TOPIC_ID);

    // v0: an empty list means every topic; v1+: a null list does.
    let all_v0 = c.call(0, &MetadataRequest::default().with_topics(Some(vec![])));
    let all_v1 = c.call(1, &MetadataRequest::default().with_topics(None));
    let none_v1 = c.call(1, &MetadataRequest::default().with_topics(Some(vec![])));
    for all in [&all_v0, &all_v1] {
        let mut names: Vec<&str> = all
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
            .collect();
        names.sort();
        assert_eq!(names, vec!["auto-v1", "auto-v12"]);
    }
    assert!(none_v1.topics.is_empty());

    // Invalid names.
    for version in [1i16, 12] {
        for bad in ["bad name", "..", &"x".repeat(250)] {
            let resp = metadata(&mut c, version, &[bad], true);
            assert_eq!(
                metadata_topic(&resp, bad).error_code,
                INVALID_TOPIC_EXCEPTION,
                "v{version} {bad:?}"
            );
        }
    }

    // allow_auto_topic_creation=false (v4+): unknown stays unknown.
    for version in [4i16, 12] {
        let name = format!("not-created-v{version}");
        let resp = metadata(&mut c, version, &[&name], false);
        assert_eq!(
            metadata_topic(&resp, &name).error_code,
            UNKNOWN_TOPIC_OR_PARTITION
        );
        let all = c.call(version, &MetadataRequest::default().with_topics(None));
        assert!(
            !all.topics
                .iter()
                .any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(&name)),
            "{name} must not exist"
        );
    }
}

#[test]
fn metadata_does_not_auto_create_when_the_agent_forbids_it() {
    let agent = Agent::start_with(&["--auto-create-topics", "false"]);
    let mut c = Client::connect(&agent);
    for version in [1i16, 12] {
        let name = format!("never-v{version}");
        let resp = metadata(&mut c, version, &[&name], true);
        assert_eq!(
            metadata_topic(&resp, &name).error_code,
            UNKNOWN_TOPIC_OR_PARTITION
        );
    }
    // Produce to an unknown topic does not create it either.
    let p = produce(&mut c, 9, "never-produced", 0, batch(&["a"], TS));
    assert_eq!(p.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let all = c.call(12, &MetadataRequest::default().with_topics(None));
    assert!(all.topics.is_empty(), "no topic exists: {all:?}");
    // Explicit creation still works.
    create_topic(&mut c, "explicit", 1, &[]);
    let resp = metadata(&mut c, 12, &["explicit"], true);
    assert_eq!(metadata_topic(&resp, "explicit").error_code, NONE);
}

// ---------------------------------------------------------------------------------------------
// Admin APIs
// ---------------------------------------------------------------------------------------------

#[test]
fn create_topics_validates_and_reports_errors() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    for version in [2i16, 7] {
        let name = format!("created-v{version}");
        let r = create_topics(&mut c, version, vec![creatable(&name, 3, &[])], false);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].name.0.as_str(), name);
        assert_eq!(r[0].error_code, NONE, "{r:?}");
        if version >= 7 {
            assert!(!r[0].topic_id.is_nil());
            assert_eq!(r[0].num_partitions, 3);
            assert!(r[0].configs.as_ref().is_some_and(|c| !c.is_empty()));
        }
        let m = metadata(&mut c, 12, &[&name], false);
        assert_eq!(metadata_topic(&m, &name).partitions.len(), 3);

        let dup = create_topics(&mut c, version, vec![creatable(&name, 3, &[])], false);
        assert_eq!(dup[0].error_code, TOPIC_ALREADY_EXISTS, "{dup:?}");

        let zero = format!("zero-v{version}");
        let r = create_topics(&mut c, version, vec![creatable(&zero, 0, &[])], false);
        assert_eq!(r[0].error_code, INVALID_PARTITIONS, "{r:?}");

        let cfg = format!("bad-config-v{version}");
        let r = create_topics(
            &mut c,
            version,
            vec![creatable(&cfg, 1, &[("no.such.config", "1")])],
            false,
        );
        assert_eq!(r[0].error_code, INVALID_CONFIG, "{r:?}");
        let r = create_topics(
            &mut c,
            version,
            vec![creatable(&cfg, 1, &[("retention.ms", "soon")])],
            false,
        );
        assert_eq!(r[0].error_code, INVALID_CONFIG, "{r:?}");

        let r = create_topics(&mut c, version, vec![creatable("bad/name", 1, &[])], false);
        assert_eq!(r[0].error_code, INVALID_TOPIC_EXCEPTION, "{r:?}");

        let dry = format!("dry-run-v{version}");
        let r = create_topics(&mut c, version, vec![creatable(&dry, 2, &[])], true);
        assert_eq!(r[0].error_code, NONE, "{r:?}");
        // A dry run of an existing topic reports it.
        let r = create_topics(&mut c, version, vec![creatable(&name, 2, &[])], true);
        assert_eq!(r[0].error_code, TOPIC_ALREADY_EXISTS, "{r:?}");

        // None of the failed or validate-only topics exists.
        for absent in [&zero, &cfg, &dry] {
            let m = metadata(&mut c, 12, &[absent], false);
            assert_eq!(
                metadata_topic(&m, absent).error_code,
                UNKNOWN_TOPIC_OR_PARTITION,
                "{absent} must not exist"
            );
        }
    }
    // v4+: -1 partitions and replication factor take the agent defaults.
    let r = create_topics(
        &mut c,
        7,
        vec![CreatableTopic::default()
            .with_name(tn("defaults"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)],
        false,
    );
    assert_eq!(r[0].error_code, NONE, "{r:?}");
    assert_eq!(r[0].num_partitions, 1);
    let m = metadata(&mut c, 12, &["defaults"], false);
    assert_eq!(metadata_topic(&m, "defaults").partitions.len(), 1);

    // Several topics in one request get one result each, in order.
    let r = create_topics(
        &mut c,
        7,
        vec![
            creatable("multi-a", 1, &[]),
            creatable("created-v7", 1, &[]),
            creatable("multi-b", 2, &[]),
        ],
        false,
    );
    let codes: Vec<i16> = r.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![NONE, TOPIC_ALREADY_EXISTS, NONE]);
}

/// Kafka refuses every entry of a name given twice in one CreateTopics request with
/// INVALID_REQUEST ("Duplicate topic name.") and creates none of them.
#[test]

fn create_topics_with_a_duplicate_name_creates_nothing() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let r = create_topics(
        &mut c,
        7,
        vec![
            creatable("twice", 1, &[]),
            creatable("twice", 2, &[]),
            creatable("once", 1, &[]),
        ],
        false,
    );
    for t in &r {
        let expected = if t.name.0.as_str() == "twice" {
            INVALID_REQUEST
        } else {
            NONE
        };
        assert_eq!(t.error_code, expected, "{r:?}");
    }
    let m = metadata(&mut c, 12, &["twice"], false);
    assert_eq!(
        metadata_topic(&m, "twice").error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn create_partitions_grows_and_refuses_to_shrink() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "growing";
    create_topic(&mut c, topic, 2, &[]);
    produce_ok(&mut c, topic, 1, batch(&["kept"], TS), 0);

    let grow = |c: &mut Client, version: i16, count: i32, validate_only: bool| -> i16 {
        let resp = c.call(
            version,
            &CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(tn(topic))
                    .with_count(count)])
                .with_timeout_ms(30_000)
                .with_validate_only(validate_only),
        );
        assert_eq!(resp.results.len(), 1);
        assert_eq!(resp.results[0].name.0.as_str(), topic);
        resp.results[0].error_code
    };
    // A dry run changes nothing.
    assert_eq!(grow(&mut c, 0, 4, true), NONE);
    assert_eq!(
        metadata_topic(&metadata(&mut c, 12, &[topic], false), topic)
            .partitions
            .len(),
        2
    );

    assert_eq!(grow(&mut c, 3, 4, false), NONE);
    let m = metadata(&mut c, 12, &[topic], false);
    let t = metadata_topic(&m, topic);
    let indexes: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    assert_eq!(indexes, vec![0, 1, 2, 3]);
    produce_ok(&mut c, topic, 3, batch(&["new"], TS), 0);
    assert_eq!(
        flatten(&parse_records(&fetch_one(&mut c, topic, 3, 0).records)),
        vec![(0, "new".to_string())]
    );
    // Old partitions keep their data.
    assert_eq!(fetch_one(&mut c, topic, 1, 0).high_watermark, 1);

    for version in [0i16, 3] {
        assert_eq!(
            grow(&mut c, version, 3, false),
            INVALID_PARTITIONS,
            "shrink v{version}"
        );
        assert_eq!(
            grow(&mut c, version, 4, false),
            INVALID_PARTITIONS,
            "same count v{version}"
        );
    }
    let resp = c.call(
        3,
        &CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(tn("nope"))
                .with_count(3)])
            .with_timeout_ms(30_000),
    );
    assert_eq!(resp.results[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let m = metadata(&mut c, 12, &[topic], false);
    assert_eq!(metadata_topic(&m, topic).partitions.len(), 4);
}

#[test]
fn delete_topics_by_name_and_by_id() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);

    // v1, by name.
    let topic = "doomed";
    let first_id = create_topic(&mut c, topic, 1, &[]);
    produce_ok(&mut c, topic, 0, batch(&["old-1", "old-2"], TS), 0);
    let resp = c.call(
        1,
        &DeleteTopicsRequest::default()
            .with_topic_names(vec![tn(topic), tn("never-existed")])
            .with_timeout_ms(30_000),
    );
    let codes: Vec<(String, i16)> = resp
        .responses
        .iter()
        .map(|r| (r.name.as_ref().unwrap().0.to_string(), r.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            (topic.to_string(), NONE),
            ("never-existed".to_string(), UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    let resp = c.call(12, &fetch_request(topic, &[(0, 0)], 1 << 20));
    assert_eq!(
        fetch_partition(&resp, topic, 0).error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let m = metadata(&mut c, 12, &[topic], false);
    assert_eq!(
        metadata_topic(&m, topic).error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    // Recreated: a new id, an empty log starting at 0 again.
    let second_id = create_topic(&mut c, topic, 1, &[]);
    assert_ne!(first_id, second_id);
    let pd = fetch_one(&mut c, topic, 0, 0);
    assert_eq!((pd.high_watermark, records_len(&pd)), (0, 0));
    produce_ok(&mut c, topic, 0, batch(&["new"], TS), 0);
    assert_eq!(
        flatten(&parse_records(&fetch_one(&mut c, topic, 0, 0).records)),
        vec![(0, "new".to_string())]
    );

    // v6, by topic id.
    let resp = c.call(
        6,
        &DeleteTopicsRequest::default()
            .with_topics(vec![
                DeleteTopicState::default().with_topic_id(second_id),
                DeleteTopicState::default().with_topic_id(first_id),
            ])
            .with_timeout_ms(30_000),
    );
    assert_eq!(resp.responses.len(), 2);
    assert_eq!(resp.responses[0].error_code, NONE, "{resp:?}");
    assert_eq!(resp.responses[0].topic_id, second_id);
    assert_eq!(
        resp.responses[0].name.as_ref().map(|n| n.0.as_str()),
        Some(topic)
    );
    assert_eq!(
        resp.responses[1].error_code, UNKNOWN_TOPIC_ID,
        "an id already deleted"
    );
    let resp = c.call(12, &fetch_request(topic, &[(0, 0)], 1 << 20));
    assert_eq!(
        fetch_partition(&resp, topic, 0).error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // A third incarnation starts at 0 too.
    create_topic(&mut c, topic, 1, &[]);
    produce_ok(&mut c, topic, 0, batch(&["third"], TS), 0);

    // v6 by name works too.
    let resp = c.call(
        6,
        &DeleteTopicsRequest::default()
            .with_topics(vec![DeleteTopicState::default().with_name(Some(tn(topic)))])
            .with_timeout_ms(30_000),
    );
    assert_eq!(resp.responses[0].error_code, NONE, "{resp:?}");
    assert!(!resp.responses[0].topic_id.is_nil());
}

#[test]
fn describe_configs_for_topics_and_the_broker() {
    let agent = Agent::start();
    let mut c = Client::connect(&agent);
    let topic = "configured";
    create_topic(&mut c, topic, 1, &[("retention.ms", "1234")]);

    for version in [1i16, 4] {
        let r = describe_configs(&mut c, version, 2, topic, None);
        assert_eq!(r.error_code, NONE, "{r:?}");
        assert_eq!(r.resource_name.as_str(), topic);
        assert_eq!(
            config_value(&r, "retention.ms"),
            ("1234".to_string(), 1),
            "override, v{version}"
        );
        let (value, source) = config_value(&r, "max.message.bytes");
        assert_eq!(value, "1048588");
        assert!(source == 5 || source == 4, "default source, got {source}");
        let (policy, _) = config_value(&r, "cleanup.policy");
        assert_eq!(policy, "delete");
        if version >= 3 {
            let ty = |name: &str| {
                r.configs
                    .iter()
                    .find(|c| c.name.as_str() == name)
                    .unwrap()
                    .config_type
            };
            // INT 3, LONG 5, LIST 7.
            assert_eq!(
                (
                    ty("max.message.bytes"),
                    ty("retention.ms"),
                    ty("cleanup.policy")
                ),
                (3, 5, 7)
            );
        }

        // Only the keys asked for.
        let r = describe_configs(&mut c, version, 2, topic, Some(&["retention.ms"]));
        let names: Vec<&str> = r.configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["retention.ms"]);

        let r = describe_configs(&mut c, version, 2, "missing-topic", None);
        assert_eq!(r.error_code, UNKNOWN_TOPIC_OR_PARTITION);
        assert!(r.configs.is_empty());
    }

    let r = describe_configs(&mut c, 4, 4, "0", None);
    assert_eq!(r.error_code, NONE, "{r:?}");
    assert_eq!(config_value(&r, "broker.id").0, "0");
    assert_eq!(
        config_value(&r, "advertised.listeners").0,
        format!("PLAINTEXT://127.0.0.1:{}", agent.port)
    );
    assert_eq!(config_value(&r, "auto.create.topics.enable").0, "true");
    assert_eq!(config_value(&r, "num.partitions").0, "1");
    assert_eq!(config_value(&r, "message.max.bytes").0, "1048588");
    let r = describe_configs(&mut c, 4, 4, "7", None);
    assert_eq!(r.error_code, INVALID_REQUEST, "another broker's id");
}

#[test]
fn describe_cluster_and_a_cluster_id_that_survives_restart() {
    let mut agent = Agent::start();
    let cluster_id;
    {
        let mut c = Client::connect(&agent);
        for version in [0i16, 1] {
            let resp = c.call(version, &DescribeClusterRequest::default());
            assert_eq!(resp.error_code, NONE);
            assert!(!resp.cluster_id.is_empty());
            assert_eq!(resp.brokers.len(), 1);
            let b = &resp.brokers[0];
            assert_eq!(b.host.as_str(), "127.0.0.1");
            assert_eq!(b.port, i32::from(agent.port));
            assert_eq!(resp.controller_id, b.broker_id);
            if version == 1 {
                assert_eq!(resp.endpoint_type, 1);
            }
        }
        let resp = c.call(1, &DescribeClusterRequest::default().with_endpoint_type(2));
        assert_eq!(resp.error_code, UNSUPPORTED_ENDPOINT_TYPE);
        cluster_id = c
            .call(0, &DescribeClusterRequest::default())
            .cluster_id
            .to_string();
        // Metadata agrees.
        let m = metadata(&mut c, 12, &[], true);
        assert_eq!(
            m.cluster_id.as_ref().map(|s| s.to_string()),
            Some(cluster_id.clone())
        );
    }
    agent.restart();
    let mut c = connect_when_ready(&agent);
    let resp = c.call(1, &DescribeClusterRequest::default());
    assert_eq!(
        resp.cluster_id.as_str(),
        cluster_id,
        "the cluster id is stable"
    );
    assert_eq!(resp.brokers[0].port, i32::from(agent.port));
}

// ---------------------------------------------------------------------------------------------
// Durability
// ---------------------------------------------------------------------------------------------

#[test]
fn acknowledged_records_survive_kill_9() {
    let mut agent = Agent::start();
    let topic = "durable";
    let partitions = 3;
    let mut acked: Vec<Vec<(i64, String)>> = vec![Vec::new(); partitions as usize];
    {
        let mut c = Client::connect(&agent);
        create_topic(&mut c, topic, partitions, &[]);
        for i in 0..30 {
            let p = i % partitions;
            let values: Vec<String> = (0..1 + i % 4).map(|k| format!("r{i}-k{k}")).collect();
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let version = if i % 2 == 0 { 9 } else { 3 };
            let resp = produce(&mut c, version, topic, p, batch(&refs, TS + i as i64));
            assert_eq!(resp.error_code, NONE);
            let expected_base = acked[p as usize].len() as i64;
            assert_eq!(resp.base_offset, expected_base);
            for (k, v) in values.into_iter().enumerate() {
                acked[p as usize].push((resp.base_offset + k as i64, v));
            }
        }
    }
    kill9_and_start_again(&mut agent);

    let mut c = connect_when_ready(&agent);
    for p in 0..partitions {
        for version in [4i16, 12] {
            let (hw, batches) = read_all(&mut c, version, topic, p);
            assert_eq!(hw, acked[p as usize].len() as i64, "high watermark of {p}");
            assert_eq!(
                flatten(&batches),
                acked[p as usize],
                "records of partition {p}"
            );
        }
    }
    // And the log goes on from there.
    produce_ok(
        &mut c,
        topic,
        0,
        batch(&["after-restart"], TS),
        acked[0].len() as i64,
    );
}

#[test]
fn graceful_stop_answers_parked_fetches_and_keeps_acknowledged_data() {
    let mut agent = Agent::start();
    let topic = "graceful";
    {
        let mut c = Client::connect(&agent);
        create_topic(&mut c, topic, 1, &[]);
        produce_ok(&mut c, topic, 0, batch(&["kept-1", "kept-2"], TS), 0);

        let mut parked = Client::connect(&agent);
        let id = parked.send(
            12,
            &fetch_request(topic, &[(0, 2)], 1 << 20)
                .with_max_wait_ms(20_000)
                .with_min_bytes(1),
        );
        // Give the fetch a chance to park first (not asserted on).
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(agent.stop(), Some(0), "SIGTERM ends the agent cleanly");
        // The parked fetch is answered (empty) or, had it not been read yet, the connection ends.
        match parked.read_frame() {
            Ok(frame) => {
                let (got, resp) = decode_response::<FetchRequest>(frame, 12);
                assert_eq!(got, id);
                let pd = fetch_partition(&resp, topic, 0);
                assert_eq!((pd.error_code, records_len(pd)), (NONE, 0));
            }
            Err(e) => assert!(
                !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "the parked fetch hung: {e}"
            ),
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while listening_sockets(agent.port) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stopped agent still listens"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.start_again();
    let mut c = connect_when_ready(&agent);
    let (hw, batches) = read_all(&mut c, 12, topic, 0);
    assert_eq!(hw, 2);
    assert_eq!(
        flatten(&batches),
        vec![(0, "kept-1".to_string()), (1, "kept-2".to_string())]
    );
    assert_no_panic(&agent);
}

/// An ApiVersions v3+ request with a valid client software name and version, which Kafka
/// requires from v3 on.
fn named_api_versions() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(sb("raw-protocol-test"))
        .with_client_software_version(sb("1.0"))
}
