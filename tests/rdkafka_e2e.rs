//! End-to-end tests with a real Kafka client: the rdkafka crate with its bundled librdkafka,
//! against a real `weft agent` process.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::kafka::*;
use common::Agent;
use futures::executor::block_on;
use rdkafka::admin::{AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

fn hundred_k_over_eight_partitions(acks: &str) {
    let agent = Agent::start();
    let topic = format!("load-acks-{}", acks.replace('-', "m"));
    create_topic(&agent, &topic, 8, &[]);
    let sent = simple_records(100_000, 8);
    let p = producer(&agent, &[("acks", acks), ("batch.num.messages", "2000")]);
    let started = Instant::now();
    let acked = produce_all(&p, &topic, &sent);
    let produce_secs = started.elapsed().as_secs_f64();
    if acks != "0" {
        // Offsets acknowledged are where the records are.
        let mut next: HashMap<i32, i64> = HashMap::new();
        for (partition, offset) in &acked {
            let n = next.entry(*partition).or_default();
            assert_eq!(
                *offset, *n,
                "acks={acks}: partition {partition} offsets in order"
            );
            *n += 1;
        }
    }
    let started = Instant::now();
    let got = consume_all(&agent, &topic, 8, sent.len());
    println!(
        "acks={acks}: produced 100k in {produce_secs:.2}s, consumed in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    check_partition_order(&sent, &got, 8);
}

#[test]
fn produce_consume_100k_acks_all() {
    hundred_k_over_eight_partitions("all");
}

#[test]
fn produce_consume_100k_acks_1() {
    hundred_k_over_eight_partitions("1");
}

#[test]
fn produce_consume_100k_acks_0() {
    hundred_k_over_eight_partitions("0");
}

#[test]
fn keys_headers_and_timestamps_round_trip_byte_exact() {
    let agent = Agent::start();
    create_topic(&agent, "exact", 2, &[]);
    let sent: Vec<Rec> = (0..500)
        .map(|i| Rec {
            partition: i % 2,
            key: match i % 3 {
                0 => None,
                1 => Some(vec![]),
                _ => Some((0..=255u8).cycle().skip(i as usize).take(40).collect()),
            },
            value: match i % 4 {
                0 => None,
                1 => Some(vec![]),
                _ => Some((0..(i * 7 % 3000)).map(|b| (b * 31 % 256) as u8).collect()),
            },
            headers: (0..(i % 4))
                .map(|h| {
                    let v = if h == 1 {
                        None
                    } else {
                        Some(vec![h as u8, 0, 255])
                    };
                    (format!("h{h}-ü"), v)
                })
                .collect(),
            timestamp: Some(1_600_000_000_000 + i64::from(i) * 1000),
        })
        .collect();
    let p = producer(&agent, &[("acks", "all")]);
    produce_all(&p, "exact", &sent);
    let got = consume_all(&agent, "exact", 2, sent.len());
    for part in 0..2 {
        let want: Vec<_> = sent
            .iter()
            .filter(|r| r.partition == part)
            .cloned()
            .collect();
        let mut have: Vec<_> = got
            .iter()
            .filter(|(_, r)| r.partition == part)
            .cloned()
            .collect();
        have.sort_by_key(|(o, _)| *o);
        let have: Vec<Rec> = have.into_iter().map(|(_, r)| r).collect();
        assert_eq!(want, have, "partition {part} records byte-exact");
    }
}

#[test]
fn compressed_batches_pass_through() {
    let agent = Agent::start();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&agent, &topic, 3, &[]);
        let sent = simple_records(3000, 3);
        let p = producer(&agent, &[("acks", "all"), ("compression.type", codec)]);
        produce_all(&p, &topic, &sent);
        let got = consume_all(&agent, &topic, 3, sent.len());
        check_partition_order(&sent, &got, 3);
    }
    // The stored segments hold compressed batches: the agent never decompresses. Highly
    // repetitive values compress well, so the objects are far smaller than the raw values.
    let stored: u64 = common::files_under(&agent.objects_dir())
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let raw: usize = simple_records(3000, 3)
        .iter()
        .map(|r| r.value.as_ref().map_or(0, |v| v.len()))
        .sum::<usize>()
        * 4;
    assert!(
        (stored as usize) < raw,
        "segments ({stored} bytes) should be smaller than the uncompressed values ({raw} bytes)"
    );
}

#[test]
fn acknowledged_records_survive_kill_9_and_restart() {
    let mut agent = Agent::start();
    create_topic(&agent, "durable", 4, &[]);
    let sent = simple_records(20_000, 4);
    let acked = {
        let p = producer(&agent, &[("acks", "all")]);
        produce_all(&p, "durable", &sent)
    };
    agent.restart();
    let got = consume_all(&agent, "durable", 4, sent.len());
    let by_pos: HashMap<(i32, i64), &Rec> =
        got.iter().map(|(o, r)| ((r.partition, *o), r)).collect();
    for (rec, (partition, offset)) in sent.iter().zip(&acked) {
        let stored = by_pos
            .get(&(*partition, *offset))
            .unwrap_or_else(|| panic!("acknowledged {partition}/{offset} missing after restart"));
        assert_eq!(stored.value, rec.value);
    }
    // Producing continues after the restart at the next offsets.
    let p = producer(&agent, &[("acks", "all")]);
    let more = produce_all(&p, "durable", &simple_records(4, 4));
    for (partition, offset) in more {
        assert_eq!(
            offset, 5000,
            "partition {partition} continues after the restart"
        );
    }
}

