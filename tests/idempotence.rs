//! Idempotent producers: requests whose answers are delayed past the client's timeout are
//! retried, and the agent acknowledges each retry with the original offset instead of writing
//! the records twice.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::kafka::*;
use common::proxy::Proxy;
use common::{free_port, Agent};
use futures::executor::block_on;
use rdkafka::producer::FutureRecord;

#[test]
fn delayed_and_retried_requests_write_no_duplicate() {
    let proxy_port = free_port();
    let agent = Agent::start_with(&["--advertise-port", &proxy_port.to_string()]);
    let proxy = Proxy::start(proxy_port, agent.addr());
    create_topic(&agent, "idem", 4, &[]);

    let mut cfg = rdkafka::ClientConfig::new();
    cfg.set("bootstrap.servers", format!("127.0.0.1:{proxy_port}"))
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("request.timeout.ms", "800")
        .set("socket.timeout.ms", "800")
        .set("retry.backoff.ms", "50")
        .set("message.timeout.ms", "120000");
    let producer: rdkafka::producer::FutureProducer = cfg.create().expect("producer");

    let total = 3000usize;
    let send = |i: usize| {
        let value = format!("v{i}");
        let rec = FutureRecord::<(), str>::to("idem")
            .partition((i % 4) as i32)
            .payload(&value);
        producer
            .send_result(rec)
            .map_err(|(e, _)| e)
            .expect("queued")
    };
    let mut acked: HashMap<(i32, i64), usize> = HashMap::new();
    let mut wait = |i: usize, f: rdkafka::producer::DeliveryFuture| {
        let d = block_on(f)
            .expect("delivery")
            .unwrap_or_else(|(e, _)| panic!("record {i} failed: {e}"));
        assert!(
            acked.insert((d.partition, d.offset), i).is_none(),
            "two records acknowledged at {}/{}",
            d.partition,
            d.offset
        );
    };
    // A first third goes through normally, so the producer has its id and connection.
    let first: Vec<_> = (0..total / 3).map(send).collect();
    for (i, f) in first.into_iter().enumerate() {
        wait(i, f);
    }
    // The next third is answered late: past the client's timeout, so it resends the requests
    // on a new connection, after the agent has already committed them.
    proxy.stall_answers.store(true, Ordering::Relaxed);
    let second: Vec<_> = (total / 3..2 * total / 3).map(send).collect();
    std::thread::sleep(Duration::from_millis(2500));
    proxy.stall_answers.store(false, Ordering::Relaxed);
    let third: Vec<_> = (2 * total / 3..total).map(send).collect();
    for (i, f) in (total / 3..).zip(second.into_iter().chain(third)) {
        wait(i, f);
    }
    let reconnects = proxy.connections.load(Ordering::Relaxed);
    println!("proxy connections: {reconnects}");
    assert!(
        reconnects >= 2,
        "the stall should have forced a reconnect and retries"
    );

    // Exactly the records sent, each once, in order per partition, at the acknowledged offsets.
    let got = consume_all(&agent, "idem", 4, total);
    for (offset, rec) in &got {
        let i = acked[&(rec.partition, *offset)];
        assert_eq!(rec.value.as_deref(), Some(format!("v{i}").as_bytes()));
    }
    for p in 0..4 {
        let mut mine: Vec<_> = got.iter().filter(|(_, r)| r.partition == p).collect();
        mine.sort_by_key(|(o, _)| *o);
        let order: Vec<usize> = mine.iter().map(|(o, _)| acked[&(p, *o)]).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "partition {p} keeps send order"
        );
    }
}
