//! End-to-end tests on S3: a real SeaweedFS server (`tests/common/seaweed.rs`), the agent's own
//! S3 client, and real `weft agent` processes driven by the rdkafka crate. Covers the round
//! trip, restarts, a store outage in the middle of a produce load, and a corrupted segment.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::kafka::{create_topic, enqueue};
use common::seaweed::{credentials_env, test_store, Seaweed};
use common::Agent;
use futures::executor::block_on;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use weft::limits::S3Limits;
use weft::object_store::s3::{S3Location, S3Store};
use weft::object_store::{ObjectStore, ObjectStoreError};

const KAFKA_STORAGE_ERROR: i16 = 56;

fn s3_agent(seaweed: &Seaweed, bucket: &str, extra: &[&str]) -> Agent {
    let url = seaweed.bucket_url(bucket);
    let mut args = vec!["--bucket-url", url.as_str()];
    args.extend_from_slice(extra);
    Agent::start_with_env(&args, &credentials_env())
}

fn producer(agent: &Agent, extra: &[(&str, &str)]) -> FutureProducer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", agent.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("producer")
}

type Delivery = Result<(i32, i64), KafkaError>;

/// Sends `(partition, value)` records and waits for every outcome.
fn send_all(p: &FutureProducer, topic: &str, recs: &[(i32, String)]) -> Vec<Delivery> {
    let mut futures = Vec::with_capacity(recs.len());
    for (partition, value) in recs {
        let rec: FutureRecord<'_, (), str> =
            FutureRecord::to(topic).partition(*partition).payload(value);
        futures.push(enqueue(p, rec));
    }
    futures
        .into_iter()
        .map(|f| {
            block_on(f)
                .expect("delivery future")
                .map(|d| (d.partition, d.offset))
                .map_err(|(e, _)| e)
        })
        .collect()
}

fn records(prefix: &str, n: usize, partitions: i32) -> Vec<(i32, String)> {
    (0..n)
        .map(|i| {
            (
                (i % partitions as usize) as i32,
                format!("{prefix}-{i}-{}", "v".repeat(i % 40)),
            )
        })
        .collect()
}

/// Reads partitions from the beginning until `expected` records arrived, or panics; returns
/// (partition, offset, value).
fn consume(
    agent: &Agent,
    topic: &str,
    partitions: &[i32],
    expected: usize,
) -> Vec<(i32, i64, String)> {
    let out = consume_for(agent, topic, partitions, expected, Duration::from_secs(120));
    assert_eq!(out.len(), expected, "records read back");
    out
}

/// Reads what arrives within `patience`, stopping early once `expected` records arrived and
/// nothing more comes.
fn consume_for(
    agent: &Agent,
    topic: &str,
    partitions: &[i32],
    expected: usize,
    patience: Duration,
) -> Vec<(i32, i64, String)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", agent.bootstrap())
        .set("group.id", "unused-assign-only")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("add partition");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            None if out.len() >= expected => break,
            None | Some(Err(_)) => {}
            Some(Ok(m)) => out.push((
                m.partition(),
                m.offset(),
                String::from_utf8(m.payload().unwrap_or_default().to_vec()).expect("utf-8"),
            )),
        }
    }
    out
}

/// Segment keys in the bucket, oldest first (keys are time-ordered).
fn segment_keys(seaweed: &Seaweed, bucket: &str) -> Vec<String> {
    seaweed.with_store(bucket, |s| async move {
        s.list("segments/").await.expect("list")
    })
}