#[test]
fn graceful_stop_flushes_and_exits_zero() {
    let mut agent = Agent::start_with(&["--batch-timeout", "200ms"]);
    create_topic(&agent, "graceful", 1, &[]);
    let p = producer(&agent, &[("acks", "all")]);
    let acked = produce_all(&p, "graceful", &simple_records(1000, 1));
    assert_eq!(acked.last().map(|a| a.1), Some(999));
    assert_eq!(agent.stop(), Some(0), "SIGTERM exits 0");
    agent.start_again();
    let got = consume_all(&agent, "graceful", 1, 1000);
    assert_eq!(got.len(), 1000);
}

#[test]
fn topic_admin() {
    let agent = Agent::start();
    let a = admin(&agent);
    let opts = AdminOptions::new();
    create_topic(&agent, "admin-a", 2, &[("retention.ms", "1234")]);

    // Creating it again fails with TOPIC_ALREADY_EXISTS.
    let again = block_on(a.create_topics(
        [&NewTopic::new("admin-a", 2, TopicReplication::Fixed(1))],
        &opts,
    ))
    .unwrap();
    assert_eq!(
        again[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::TopicAlreadyExists
    );
    let bad = block_on(a.create_topics(
        [&NewTopic::new("bad name!", 1, TopicReplication::Fixed(1))],
        &opts,
    ))
    .unwrap();
    assert_eq!(
        bad[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidTopic
    );

    // Partitions grow, never shrink.
    let grown = block_on(a.create_partitions([&NewPartitions::new("admin-a", 5)], &opts)).unwrap();
    assert!(grown[0].is_ok(), "{grown:?}");
    let shrink = block_on(a.create_partitions([&NewPartitions::new("admin-a", 3)], &opts)).unwrap();
    assert_eq!(
        shrink[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidPartitions
    );
    let c = consumer(&agent);
    let md = c
        .fetch_metadata(Some("admin-a"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);

    // Configs: the override and real defaults.
    let configs =
        block_on(a.describe_configs([&ResourceSpecifier::Topic("admin-a")], &opts)).unwrap();
    let resource = configs[0].as_ref().expect("topic configs");
    let retention = resource.get("retention.ms").expect("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("1234"));
    assert!(!retention.is_default);
    let max_bytes = resource
        .get("max.message.bytes")
        .expect("max.message.bytes");
    assert_eq!(max_bytes.value.as_deref(), Some("1048588"));
    let broker = block_on(a.describe_configs([&ResourceSpecifier::Broker(0)], &opts)).unwrap();
    let broker = broker[0].as_ref().expect("broker configs");
    assert_eq!(
        broker
            .get("num.partitions")
            .and_then(|e| e.value.as_deref()),
        Some("1")
    );

    // Delete, then the topic is gone from metadata.
    let deleted = block_on(a.delete_topics(&["admin-a"], &opts)).unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
    let missing = block_on(a.delete_topics(&["admin-a"], &opts)).unwrap();
    assert_eq!(
        missing[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::UnknownTopicOrPartition
    );
    let md = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    assert!(md.topics().iter().all(|t| t.name() != "admin-a"));
}

#[test]
fn out_of_range_offsets_are_reported() {
    let agent = Agent::start();
    create_topic(&agent, "oor", 1, &[]);
    let p = producer(&agent, &[("acks", "all")]);
    produce_all(&p, "oor", &simple_records(10, 1));
    let c = consumer(&agent);
    let (low, high) = c
        .fetch_watermarks("oor", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!((low, high), (0, 10));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("oor", 0, Offset::Offset(1_000))
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no out-of-range error reported");
        match c.poll(Duration::from_millis(500)) {
            // librdkafka turns the broker's OFFSET_OUT_OF_RANGE into its own auto-reset error
            // when auto.offset.reset=error.
            Some(Err(KafkaError::MessageConsumption(code))) => {
                assert!(
                    matches!(
                        code,
                        RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset
                    ),
                    "{code:?}"
                );
                break;
            }
            Some(Err(e)) => panic!("unexpected error {e}"),
            Some(Ok(m)) => panic!("unexpected record at {}", m.offset()),
            None => {}
        }
    }
    // Offsets for a timestamp: every record was produced now, so an old timestamp gives 0.
    let mut q = TopicPartitionList::new();
    q.add_partition_offset("oor", 0, Offset::Offset(0)).unwrap();
    let found = c.offsets_for_times(q, Duration::from_secs(10)).unwrap();
    let e = found.elements();
    assert_eq!(e[0].offset(), Offset::Offset(0));
}
