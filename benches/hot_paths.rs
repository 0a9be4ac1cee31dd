//! Micro-benchmarks of the data path's hot pieces. `cargo bench` measures them; `cargo test`
//! runs each once (criterion's test mode), so they cannot rot.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::ApiKey;
use uuid::Uuid;
use weft::fetch::assemble;
use weft::protocol::frame::FrameReader;
use weft::protocol::record_batch::{build, validate_produce_batch};
use weft::protocol::request_shape;
use weft::segment::{self, ChunkInput};

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

criterion_group!(
    benches,
    produce_validation,
    frame_split,
    segments,
    fetch_assembly,
    request_walk
);
criterion_main!(benches);