#[test]
fn client_round_trip_against_seaweedfs() {
    let seaweed = Seaweed::start();
    seaweed.create_bucket("client-trip");
    let report = seaweed.with_store("client-trip", |s| async move {
        s.create_bucket()
            .await
            .expect("creating an owned bucket again succeeds");
        s.probe().await.expect("probe");
        let body = Bytes::from((0..100_000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>());
        s.put("segments/a.seg", body.clone()).await.expect("put");
        assert_eq!(s.get("segments/a.seg").await.expect("get"), body);
        // The checksum sent with a PUT is checked by the store: a wrong one is refused, not
        // stored (the produce path sends the CRC it derived while encoding the segment).
        let crc = crc32c::crc32c(&body);
        let refused = s
            .put_with_crc32c("checked/b.seg", body.clone(), crc ^ 1)
            .await;
        assert!(
            matches!(refused, Err(ObjectStoreError::Rejected { status: 400, .. })),
            "{refused:?}"
        );
        assert!(matches!(
            s.get("checked/b.seg").await,
            Err(ObjectStoreError::NotFound { .. })
        ));
        s.put_with_crc32c("checked/b.seg", body.clone(), crc)
            .await
            .expect("put with the right CRC");
        assert_eq!(s.head("segments/a.seg").await.expect("head"), 100_000);
        assert_eq!(
            s.get_range("segments/a.seg", 1000..1010)
                .await
                .expect("range"),
            body.slice(1000..1010)
        );
        assert_eq!(
            s.get_range("segments/a.seg", 99_990..100_000)
                .await
                .expect("tail"),
            body.slice(99_990..)
        );
        assert!(s
            .get_range("segments/a.seg", 5..5)
            .await
            .expect("empty")
            .is_empty());
        for range in [99_990..100_001, 100_000..100_010, 200_000..200_001] {
            assert!(
                matches!(
                    s.get_range("segments/a.seg", range.clone()).await,
                    Err(ObjectStoreError::RangeOutOfBounds { size: 100_000, .. })
                ),
                "{range:?}"
            );
        }
        assert!(matches!(
            s.get("segments/missing").await,
            Err(ObjectStoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.get_range("segments/missing", 0..1).await,
            Err(ObjectStoreError::NotFound { .. })
        ));

        // Listing crosses pages of 1000 keys.
        let keys: Vec<String> = (0..1005).map(|i| format!("many/{i:05}")).collect();
        for batch in keys.chunks(32) {
            futures::future::join_all(batch.iter().map(|k| s.put(k, Bytes::from_static(b"x"))))
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .expect("puts");
        }
        assert_eq!(s.list("many/").await.expect("list"), keys);
        assert_eq!(s.list("segments/").await.expect("list"), ["segments/a.seg"]);
        assert!(s.list("nothing/").await.expect("list").is_empty());

        s.delete("segments/a.seg").await.expect("delete");
        s.delete("segments/a.seg").await.expect("delete again");
        assert!(matches!(
            s.get("segments/a.seg").await,
            Err(ObjectStoreError::NotFound { .. })
        ));

        // PUT latency on keep-alive connections, for the report.
        let mut report = String::new();
        for size in [1024usize, 1024 * 1024, 8 * 1024 * 1024] {
            let body = Bytes::from(vec![7u8; size]);
            let mut took = Vec::new();
            let rounds = if size > 1024 * 1024 { 10 } else { 50 };
            for i in 0..rounds {
                let started = Instant::now();
                s.put(&format!("latency/{size}/{i}"), body.clone())
                    .await
                    .expect("put");
                took.push(started.elapsed());
            }
            took.sort();
            report.push_str(&format!(
                "PUT {size} bytes: p50 {:?}, max {:?} ({rounds} sequential)\n",
                took[took.len() / 2],
                took[took.len() - 1]
            ));
        }
        let mut took = Vec::new();
        for i in 0..50 {
            let started = Instant::now();
            s.get_range(&format!("latency/1048576/{}", i % 10), 4096..69_632)
                .await
                .expect("get");
            took.push(started.elapsed());
        }
        took.sort();
        report.push_str(&format!("ranged GET 64 KiB: p50 {:?}\n", took[25]));
        report
    });
    println!("{report}");
}

#[test]
fn unreachable_store_fails_naming_bucket_key_and_attempts() {
    let port = common::free_port();
    let url = format!("s3://nobody-home?endpoint=http://127.0.0.1:{port}");
    let (err, took) = std::thread::spawn(move || {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let location = S3Location::parse(&url).expect("url");
                let creds = rusty_s3::Credentials::new("k", "s");
                let limits = S3Limits::test();
                let s = S3Store::new(location, creds, None, &limits).expect("store");
                let started = Instant::now();
                let err = s
                    .put("segments/x.seg", Bytes::from_static(b"data"))
                    .await
                    .expect_err("nothing listens");
                (err, started.elapsed())
            })
    })
    .join()
    .expect("thread");
    let limits = S3Limits::test();
    match &err {
        ObjectStoreError::Unavailable {
            bucket,
            key,
            attempts,
            status,
            ..
        } => {
            assert_eq!(bucket, "nobody-home");
            assert_eq!(key, "segments/x.seg");
            assert!(
                *attempts >= 1 && *attempts <= limits.attempts_max,
                "{attempts}"
            );
            assert_eq!(*status, None);
        }
        other => panic!("expected Unavailable, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("nobody-home") && text.contains("segments/x.seg"),
        "{text}"
    );
    assert!(
        took < limits.operation_timeout + Duration::from_millis(500),
        "{took:?}"
    );
}

/// Runs `weft agent` with `bucket_url` and `env` expecting it to refuse to start; returns
/// what it printed.
fn refused_start(bucket_url: &str, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(common::weft_bin())
        .args([
            "agent",
            "--kafka-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        // Refused before it touches anything, so this directory is never made.
        .args([
            "--data-dir",
            "/nonexistent/weft-data",
            "--bucket-url",
            bucket_url,
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_CA_BUNDLE")
        .envs(env.iter().copied())
        .output()
        .expect("run weft");
    assert!(!out.status.success(), "{bucket_url} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_s3_configuration_stops_the_agent_at_start_up() {
    let keys = [("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")];
    let err = refused_start("s3://some-bucket?endpoint=http://127.0.0.1:1", &[]);
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    let err = refused_start("s3://x?endpoint=http://127.0.0.1:1", &keys);
    assert!(err.contains("bucket name"), "{err}");
    let err = refused_start("s3://some-bucket?endpoint=ftp://127.0.0.1:1", &keys);
    assert!(err.contains("http"), "{err}");
    let mut with_bundle = keys.to_vec();
    with_bundle.push(("AWS_CA_BUNDLE", "/nonexistent/ca.pem"));
    let err = refused_start(
        "s3://some-bucket?endpoint=https://127.0.0.1:1",
        &with_bundle,
    );
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

#[test]
fn tls_endpoint_round_trip() {
    let seaweed = Seaweed::start_tls();
    seaweed.create_bucket("weft-tls");
    let url = seaweed.https_bucket_url("weft-tls");
    let ca = seaweed.ca_file();
    let (untrusted, took) = std::thread::spawn({
        let url = url.clone();
        move || {
            glommio::LocalExecutorBuilder::default()
                .make()
                .expect("executor")
                .run(async move {
                    let location = S3Location::parse(&url).expect("url");
                    let creds = || {
                        rusty_s3::Credentials::new(
                            common::seaweed::ACCESS_KEY_ID,
                            common::seaweed::SECRET_ACCESS_KEY,
                        )
                    };
                    let limits = S3Limits::production();
                    let s =
                        S3Store::new(location.clone(), creds(), Some(&ca), &limits).expect("store");
                    s.put("tls/k", Bytes::from_static(b"over TLS"))
                        .await
                        .expect("put");
                    assert_eq!(s.get("tls/k").await.expect("get"), &b"over TLS"[..]);
                    assert_eq!(s.list("tls/").await.expect("list"), ["tls/k"]);
                    // The built-in roots do not know the test CA: refused at once, not retried.
                    let s = S3Store::new(location, creds(), None, &limits).expect("store");
                    let started = Instant::now();
                    let err = s.get("tls/k").await.expect_err("untrusted certificate");
                    (err.to_string(), started.elapsed())
                })
        }
    })
    .join()
    .expect("thread");
    assert!(untrusted.contains("TLS handshake"), "{untrusted}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    let mut env = credentials_env();
    env.push((
        "AWS_CA_BUNDLE".into(),
        seaweed.ca_file().display().to_string(),
    ));
    let agent = Agent::start_with_env(&["--bucket-url", &url], &env);
    create_topic(&agent, "tls", 2, &[]);
    let sent = records("t", 2000, 2);
    let p = producer(&agent, &[]);
    for d in send_all(&p, "tls", &sent) {
        d.expect("delivered");
    }
    let got: BTreeSet<String> = consume(&agent, "tls", &[0, 1], sent.len())
        .into_iter()
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(got, sent.into_iter().map(|(_, v)| v).collect());
}

#[test]
fn produce_consume_and_restart_on_s3() {
    let seaweed = Seaweed::start();
    seaweed.create_bucket("weft-e2e");
    let mut agent = s3_agent(&seaweed, "weft-e2e", &[]);
    create_topic(&agent, "on-s3", 4, &[]);
    let sent = records("r", 20_000, 4);
    let p = producer(&agent, &[("batch.num.messages", "2000")]);
    let acked: Vec<(i32, i64)> = send_all(&p, "on-s3", &sent)
        .into_iter()
        .map(|d| d.expect("delivered"))
        .collect();
    drop(p);

    let check = |got: &[(i32, i64, String)]| {
        let by_pos: HashMap<(i32, i64), &str> =
            got.iter().map(|(p, o, v)| ((*p, *o), v.as_str())).collect();
        for ((_, value), pos) in sent.iter().zip(&acked) {
            assert_eq!(
                by_pos.get(pos).copied(),
                Some(value.as_str()),
                "record at {pos:?}"
            );
        }
    };
    check(&consume(&agent, "on-s3", &[0, 1, 2, 3], sent.len()));

    // The data is in the bucket, not in the agent's directory.
    assert!(!segment_keys(&seaweed, "weft-e2e").is_empty());
    assert!(common::files_under(&agent.objects_dir()).is_empty());

    // kill -9, then every record is read again from the bucket (the cache died with the process).
    agent.restart();
    check(&consume(&agent, "on-s3", &[0, 1, 2, 3], sent.len()));

    // Producing goes on at the next offsets.
    let p = producer(&agent, &[]);
    for d in send_all(&p, "on-s3", &records("after", 4, 4)) {
        assert_eq!(d.expect("delivered").1, 5000);
    }
}

/// Acknowledgement latency of `n` records sent one at a time, each waiting for the previous.
fn sequential_ack_latencies(p: &FutureProducer, topic: &str, n: usize) -> Vec<Duration> {
    let mut took: Vec<Duration> = records("seq", n, 1)
        .iter()
        .map(|rec| {
            let started = Instant::now();
            send_all(p, topic, std::slice::from_ref(rec))[0]
                .as_ref()
                .expect("delivered");
            started.elapsed()
        })
        .collect();
    took.sort();
    took
}

#[test]
fn presets_trade_latency_for_puts() {
    let seaweed = Seaweed::start();
    let mut report = String::new();
    let mut segments_of = HashMap::new();
    for preset in ["low-latency", "cost"] {
        let bucket = format!("weft-preset-{preset}");
        seaweed.create_bucket(&bucket);
        let agent = s3_agent(&seaweed, &bucket, &["--flush-preset", preset]);
        create_topic(&agent, "presets", 1, &[]);
        // One record per request, many requests in flight: a flush whenever the uploader is
        // idle makes many small segments, waiting for 250 ms makes few.
        let p = producer(&agent, &[("linger.ms", "0"), ("batch.num.messages", "1")]);
        let n = 200;
        let started = Instant::now();
        for d in send_all(&p, "presets", &records("c", n, 1)) {
            d.expect("delivered");
        }
        let pipelined = started.elapsed();
        let segments = segment_keys(&seaweed, &bucket).len();
        let latencies = sequential_ack_latencies(&p, "presets", 10);
        let p50 = latencies[latencies.len() / 2];
        let puts_per_s = segments as f64 / pipelined.as_secs_f64();
        report.push_str(&format!(
            "{preset}: {n} pipelined one-record requests in {pipelined:?} -> {segments} \
             segments ({puts_per_s:.1} PUTs/s); one request at a time: ack p50 {p50:?}, max \
             {:?}\n",
            latencies[latencies.len() - 1],
        ));
        if preset == "cost" {
            assert!(
                p50 >= Duration::from_millis(200),
                "the cost preset waits for the batch timeout: {latencies:?}"
            );
            // At most one flush per 250 ms, plus the one in progress at each end.
            assert!(
                segments as f64 <= pipelined.as_secs_f64() / 0.25 + 2.0,
                "{segments} segments in {pipelined:?}"
            );
        } else {
            assert!(
                p50 < Duration::from_millis(100),
                "low-latency acks within about one PUT: {latencies:?}"
            );
        }
        segments_of.insert(preset, segments);
        assert_eq!(consume(&agent, "presets", &[0], n + 10).len(), n + 10);
    }
    println!("{report}");
    assert!(
        segments_of["cost"] < segments_of["low-latency"],
        "{segments_of:?}"
    );
}

#[test]
fn store_outage_gives_retriable_errors_and_loses_nothing_acknowledged() {
    let mut seaweed = Seaweed::start();
    seaweed.create_bucket("weft-outage");
    let agent = s3_agent(&seaweed, "weft-outage", &[]);
    create_topic(&agent, "outage", 2, &[]);
    // No client retries, so every error the agent returns reaches the test.
    let p = producer(&agent, &[("retries", "0"), ("request.timeout.ms", "60000")]);
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    let mut tally = |recs: &[(i32, String)], outcomes: Vec<Delivery>| {
        let mut errors = Vec::new();
        for ((_, value), outcome) in recs.iter().zip(outcomes) {
            match outcome {
                Ok(_) => {
                    acked.insert(value.clone());
                }
                Err(e) => {
                    failed.insert(value.clone());
                    errors.push(e);
                }
            }
        }
        errors
    };

    let before = records("before", 500, 2);
    let errors = tally(&before, send_all(&p, "outage", &before));
    assert!(errors.is_empty(), "{errors:?}");

    seaweed.kill();
    let during = records("during", 40, 2);
    let started = Instant::now();
    let errors = tally(&during, send_all(&p, "outage", &during));
    println!(
        "outage: {} of {} records failed in {:?}",
        errors.len(),
        during.len(),
        started.elapsed()
    );
    assert_eq!(
        errors.len(),
        during.len(),
        "nothing succeeds while the store is down"
    );
    assert!(
        errors.iter().any(|e| matches!(
            e,
            KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError)
        )),
        "{errors:?}"
    );
    // The agent keeps serving while the store is down.
    let meta: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", agent.bootstrap())
        .create()
        .expect("client");
    meta.fetch_metadata(Some("outage"), Duration::from_secs(10))
        .expect("metadata during the outage");
    assert!(
        agent.log().contains("object store unavailable"),
        "the failure is logged"
    );

    seaweed.start_again();
    // The agent recovers by itself: producing succeeds again without a restart.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    loop {
        let probe = records(&format!("resume{round}"), 2, 2);
        let errors = tally(&probe, send_all(&p, "outage", &probe));
        if errors.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "producing did not resume: {errors:?}"
        );
        round += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let after = records("after", 500, 2);
    let errors = tally(&after, send_all(&p, "outage", &after));
    assert!(errors.is_empty(), "{errors:?}");

    // Every acknowledged record is there, and no failed one is.
    let got = consume(&agent, "outage", &[0, 1], acked.len());
    let stored: BTreeSet<String> = got.into_iter().map(|(_, _, v)| v).collect();
    assert_eq!(stored, acked);
    assert!(stored.is_disjoint(&failed));
}

/// A raw Fetch v12 of one partition from offset 0: its error code and record bytes.
fn raw_fetch(agent: &Agent, topic: &str, partition: i32) -> (i16, Option<Bytes>) {
    let version = 12;
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("raw-fetch")));
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let mut body = BytesMut::new();
    header
        .encode(&mut body, FetchRequest::header_version(version))
        .expect("encode header");
    request.encode(&mut body, version).expect("encode fetch");
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    let mut s = TcpStream::connect(agent.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(&frame).expect("send");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("response length");
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).expect("response");
    let mut buf = Bytes::from(buf);
    let rh = ResponseHeader::decode(&mut buf, FetchResponse::header_version(version))
        .expect("response header");
    assert_eq!(rh.correlation_id, 7);
    let resp = FetchResponse::decode(&mut buf, version).expect("fetch response");
    assert_eq!(buf.remaining(), 0);
    let p = &resp.responses[0].partitions[0];
    (p.error_code, p.records.clone())
}

#[test]
fn corrupted_segment_is_detected_and_never_served() {
    let seaweed = Seaweed::start();
    seaweed.create_bucket("weft-corrupt");
    let mut agent = s3_agent(&seaweed, "weft-corrupt", &[]);
    create_topic(&agent, "corrupt", 2, &[]);
    let p = producer(&agent, &[]);
    let first = records("first", 50, 1);
    for d in send_all(&p, "corrupt", &first) {
        d.expect("delivered");
    }
    let second: Vec<(i32, String)> = records("second", 50, 1)
        .into_iter()
        .map(|(_, v)| (1, v))
        .collect();
    for d in send_all(&p, "corrupt", &second) {
        d.expect("delivered");
    }
    drop(p);
    let (code, records_before) = raw_fetch(&agent, "corrupt", 0);
    assert_eq!(code, 0);
    assert!(records_before.is_some_and(|r| !r.is_empty()));

    // Restart first, so the agent's cache cannot answer for the bucket.
    agent.restart();

    // The oldest segment holds the first record of partition 0; flip one byte in that chunk.
    let key = segment_keys(&seaweed, "weft-corrupt")
        .into_iter()
        .next()
        .expect("a segment");
    let url = seaweed.bucket_url("weft-corrupt");
    let corrupted_key = key.clone();
    std::thread::spawn(move || {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let s = test_store(&url);
                let object = s.get(&corrupted_key).await.expect("get segment");
                let decoded = weft::segment::decode(&object).expect("segment is intact so far");
                let chunk = decoded
                    .chunks
                    .iter()
                    .find(|c| c.partition == 0)
                    .expect("a chunk of partition 0");
                let mut bytes = object.to_vec();
                let at = (chunk.byte_pos + u64::from(chunk.byte_len) / 2) as usize;
                bytes[at] ^= 0x01;
                s.put(&corrupted_key, Bytes::from(bytes))
                    .await
                    .expect("overwrite segment");
            })
    })
    .join()
    .expect("corrupting thread");

    // The fetch fails with a storage error and carries none of the chunk's bytes.
    let (code, records) = raw_fetch(&agent, "corrupt", 0);
    assert_eq!(code, KAFKA_STORAGE_ERROR);
    assert!(
        records.is_none_or(|r| r.is_empty()),
        "no bytes of a corrupt chunk"
    );
    let log = agent.log();
    assert!(
        log.contains("chunk read failed; not served") && log.contains("checksum mismatch"),
        "the corruption is logged"
    );
    assert!(log.contains(&key), "the log names the segment");

    // Other partitions are still served, and a consumer never sees partition 0's damaged data.
    assert_eq!(
        consume(&agent, "corrupt", &[1], second.len()).len(),
        second.len()
    );
    let got = consume_for(&agent, "corrupt", &[0], 1, Duration::from_secs(3));
    assert!(
        got.is_empty(),
        "records from a corrupt chunk were served: {got:?}"
    );
}
