//! The Metadata answer, written by hand: straight from borrowed data into a buffer, with no
//! heap allocation once the buffer has grown to fit. Metadata is asked often (every client
//! refreshes it, and asks again after any routing error), and its answer grows with brokers
//! times partitions, so it is the one answer worth writing without the generic codec. The
//! codec stays the oracle: the tests compare every version byte for byte.
//!
//! Versions 0–12 of MetadataResponse: 3 adds the throttle time, 1 racks, the controller and
//! `is_internal`, 2 the cluster id, 5 offline replicas, 7 leader epochs, 8 authorized
//! operations, 9 the flexible encoding (compact lengths, tagged fields, response header v1),
//! 10 topic ids, 11 drops cluster authorized operations, 12 makes topic names nullable.

use bytes::{BufMut, BytesMut};
use uuid::Uuid;

/// A broker as Metadata lists it.
#[derive(Clone, Copy, Debug)]
pub struct Broker<'a> {
    pub node_id: i32,
    pub host: &'a str,
    pub port: i32,
    pub rack: Option<&'a str>,
}

/// One topic of the answer. `partitions` is 0 when `error_code` is set.
#[derive(Clone, Copy, Debug)]
pub struct TopicAnswer<'a> {
    pub error_code: i16,
    pub name: Option<&'a str>,
    pub topic_id: Uuid,
    pub partitions: i32,
}

/// Everything a Metadata answer says, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct MetadataAnswer<'a> {
    pub correlation_id: i32,
    pub version: i16,
    pub brokers: &'a [Broker<'a>],
    pub cluster_id: Option<&'a str>,
    pub controller_id: i32,
    /// Partition `p` of every topic is led by `leaders[p % leaders.len()]`, its only replica.
    pub leaders: &'a [i32],
    pub topics: &'a [TopicAnswer<'a>],
}

