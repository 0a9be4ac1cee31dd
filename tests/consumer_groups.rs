//! Consumer groups with real clients (the rdkafka crate): subscriptions, rebalances when
//! members leave and join, committed offsets across an agent restart, and a larger group
//! reaching a stable assignment.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::kafka::*;
use common::Agent;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::ClientContext;

/// Commits what the member has consumed before its partitions are taken away, so that the
/// next owner starts exactly where it stopped.
struct CommitOnRevoke;

impl ClientContext for CommitOnRevoke {
    // WEFT_TEST_CLIENT_DEBUG=cgrp,protocol prints the client's own log, for debugging.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        if std::env::var_os("WEFT_TEST_CLIENT_DEBUG").is_some() {
            eprintln!("rdkafka {level:?} {fac}: {log_message}");
        }
    }
}

impl ConsumerContext for CommitOnRevoke {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            // Nothing consumed yet is not an error worth stopping for.
            let _ = consumer.commit_consumer_state(CommitMode::Sync);
        }
    }
}

fn member(agent: &Agent, group: &str, strategy: &str) -> BaseConsumer<CommitOnRevoke> {
    let mut cfg = ClientConfig::new();
    if let Ok(debug) = std::env::var("WEFT_TEST_CLIENT_DEBUG") {
        cfg.set("debug", debug);
    }
    cfg.set("bootstrap.servers", agent.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        // Offsets are stored by the application once a record is processed, so a commit never
        // covers a record the application has not seen.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", strategy)
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500")
        .create_with_context(CommitOnRevoke)
        .expect("consumer")
}

fn agent() -> Agent {
    Agent::start_with(&["--group-initial-rebalance-delay", "300ms"])
}

/// Runs a member on its own thread until `stop`, counting every key it is handed.
fn spawn_member(
    agent: &Agent,
    group: &str,
    topic: &str,
    strategy: &str,
    seen: Arc<Mutex<HashMap<String, usize>>>,
    total: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let c = member(agent, group, strategy);
    c.subscribe(&[topic]).expect("subscribe");
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match c.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(e)) => eprintln!("consumer error: {e}"),
                Some(Ok(m)) => {
                    let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
                    *seen.lock().unwrap().entry(key).or_default() += 1;
                    total.fetch_add(1, Ordering::Relaxed);
                    c.store_offset_from_message(&m).expect("store offset");
                }
            }
        }
        let _ = c.commit_consumer_state(CommitMode::Sync);
        // Dropping the consumer leaves the group.
    })
}

fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn exactly_once_across_a_rebalance(strategy: &str) {
    let agent = agent();
    let topic = "orders";
    create_topic(&agent, topic, 12, &[]);
    let total_records = 200_000;
    let p = producer(&agent, &[("acks", "all"), ("batch.num.messages", "5000")]);
    produce_all(&p, topic, &simple_records(total_records, 12));

    let seen = Arc::new(Mutex::new(HashMap::new()));
    let total = Arc::new(AtomicUsize::new(0));
    let stops: Vec<_> = (0..4).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let started = Instant::now();
    let mut members: Vec<_> = (0..3)
        .map(|i| {
            spawn_member(
                &agent,
                "g-once",
                topic,
                strategy,
                seen.clone(),
                total.clone(),
                stops[i].clone(),
            )
        })
        .collect();
    wait_until("a third of the records", Duration::from_secs(120), || {
        total.load(Ordering::Relaxed) > total_records / 3
    });
    // One member leaves; another joins.
    stops[1].store(true, Ordering::Relaxed);
    join_within(vec![members.remove(1)], Duration::from_secs(60));
    members.push(spawn_member(
        &agent,
        "g-once",
        topic,
        strategy,
        seen.clone(),
        total.clone(),
        stops[3].clone(),
    ));
    let progress = total.clone();
    let keys = seen.clone();
    wait_until("every record", Duration::from_secs(60), move || {
        let n = progress.load(Ordering::Relaxed);
        if n < total_records {
            let keys = keys.lock().unwrap();
            // Records went to partition i % 12 in order, so key i sits at offset i / 12.
            let mut missing: Vec<(usize, usize)> = (0..total_records)
                .filter(|i| !keys.contains_key(&format!("key-{i}")))
                .map(|i| (i % 12, i / 12))
                .collect();
            missing.sort();
            let mut ranges: Vec<(usize, usize, usize)> = Vec::new();
            for (p, o) in missing {
                match ranges.last_mut() {
                    Some(r) if r.0 == p && r.2 + 1 == o => r.2 = o,
                    _ => ranges.push((p, o, o)),
                }
            }
            eprintln!(
                "delivered {n}, distinct {}, missing (partition, from, to): {ranges:?}",
                keys.len()
            );
        }
        n >= total_records
    });
    // A moment longer: anything delivered twice would show up now.
    std::thread::sleep(Duration::from_millis(1500));
    for s in &stops {
        s.store(true, Ordering::Relaxed);
    }
    join_within(members, Duration::from_secs(60));
    println!(
        "{strategy}: {total_records} records consumed by a changing group in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), total_records, "every key consumed");
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n != 1).take(5).collect();
    assert!(twice.is_empty(), "keys consumed more than once: {twice:?}");
}

#[test]
fn three_consumers_read_200k_exactly_once_across_a_rebalance_range() {
    exactly_once_across_a_rebalance("range");
}

