//! Operating an agent: the HTTP endpoints (health, readiness, Prometheus metrics) and a
//! restart under a live producer.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::kafka::*;
use common::Agent;
use futures::executor::block_on;
use rdkafka::producer::FutureRecord;

/// GET `path` from the agent's HTTP port: (status, content type, body).
fn http_get(agent: &Agent, path: &str) -> (u16, String, String) {
    // The HTTP listener may come up a moment after the Kafka one.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], agent.http_port));
    common::wait_for_port(addr, Duration::from_secs(10));
    let mut s = TcpStream::connect(addr).expect("connect HTTP");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read HTTP answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP head");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    (status, content_type, body.to_string())
}

/// Every sample of a scrape, keyed by name with its labels as written, e.g.
/// `weft_requests_total{api="Produce",outcome="answered"}`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample line");
            (k.to_string(), v.parse().expect("sample value"))
        })
        .collect()
}

/// Sum of every sample of `name` whose labels include all of `labels`.
fn total(s: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    s.iter()
        .filter(|(k, _)| {
            let (n, rest) = k.split_once('{').unwrap_or((k.as_str(), ""));
            n == name && labels.iter().all(|l| rest.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn health_readiness_and_metrics_report_what_the_agent_did() {
    let agent = Agent::start_with(&["--log-format", "json"]);
    let (status, _, body) = http_get(&agent, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, body) = http_get(&agent, "/readyz");
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    assert_eq!(http_get(&agent, "/nope").0, 404);

    let topic = "metered";
    create_topic(&agent, topic, 4, &[]);
    let sent = simple_records(2_000, 4);
    let p = producer(&agent, &[("acks", "all")]);
    produce_all(&p, topic, &sent);
    let got = consume_all(&agent, topic, 4, sent.len());
    assert_eq!(got.len(), sent.len());
    // A request the agent cannot parse closes its connection and is counted.
    let mut raw = TcpStream::connect(agent.addr()).unwrap();
    raw.write_all(&[0, 0, 0, 10, 0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff])
        .unwrap();
    let mut sink = Vec::new();
    let _ = raw.read_to_end(&mut sink);

    let (status, content_type, text) = http_get(&agent, "/metrics");
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    let s = samples(&text);
    let at_least = |name: &str, labels: &[&str], min: f64| {
        let v = total(&s, name, labels);
        assert!(
            v >= min,
            "{name}{labels:?} = {v}, expected at least {min}\n{text}"
        );
        v
    };
    assert_eq!(total(&s, "weft_shards", &[]), 2.0);
    at_least(
        "weft_requests_total",
        &["api=\"Produce\"", "outcome=\"answered\""],
        1.0,
    );
    at_least(
        "weft_requests_total",
        &["api=\"Fetch\"", "outcome=\"answered\""],
        1.0,
    );
    at_least("weft_requests_total", &["api=\"Metadata\""], 1.0);
    at_least(
        "weft_request_duration_seconds_count",
        &["api=\"Produce\""],
        1.0,
    );
    at_least(
        "weft_requests_rejected_total",
        &["reason=\"unknown_api\""],
        1.0,
    );
    // 2,000 records of a few bytes each went in and came back out.
    let produced = at_least("weft_produce_bytes_total", &[], 2_000.0 * 10.0);
    at_least("weft_fetch_bytes_total", &[], produced);
    at_least("weft_network_received_bytes_total", &[], produced);
    at_least("weft_network_sent_bytes_total", &[], produced);
    at_least("weft_connections_accepted_total", &[], 3.0);
    // The producer is still connected.
    at_least("weft_connections", &[], 1.0);
    let flushes = at_least("weft_produce_flushes_total", &[], 1.0);
    assert_eq!(total(&s, "weft_produce_flush_bytes_count", &[]), flushes);
    at_least(
        "weft_object_store_requests_total",
        &["op=\"put\"", "outcome=\"ok\""],
        flushes,
    );
    assert_eq!(
        total(
            &s,
            "weft_object_store_requests_total",
            &["outcome=\"error\""]
        ),
        0.0
    );
    at_least(
        "weft_metadata_store_duration_seconds_count",
        &["op=\"commit_segment\""],
        flushes,
    );
    // Each chunk read is a cache hit, or a miss that became one ranged GET: which one depends
    // on whether the consumer landed on the shard that uploaded.
    let misses = total(&s, "weft_cache_misses_total", &[]);
    assert!(
        total(&s, "weft_cache_hits_total", &[]) + misses >= 1.0,
        "{text}"
    );
    assert_eq!(
        total(
            &s,
            "weft_object_store_requests_total",
            &["op=\"get_range\""]
        ),
        misses
    );
    at_least("weft_cache_bytes", &[], 1.0);
    at_least("weft_fetch_long_poll_waits_total", &[], 1.0);
    assert_eq!(total(&s, "weft_uploads_in_flight", &[]), 0.0);
    at_least("process_cpu_seconds_total", &[], 0.0001);
    at_least("process_resident_memory_bytes", &[], 1e6);
    // Structured logs: one JSON object per line.
    let log = agent.log();
    let ready = log
        .lines()
        .find(|l| l.contains("weft agent ready"))
        .expect("ready line");
    assert!(
        ready.starts_with("{\"timestamp\":") && ready.ends_with('}'),
        "{ready}"
    );
    assert!(ready.contains("\"level\":\"INFO\""), "{ready}");
    // Labels stay bounded: nothing per partition, topic or client.
    for key in s.keys() {
        for banned in ["partition=", "topic=", "client"] {
            assert!(!key.contains(banned), "unbounded label in {key}");
        }
    }
}

/// A client that pipelines more requests than a connection queues and then vanishes must not
/// leave its connection open on the agent. It did: the writer stopped at its first failed
/// write, and the reader waited for room in the full queue forever, so the connection was
/// still counted, and every graceful stop waited out the drain period for it.
#[test]
fn a_client_that_vanishes_mid_pipeline_leaves_no_connection_behind() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, RequestHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    let agent = Agent::start();
    create_topic(&agent, "pipelined", 1, &[]);
    // Long polls on an empty partition, each answered after its 1 s wait.
    let fetch = FetchRequest::default()
        .with_max_wait_ms(1000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("pipelined")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let mut wire = Vec::new();
    // Twice what a connection queues (32), so the reader is left waiting for room.
    for correlation_id in 0..64 {
        let header = RequestHeader::default()
            .with_request_api_key(1)
            .with_request_api_version(12)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("vanishing")));
        let mut body = bytes::BytesMut::new();
        header.encode(&mut body, 2).unwrap();
        fetch.encode(&mut body, 12).unwrap();
        wire.extend_from_slice(&(body.len() as i32).to_be_bytes());
        wire.extend_from_slice(&body);
    }
    let mut s = TcpStream::connect(agent.addr()).unwrap();
    s.write_all(&wire).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Reset rather than close: the agent's first answer then fails to write.
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, text) = http_get(&agent, "/metrics");
        let open = total(&samples(&text), "weft_connections", &[]);
        if open == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{open} connection(s) still open 20 s after the client left\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A producer with retries keeps producing while its agent stops gracefully and starts again:
/// every record is acknowledged (no error it could not retry) and stored exactly once.
#[test]
fn producer_with_retries_rides_through_a_restart() {
    let mut agent = Agent::start();
    let topic = "rolling";
    create_topic(&agent, topic, 4, &[]);
    let p = producer(
        &agent,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            ("message.timeout.ms", "120000"),
            ("reconnect.backoff.ms", "50"),
            ("reconnect.backoff.max.ms", "500"),
        ],
    );
    let sending = Arc::new(AtomicBool::new(true));
    let sender = {
        let (p, sending) = (p.clone(), sending.clone());
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut i = 0u32;
            while sending.load(Ordering::Relaxed) || i < 1_000 {
                let key = i.to_be_bytes();
                let value = format!("record-{i}");
                let rec = FutureRecord::to(topic)
                    .partition((i % 4) as i32)
                    .key(&key[..])
                    .payload(value.as_bytes());
                pending.push(enqueue(&p, rec));
                i += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut failures = Vec::new();
            for (n, f) in pending.into_iter().enumerate() {
                if let Err((e, _)) = block_on(f).expect("delivery future") {
                    failures.push(format!("record {n}: {e}"));
                }
            }
            (i, failures)
        })
    };
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(agent.stop(), Some(0), "graceful stop exits 0");
    std::thread::sleep(Duration::from_millis(500));
    agent.start_again();
    std::thread::sleep(Duration::from_millis(800));
    sending.store(false, Ordering::Relaxed);
    let (count, failures) = sender.join().expect("sender thread");
    assert!(failures.is_empty(), "deliveries failed: {failures:?}");

    let got = consume_all(&agent, topic, 4, count as usize);
    let mut seen = vec![0u32; count as usize];
    for (_, rec) in &got {
        let key = rec.key.as_deref().expect("key");
        seen[u32::from_be_bytes(key.try_into().unwrap()) as usize] += 1;
    }
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let doubled = seen.iter().filter(|&&n| n > 1).count();
    assert_eq!(
        (missing, doubled),
        (0, 0),
        "{count} sent; every record stored exactly once"
    );
    assert!(
        agent.log().contains("stopping: draining connections"),
        "the agent drained before stopping"
    );
}