/// "Not requested", as Kafka writes authorized operations it was not asked for.
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// Appends the framed answer (size, header, body) to `out`.
pub fn write(out: &mut BytesMut, a: &MetadataAnswer) {
    let v = a.version;
    let flexible = v >= 9;
    let start = out.len();
    out.put_i32(0); // size, filled in at the end
    out.put_i32(a.correlation_id);
    if flexible {
        out.put_u8(0); // header tagged fields
    }
    if v >= 3 {
        out.put_i32(0); // throttle time
    }
    array_len(out, flexible, a.brokers.len());
    for b in a.brokers {
        out.put_i32(b.node_id);
        string(out, flexible, b.host);
        out.put_i32(b.port);
        if v >= 1 {
            nullable_string(out, flexible, b.rack);
        }
        if flexible {
            out.put_u8(0);
        }
    }
    if v >= 2 {
        nullable_string(out, flexible, a.cluster_id);
    }
    if v >= 1 {
        out.put_i32(a.controller_id);
    }
    array_len(out, flexible, a.topics.len());
    for t in a.topics {
        out.put_i16(t.error_code);
        if v >= 12 {
            nullable_string(out, flexible, t.name);
        } else {
            string(out, flexible, t.name.unwrap_or(""));
        }
        if v >= 10 {
            out.put_slice(t.topic_id.as_bytes());
        }
        if v >= 1 {
            out.put_u8(0); // is_internal
        }
        let count = t.partitions.max(0) as usize;
        array_len(out, flexible, count);
        // Partitions are most of the answer: each is built in a stack record and copied
        // whole, one capacity check instead of ten.
        let mut rec = PartitionRecord::new(v);
        out.reserve(count * rec.len);
        // Leaders in turn, without a division per partition.
        let mut next_leader = 0;
        for p in 0..count {
            let leader = match a.leaders.get(next_leader) {
                Some(l) => {
                    next_leader += 1;
                    *l
                }
                None if a.leaders.is_empty() => -1,
                None => {
                    next_leader = 1;
                    a.leaders[0]
                }
            };
            out.put_slice(rec.fill(p as i32, leader));
        }
        if v >= 8 {
            out.put_i32(OPERATIONS_OMITTED);
        }
        if flexible {
            out.put_u8(0);
        }
    }
    if (8..=10).contains(&v) {
        out.put_i32(OPERATIONS_OMITTED);
    }
    if flexible {
        out.put_u8(0);
    }
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

const RECORD_MAX: usize = 40;

/// One partition of the answer, laid out for a version: error code 0, index, leader, leader
/// epoch 0 (v7+: leadership never moves between epochs), replicas and in-sync replicas (the
/// leader alone), no offline replicas (v5+), no tagged fields (v9+). Only the index and the
/// leader change from one partition to the next.
struct PartitionRecord {
    bytes: [u8; RECORD_MAX],
    len: usize,
    /// Offsets of the leader in the record: leader, replica, in-sync replica.
    leader_at: [usize; 3],
}

impl PartitionRecord {
    fn new(v: i16) -> PartitionRecord {
        let flexible = v >= 9;
        let mut r = PartitionRecord {
            bytes: [0; RECORD_MAX],
            len: 0,
            leader_at: [0; 3],
        };
        r.push(&[0, 0]); // error code
        r.push(&[0; 4]); // index
        r.leader_at[0] = r.len;
        r.push(&[0; 4]);
        if v >= 7 {
            r.push(&[0; 4]);
        }
        let one_node: &[u8] = if flexible { &[2] } else { &[0, 0, 0, 1] };
        for i in 1..3 {
            r.push(one_node);
            r.leader_at[i] = r.len;
            r.push(&[0; 4]);
        }
        if v >= 5 {
            r.push(if flexible { &[1] } else { &[0; 4] });
        }
        if flexible {
            r.push(&[0]);
        }
        r
    }

    fn push(&mut self, b: &[u8]) {
        self.bytes[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    fn fill(&mut self, index: i32, leader: i32) -> &[u8] {
        self.bytes[2..6].copy_from_slice(&index.to_be_bytes());
        for at in self.leader_at {
            self.bytes[at..at + 4].copy_from_slice(&leader.to_be_bytes());
        }
        &self.bytes[..self.len]
    }
}

fn uvarint(out: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        out.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

fn array_len(out: &mut BytesMut, flexible: bool, len: usize) {
    if flexible {
        uvarint(out, len as u64 + 1);
    } else {
        out.put_i32(len as i32);
    }
}

fn string(out: &mut BytesMut, flexible: bool, s: &str) {
    if flexible {
        uvarint(out, s.len() as u64 + 1);
    } else {
        out.put_i16(s.len() as i16);
    }
    out.put_slice(s.as_bytes());
}

fn nullable_string(out: &mut BytesMut, flexible: bool, s: Option<&str>) {
    match s {
        Some(s) => string(out, flexible, s),
        None if flexible => out.put_u8(0),
        None => out.put_i16(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::dispatch;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{ApiKey, BrokerId, MetadataResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn answer_parts() -> (Vec<Broker<'static>>, Vec<TopicAnswer<'static>>) {
        let brokers = vec![
            Broker {
                node_id: 0,
                host: "agent-a.internal",
                port: 9092,
                rack: None,
            },
            Broker {
                node_id: 1,
                host: "agent-b.internal",
                port: 9093,
                rack: Some("zone-b"),
            },
            Broker {
                node_id: 2,
                host: "agent-c",
                port: 9094,
                rack: Some("zone-c"),
            },
        ];
        let long_name: &'static str = Box::leak("t".repeat(200).into_boxed_str());
        let topics = vec![
            TopicAnswer {
                error_code: 0,
                name: Some("orders"),
                topic_id: Uuid::from_u128(0x1234),
                partitions: 100,
            },
            TopicAnswer {
                error_code: 3,
                name: Some("missing"),
                topic_id: Uuid::nil(),
                partitions: 0,
            },
            TopicAnswer {
                error_code: 0,
                name: Some(long_name),
                topic_id: Uuid::from_u128(7),
                partitions: 1,
            },
        ];
        (brokers, topics)
    }

    /// The same answer through the generic codec.
    fn oracle(a: &MetadataAnswer) -> bytes::Bytes {
        let s = |v: &str| StrBytes::from_string(v.to_string());
        let resp = MetadataResponse::default()
            .with_brokers(
                a.brokers
                    .iter()
                    .map(|b| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(b.node_id))
                            .with_host(s(b.host))
                            .with_port(b.port)
                            .with_rack(b.rack.map(s))
                    })
                    .collect(),
            )
            .with_cluster_id(a.cluster_id.map(s))
            .with_controller_id(BrokerId(a.controller_id))
            .with_topics(
                a.topics
                    .iter()
                    .map(|t| {
                        MetadataResponseTopic::default()
                            .with_error_code(t.error_code)
                            .with_name(t.name.map(|n| TopicName(s(n))))
                            .with_topic_id(t.topic_id)
                            .with_partitions(
                                (0..t.partitions)
                                    .map(|p| {
                                        let leader =
                                            BrokerId(a.leaders[p as usize % a.leaders.len()]);
                                        MetadataResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_leader_id(leader)
                                            .with_leader_epoch(0)
                                            .with_replica_nodes(vec![leader])
                                            .with_isr_nodes(vec![leader])
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        dispatch::encode(
            ApiKey::Metadata,
            a.version,
            a.version,
            a.correlation_id,
            &resp,
        )
        .expect("codec encodes")
    }

    #[test]
    fn every_version_matches_the_codec_byte_for_byte() {
        let (brokers, topics) = answer_parts();
        for version in 0..=12 {
            for cluster_id in [Some("cluster-1"), None] {
                if cluster_id.is_none() && version < 2 {
                    continue;
                }
                let a = MetadataAnswer {
                    correlation_id: 77,
                    version,
                    brokers: &brokers,
                    cluster_id,
                    controller_id: 1,
                    leaders: &[0, 1, 2],
                    topics: &topics,
                };
                let mut out = BytesMut::new();
                write(&mut out, &a);
                assert_eq!(&out[..], &oracle(&a)[..], "v{version} {cluster_id:?}");
            }
        }
    }

    #[test]
    fn null_topic_names_from_v12() {
        let (brokers, _) = answer_parts();
        let topics = [TopicAnswer {
            error_code: 100,
            name: None,
            topic_id: Uuid::from_u128(9),
            partitions: 0,
        }];
        let a = MetadataAnswer {
            correlation_id: 1,
            version: 12,
            brokers: &brokers,
            cluster_id: Some("c"),
            controller_id: 0,
            leaders: &[0],
            topics: &topics,
        };
        let mut out = BytesMut::new();
        write(&mut out, &a);
        assert_eq!(&out[..], &oracle(&a)[..]);
    }
}
