//! The hand-written hot paths allocate nothing once their buffers have grown: counted by a
//! global allocator that tallies every allocation this test binary makes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use uuid::Uuid;
use weft::protocol::client_id;
use weft::protocol::metadata_writer::{self, Broker, MetadataAnswer, TopicAnswer};

struct Counting;

thread_local! {
    // Per thread, so the test harness's own threads do not disturb the count.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(|a| a.get());
    f();
    ALLOCATIONS.with(|a| a.get()) - before
}

#[test]
fn metadata_answer_of_three_agents_and_100_partitions_allocates_nothing() {
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
    let mut out = BytesMut::with_capacity(64 * 1024);
    for version in [1, 9, 12] {
        let answer = MetadataAnswer {
            correlation_id: 1,
            version,
            brokers: &brokers,
            cluster_id: Some("cluster"),
            controller_id: 0,
            leaders: &[0, 1, 2],
            topics: &topics,
        };
        let n = allocations_in(|| {
            for _ in 0..1000 {
                out.clear();
                metadata_writer::write(&mut out, &answer);
            }
        });
        assert_eq!(n, 0, "v{version}: allocations in 1000 answers");
        assert!(out.len() > 100 * 20, "v{version}: {} bytes", out.len());
    }
}

#[test]
fn client_id_hints_allocate_nothing() {
    let id =
        "payments-7,ws_az=us-east-1a;ws_host_override=lb.internal,warpstream_interzone_lb=true";
    let n = allocations_in(|| {
        for _ in 0..1000 {
            let h = client_id::parse(std::hint::black_box(id));
            assert_eq!(h.zone, Some("us-east-1a"));
        }
    });
    assert_eq!(n, 0);
}
