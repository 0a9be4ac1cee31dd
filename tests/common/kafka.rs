//! Helpers for tests that drive the agent with the rdkafka crate (bundled librdkafka).

use std::time::{Duration, Instant};

use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::Agent;

pub fn admin(agent: &Agent) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", agent.bootstrap())
        .create()
        .expect("admin client")
}

pub fn create_topic(agent: &Agent, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = block_on(admin(agent).create_topics([&topic], &AdminOptions::new()))
        .expect("create topics request");
    for r in results {
        r.unwrap_or_else(|e| panic!("create topic {name}: {e:?}"));
    }
}

pub fn producer(agent: &Agent, extra: &[(&str, &str)]) -> FutureProducer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", agent.bootstrap())
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("producer")
}

pub fn consumer(agent: &Agent) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", agent.bootstrap())
        .set("group.id", "unused-assign-only")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()
        .expect("consumer")
}

/// A record as sent and as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

/// Queues a record, waiting while the client's local queue is full; any other refusal fails
/// the test.
pub fn enqueue<K, P>(p: &FutureProducer, mut rec: FutureRecord<'_, K, P>) -> DeliveryFuture
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match p.send_result(rec) {
            Ok(f) => return f,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => panic!("send failed: {e}"),
        }
    }
}

/// Sends every record, returning the (partition, offset) each was acknowledged with. Retries
/// when the client's local queue is full.
pub fn produce_all(p: &FutureProducer, topic: &str, recs: &[Rec]) -> Vec<(i32, i64)> {
    let mut futures = Vec::with_capacity(recs.len());
    for r in recs {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(r.partition)
            .headers(headers);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        if let Some(ts) = r.timestamp {
            rec = rec.timestamp(ts);
        }
        futures.push(enqueue(p, rec));
    }
    futures
        .into_iter()
        .map(|f| {
            let d = block_on(f)
                .expect("delivery future")
                .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
            (d.partition, d.offset)
        })
        .collect()
}

/// Reads partitions `0..partitions` from the beginning until `expected` records arrived.
pub fn consume_all(
    agent: &Agent,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> Vec<(i64, Rec)> {
    let c = consumer(agent);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(120);
    while out.len() < expected {
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} records arrived",
            out.len()
        );
        match c.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(e)) => panic!("consume error: {e}"),
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.map(|v| v.to_vec())))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((
                    m.offset(),
                    Rec {
                        partition: m.partition(),
                        key: m.key().map(|k| k.to_vec()),
                        value: m.payload().map(|v| v.to_vec()),
                        headers,
                        timestamp: m.timestamp().to_millis(),
                    },
                ));
            }
        }
    }
    // Nothing beyond what was produced.
    if let Some(Ok(m)) = c.poll(Duration::from_millis(500)) {
        panic!("unexpected extra record at offset {}", m.offset());
    }
    out
}

pub fn simple_records(n: usize, partitions: i32) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            partition: (i % partitions as usize) as i32,
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(format!("value-{i}-{}", "x".repeat(i % 50)).into_bytes()),
            headers: vec![],
            timestamp: None,
        })
        .collect()
}

/// Checks that each partition holds exactly the records sent to it, in order, at offsets
/// 0, 1, 2, …
pub fn check_partition_order(sent: &[Rec], got: &[(i64, Rec)], partitions: i32) {
    for p in 0..partitions {
        let want: Vec<_> = sent.iter().filter(|r| r.partition == p).collect();
        let mut have: Vec<_> = got.iter().filter(|(_, r)| r.partition == p).collect();
        have.sort_by_key(|(o, _)| *o);
        assert_eq!(want.len(), have.len(), "partition {p} record count");
        for (i, (w, (offset, h))) in want.iter().zip(have).enumerate() {
            assert_eq!(*offset, i as i64, "partition {p} offsets are contiguous");
            assert_eq!(w.key, h.key, "partition {p} offset {offset} key");
            assert_eq!(w.value, h.value, "partition {p} offset {offset} value");
        }
    }
}
