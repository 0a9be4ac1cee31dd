//! Micro-benchmarks of the data path's hot pieces. `cargo bench` measures them; `cargo test`
//! runs each once (criterion's test mode), so they cannot rot.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::net::SocketAddr;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use uuid::Uuid;
use weft::fetch::assemble;
use weft::protocol::client_id;
use weft::protocol::frame::FrameReader;
use weft::protocol::metadata_writer::{self, Broker, MetadataAnswer, TopicAnswer};
use weft::protocol::record_batch::{build, validate_produce_batch};
use weft::protocol::request_shape;
use weft::segment::{self, ChunkInput};
use weft::server::dispatch::{self, Body};

fn batch_of(bytes: usize) -> Bytes {
    // 100-byte values: about `bytes` in all.
    let count = (bytes / 110).max(1) as i32;
    Bytes::from(build::uncompressed(count, &[7u8; 100], 1_700_000_000_000))
}

fn produce_validation(c: &mut Criterion) {
    let mut g = c.benchmark_group("produce_batch_validate");
    for size in [1024usize, 64 * 1024] {
        let batch = batch_of(size);
        g.throughput(Throughput::Bytes(batch.len() as u64));
        g.bench_function(format!("{size}B"), |b| {
            b.iter(|| validate_produce_batch(black_box(&batch)).expect("valid"))
        });
    }
    g.finish();
}

fn frame_split(c: &mut Criterion) {
    let body = vec![1u8; 1024];
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend(&body);
    let mut wire = Vec::new();
    for _ in 0..64 {
        wire.extend(&frame);
    }
    let mut g = c.benchmark_group("frame_split");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("64x1KiB", |b| {
        b.iter(|| {
            let mut r = FrameReader::new(1 << 20);
            let mut fed = 0;
            let mut frames = 0;
            while fed < wire.len() {
                let space = r.read_space().expect("valid");
                let n = space.len().min(wire.len() - fed);
                space[..n].copy_from_slice(&wire[fed..fed + n]);
                let len = space.len();
                r.filled(len, n);
                fed += n;
                while let Some(f) = r.next_frame().expect("valid") {
                    black_box(f);
                    frames += 1;
                }
            }
            assert_eq!(frames, 64);
        })
    });
    g.finish();
}

fn segments(c: &mut Criterion) {
    let chunks: Vec<ChunkInput> = (0..16)
        .map(|p| ChunkInput {
            topic_id: Uuid::from_u128(1),
            partition: p,
            batches: vec![batch_of(16 * 1024); 4],
            offset_count: 4,
            max_timestamp_ms: 0,
        })
        .collect();
    let encoded = segment::encode(0, &chunks);
    let mut g = c.benchmark_group("segment");
    g.throughput(Throughput::Bytes(encoded.bytes.len() as u64));
    g.bench_function("encode_16x64KiB", |b| {
        b.iter(|| segment::encode(0, black_box(&chunks)))
    });
    g.bench_function("decode_16x64KiB", |b| {
        b.iter(|| segment::decode(black_box(&encoded.bytes)).expect("valid"))
    });
    g.finish();
}

fn fetch_assembly(c: &mut Criterion) {
    let mut chunk = Vec::new();
    for _ in 0..32 {
        chunk.extend_from_slice(&batch_of(16 * 1024));
    }
    let mut g = c.benchmark_group("fetch_assemble");
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    g.bench_function("32x16KiB", |b| {
        let mut out = BytesMut::with_capacity(chunk.len());
        b.iter(|| {
            out.clear();
            assemble(
                black_box(&chunk),
                1000,
                &[],
                1000,
                usize::MAX,
                true,
                &mut out,
            )
            .expect("valid")
        })
    });
    g.finish();
}

fn request_walk(c: &mut Criterion) {
    // A Metadata v12 body naming 100 topics.
    let mut body = vec![101u8];
    for i in 0..100 {
        body.extend([0u8; 16]);
        let name = format!("topic-{i:03}");
        body.push(name.len() as u8 + 1);
        body.extend(name.as_bytes());
        body.push(0);
    }
    body.extend([1, 0, 0]);
    c.bench_function("request_shape_metadata_100_topics", |b| {
        b.iter(|| request_shape::check(ApiKey::Metadata, 12, black_box(&body)).expect("valid"))
    });
}