#[test]
fn three_consumers_read_200k_exactly_once_across_a_rebalance_cooperative_sticky() {
    exactly_once_across_a_rebalance("cooperative-sticky");
}

#[test]
fn committed_offsets_survive_an_agent_restart() {
    let mut agent = agent();
    create_topic(&agent, "resume", 2, &[]);
    let p = producer(&agent, &[("acks", "all")]);
    produce_all(&p, "resume", &simple_records(1000, 2));

    let first: HashSet<String> = {
        let c = member(&agent, "g-resume", "roundrobin");
        c.subscribe(&["resume"]).unwrap();
        let mut got = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.len() < 400 {
            assert!(
                Instant::now() < deadline,
                "first consumer got {} records",
                got.len()
            );
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                got.insert(String::from_utf8_lossy(m.key().unwrap()).to_string());
                c.store_offset_from_message(&m).expect("store offset");
            }
        }
        c.commit_consumer_state(CommitMode::Sync).expect("commit");
        got
    };
    agent.restart();

    let c = member(&agent, "g-resume", "roundrobin");
    c.subscribe(&["resume"]).unwrap();
    let mut rest = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.len() + rest.len() < 1000 {
        assert!(
            Instant::now() < deadline,
            "resumed consumer got {} records",
            rest.len()
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let key = String::from_utf8_lossy(m.key().unwrap()).to_string();
            assert!(
                !first.contains(&key),
                "{key} was consumed before the restart"
            );
            assert!(rest.insert(key.clone()), "{key} consumed twice");
            c.store_offset_from_message(&m).expect("store offset");
        }
    }
    // Committed positions are visible to any client.
    let committed = c.committed(Duration::from_secs(10)).unwrap();
    assert_eq!(committed.count(), 2);
}

#[test]
fn ten_consumers_reach_a_stable_assignment() {
    let agent = agent();
    create_topic(&agent, "wide", 20, &[]);
    let started = Instant::now();
    let consumers: Vec<_> = (0..10)
        .map(|_| {
            let c = member(&agent, "g-ten", "range");
            c.subscribe(&["wide"]).unwrap();
            c
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no stable assignment");
        for c in &consumers {
            let _ = c.poll(Duration::from_millis(10));
        }
        let assignments: Vec<Vec<i32>> = consumers
            .iter()
            .map(|c| {
                c.assignment()
                    .map(|a| a.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default()
            })
            .collect();
        let mut all: Vec<i32> = assignments.iter().flatten().copied().collect();
        all.sort();
        if assignments.iter().all(|a| a.len() == 2) && all == (0..20).collect::<Vec<_>>() {
            break;
        }
    }
    println!(
        "10 consumers stable on 20 partitions after {:.2}s (session timeout 10s)",
        started.elapsed().as_secs_f64()
    );
    // Closing a consumer serves its rebalance events; closing them one after another on this
    // thread can leave a closing member waiting on the others, so each closes on its own thread.
    let closing: Vec<_> = consumers
        .into_iter()
        .map(|c| std::thread::spawn(move || drop(c)))
        .collect();
    join_within(closing, Duration::from_secs(60));
}

/// Joins threads that close clients, giving up after `limit`: a client stuck in its own close
/// must not hang the suite once the assertions have passed.
fn join_within(threads: Vec<std::thread::JoinHandle<()>>, limit: Duration) {
    let deadline = Instant::now() + limit;
    for t in threads {
        while !t.is_finished() {
            if Instant::now() > deadline {
                eprintln!("a client did not close within {limit:?}; leaving it");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        t.join().expect("client thread");
    }
}

#[test]
fn groups_are_listed_described_and_deleted() {
    use futures::executor::block_on;
    use rdkafka::admin::AdminOptions;
    use rdkafka::error::RDKafkaErrorCode;

    let agent = agent();
    create_topic(&agent, "listed", 2, &[]);
    let p = producer(&agent, &[("acks", "all")]);
    produce_all(&p, "listed", &simple_records(10, 2));

    let c = member(&agent, "g-admin", "range");
    c.subscribe(&["listed"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    while got < 10 {
        assert!(Instant::now() < deadline, "member read {got} records");
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            c.store_offset_from_message(&m).unwrap();
            got += 1;
        }
    }
    c.commit_consumer_state(CommitMode::Sync).unwrap();

    // ListGroups and DescribeGroups, through the client's group list.
    let groups = c
        .fetch_group_list(Some("g-admin"), Duration::from_secs(10))
        .unwrap();
    let g = &groups.groups()[0];
    assert_eq!(g.name(), "g-admin");
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.protocol_type(), "consumer");
    assert_eq!(g.protocol(), "range");
    assert_eq!(g.members().len(), 1);

    let admin = admin(&agent);
    let opts = AdminOptions::new();
    let busy = block_on(admin.delete_groups(&["g-admin"], &opts)).unwrap();
    assert_eq!(
        busy[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::NonEmptyGroup
    );

    drop(c); // leaves the group
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = member(&agent, "g-probe", "range");
        let state = probe
            .fetch_group_list(Some("g-admin"), Duration::from_secs(10))
            .unwrap()
            .groups()[0]
            .state()
            .to_string();
        if state == "Empty" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "group still {state} after its member left"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deleted = block_on(admin.delete_groups(&["g-admin"], &opts)).unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
    let again = block_on(admin.delete_groups(&["g-admin"], &opts)).unwrap();
    assert_eq!(
        again[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::GroupIdNotFound
    );
}