/// A whole Produce request as it arrives: header and body decoded, every batch validated.
fn produce_request_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("produce_request_parse");
    for size in [1024usize, 64 * 1024] {
        let batch = batch_of(size);
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("orders")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(3)
                    .with_records(Some(batch.clone()))])]);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(9)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_static_str("bench-producer")));
        let mut frame = BytesMut::new();
        header.encode(&mut frame, 2).expect("header");
        req.encode(&mut frame, 9).expect("body");
        let frame = frame.freeze();
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(format!("{size}B"), |b| {
            b.iter(|| {
                let req = dispatch::parse(black_box(frame.clone()), peer).expect("parses");
                let Body::Produce(body) = req.body else {
                    unreachable!()
                };
                for t in &body.topic_data {
                    for p in &t.partition_data {
                        validate_produce_batch(p.records.as_ref().expect("records"))
                            .expect("valid");
                    }
                }
            })
        });
    }
    g.finish();
}

/// A Fetch answer of 16 partitions with 64 KiB of records each, framed by the codec.
fn fetch_response_build(c: &mut Criterion) {
    let records = {
        let mut chunk = BytesMut::new();
        for _ in 0..4 {
            chunk.extend_from_slice(&batch_of(16 * 1024));
        }
        chunk.freeze()
    };
    let mut g = c.benchmark_group("fetch_response_build");
    g.throughput(Throughput::Bytes(16 * records.len() as u64));
    g.bench_function("16x64KiB_v12", |b| {
        b.iter(|| {
            let partitions = (0..16)
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p)
                        .with_high_watermark(1_000)
                        .with_last_stable_offset(1_000)
                        .with_records(Some(records.clone()))
                })
                .collect();
            let resp =
                FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("orders")))
                    .with_partitions(partitions)]);
            dispatch::encode(ApiKey::Fetch, 12, 12, 1, black_box(&resp)).expect("encodes")
        })
    });
    g.finish();
}

/// The Metadata answer of 3 agents and one 100-partition topic, written by hand into a reused
/// buffer: answers per second is the figure (target: 1 M/s per core, with no allocation,
/// which `tests/zero_alloc.rs` checks).
fn metadata_encode(c: &mut Criterion) {
    let brokers = [
        Broker {
            node_id: 0,
            host: "agent-0.zone-a.internal",
            port: 9092,
            rack: Some("zone-a"),
        },
        Broker {
            node_id: 1,
            host: "agent-1.zone-b.internal",
            port: 9092,
            rack: Some("zone-b"),
        },
        Broker {
            node_id: 2,
            host: "agent-2.zone-c.internal",
            port: 9092,
            rack: Some("zone-c"),
        },
    ];
    let topics = [TopicAnswer {
        error_code: 0,
        name: Some("orders"),
        topic_id: Uuid::from_u128(42),
        partitions: 100,
    }];
    let mut g = c.benchmark_group("metadata_encode");
    g.throughput(Throughput::Elements(1));
    for version in [1i16, 12] {
        let answer = MetadataAnswer {
            correlation_id: 1,
            version,
            brokers: &brokers,
            cluster_id: Some("cluster"),
            controller_id: 0,
            leaders: &[0, 1, 2],
            topics: &topics,
        };
        let mut out = BytesMut::with_capacity(64 * 1024);
        g.bench_function(format!("3_agents_100_partitions_v{version}"), |b| {
            b.iter(|| {
                out.clear();
                metadata_writer::write(&mut out, black_box(&answer));
            })
        });
    }
    g.finish();
}

fn client_id_parse(c: &mut Criterion) {
    let ids = [
        "rdkafka",
        "payments-7,ws_az=us-east-1a;ws_host_override=lb.internal,warpstream_interzone_lb=true",
    ];
    let mut g = c.benchmark_group("client_id_parse");
    for (name, id) in ["plain", "all_hints"].into_iter().zip(ids) {
        g.bench_function(name, |b| b.iter(|| client_id::parse(black_box(id))));
    }
    g.finish();
}

criterion_group!(
    benches,
    produce_validation,
    produce_request_parse,
    frame_split,
    segments,
    fetch_assembly,
    fetch_response_build,
    request_walk,
    metadata_encode,
    client_id_parse
);
criterion_main!(benches);
