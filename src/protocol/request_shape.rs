//! A walk over request bodies that checks every array, string and byte length against the bytes
//! actually present, before the `kafka-protocol` codec decodes them.
//!
//! The codec sizes each array's allocation from the count on the wire, so a tiny request
//! claiming two billion elements would make it ask for hundreds of gigabytes. Walking the body
//! first, allocating nothing, guarantees that every count is backed by real bytes, which bounds
//! what decoding can allocate by the frame size (itself bounded by `request_bytes_max`).
//!
//! One function per request type follows that API's schema, by version, for the versions
//! dispatch accepts. The tests check each against bodies the codec encodes.

use kafka_protocol::messages::ApiKey;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("request ends early: {needed} more bytes needed at offset {at}")]
    Truncated { at: usize, needed: usize },
    #[error("length {len} at offset {at} is invalid")]
    BadLength { at: usize, len: i64 },
    #[error("array of {count} elements at offset {at} cannot fit in the {remaining} bytes left")]
    ArrayTooLong {
        at: usize,
        count: u64,
        remaining: usize,
    },
    #[error("varint at offset {0} is too long")]
    BadVarint(usize),
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Flexible versions use compact lengths and tagged fields.
    flex: bool,
}

type Walk = Result<(), ShapeError>;

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn skip(&mut self, n: usize) -> Walk {
        if self.remaining() < n {
            return Err(ShapeError::Truncated {
                at: self.pos,
                needed: n - self.remaining(),
            });
        }
        self.pos += n;
        Ok(())
    }

    fn int(&mut self, width: usize) -> Result<i64, ShapeError> {
        let at = self.pos;
        self.skip(width)?;
        let b = &self.buf[at..at + width];
        Ok(match width {
            2 => i64::from(i16::from_be_bytes([b[0], b[1]])),
            4 => i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            _ => unreachable!("only 16- and 32-bit lengths are read"),
        })
    }

    fn uvarint(&mut self) -> Result<u64, ShapeError> {
        let at = self.pos;
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(ShapeError::Truncated { at, needed: 1 });
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ShapeError::BadVarint(at))
    }

    /// A length prefix: `width`-byte signed when not flexible (-1 is null), else an unsigned
    /// varint holding length + 1 (0 is null). Returns `None` for null.
    fn length(&mut self, width: usize) -> Result<Option<u64>, ShapeError> {
        let at = self.pos;
        if self.flex {
            let n = self.uvarint()?;
            Ok(n.checked_sub(1))
        } else {
            match self.int(width)? {
                -1 => Ok(None),
                n if n >= 0 => Ok(Some(n as u64)),
                n => Err(ShapeError::BadLength { at, len: n }),
            }
        }
    }

    /// A string or nullable string.
    fn string(&mut self) -> Walk {
        if let Some(n) = self.length(2)? {
            self.skip(n as usize)?;
        }
        Ok(())
    }

    /// Bytes or nullable bytes.
    fn bytes(&mut self) -> Walk {
        if let Some(n) = self.length(4)? {
            self.skip(usize::try_from(n).unwrap_or(usize::MAX))?;
        }
        Ok(())
    }

    /// An array (or nullable array) whose elements take at least `elem_bytes_min` bytes each.
    fn array(&mut self, elem_bytes_min: usize, mut elem: impl FnMut(&mut Self) -> Walk) -> Walk {
        let at = self.pos;
        let Some(count) = self.length(4)? else {
            return Ok(());
        };
        let remaining = self.remaining();
        if count.saturating_mul(elem_bytes_min.max(1) as u64) > remaining as u64 {
            return Err(ShapeError::ArrayTooLong {
                at,
                count,
                remaining,
            });
        }
        for _ in 0..count {
            elem(self)?;
        }
        Ok(())
    }

    /// The tagged-field section of a flexible struct.
    fn tags(&mut self) -> Walk {
        if !self.flex {
            return Ok(());
        }
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()?;
            self.skip(usize::try_from(size).unwrap_or(usize::MAX))?;
        }
        Ok(())
    }
}

/// Checks the body of a request (after its header) of an API and version dispatch accepts.
/// APIs without a walk here have no arrays, or are not decoded.
pub fn check(key: ApiKey, version: i16, body: &[u8]) -> Result<(), ShapeError> {
    let flexible_from = match key {
        ApiKey::Produce => 9,
        ApiKey::Fetch => 12,
        ApiKey::ListOffsets => 6,
        ApiKey::Metadata => 9,
        ApiKey::CreateTopics => 5,
        ApiKey::DeleteTopics => 4,
        ApiKey::DescribeConfigs => 4,
        ApiKey::CreatePartitions => 2,
        _ => return Ok(()),
    };
    let mut c = Cursor {
        buf: body,
        pos: 0,
        flex: version >= flexible_from,
    };
    let v = version;
    match key {
        ApiKey::Produce => produce(&mut c),
        ApiKey::Fetch => fetch(&mut c, v),
        ApiKey::ListOffsets => list_offsets(&mut c, v),
        ApiKey::Metadata => metadata(&mut c, v),
        ApiKey::CreateTopics => create_topics(&mut c),
        ApiKey::DeleteTopics => delete_topics(&mut c, v),
        ApiKey::DescribeConfigs => describe_configs(&mut c, v),
        ApiKey::CreatePartitions => create_partitions(&mut c),
        _ => Ok(()),
    }
}

/// Produce v3–v12 (v13 addresses topics by id and is not accepted).
fn produce(c: &mut Cursor) -> Walk {
    c.string()?; // transactional_id
    c.skip(2 + 4)?; // acks, timeout_ms
    c.array(2, |c| {
        c.string()?; // name
        c.array(5, |c| {
            c.skip(4)?; // index
            c.bytes()?; // records
            c.tags()
        })?;
        c.tags()
    })?;
    c.tags()
}

/// Fetch v4–v12.
fn fetch(c: &mut Cursor, v: i16) -> Walk {
    c.skip(4 + 4 + 4 + 4 + 1)?; // replica_id, max_wait_ms, min_bytes, max_bytes, isolation
    if v >= 7 {
        c.skip(4 + 4)?; // session_id, session_epoch
    }
    c.array(2, |c| {
        c.string()?; // topic
        c.array(16, |c| {
            c.skip(4)?; // partition
            if v >= 9 {
                c.skip(4)?; // current_leader_epoch
            }
            c.skip(8)?; // fetch_offset
            if v >= 12 {
                c.skip(4)?; // last_fetched_epoch
            }
            if v >= 5 {
                c.skip(8)?; // log_start_offset
            }
            c.skip(4)?; // partition_max_bytes
            c.tags()
        })?;
        c.tags()
    })?;
    if v >= 7 {
        c.array(2, |c| {
            c.string()?;
            c.array(4, |c| c.skip(4))?;
            c.tags()
        })?;
    }
    if v >= 11 {
        c.string()?; // rack_id
    }
    c.tags()
}

/// ListOffsets v1–v7.
fn list_offsets(c: &mut Cursor, v: i16) -> Walk {
    c.skip(4)?; // replica_id
    if v >= 2 {
        c.skip(1)?; // isolation_level
    }
    c.array(2, |c| {
        c.string()?;
        c.array(12, |c| {
            c.skip(4)?; // partition_index
            if v >= 4 {
                c.skip(4)?; // current_leader_epoch
            }
            c.skip(8)?; // timestamp
            c.tags()
        })?;
        c.tags()
    })?;
    if v >= 10 {
        c.skip(4)?; // timeout_ms
    }
    c.tags()
}

/// Metadata v0–v12.
fn metadata(c: &mut Cursor, v: i16) -> Walk {
    c.array(1, |c| {
        if v >= 10 {
            c.skip(16)?; // topic_id
        }
        c.string()?;
        c.tags()
    })?;
    if v >= 4 {
        c.skip(1)?; // allow_auto_topic_creation
    }
    if (8..=10).contains(&v) {
        c.skip(1)?; // include_cluster_authorized_operations
    }
    if v >= 8 {
        c.skip(1)?; // include_topic_authorized_operations
    }
    c.tags()
}

/// CreateTopics v2–v7.
fn create_topics(c: &mut Cursor) -> Walk {
    c.array(8, |c| {
        c.string()?; // name
        c.skip(4 + 2)?; // num_partitions, replication_factor
        c.array(5, |c| {
            c.skip(4)?; // partition_index
            c.array(4, |c| c.skip(4))?; // broker_ids
            c.tags()
        })?;
        c.array(2, |c| {
            c.string()?; // name
            c.string()?; // value
            c.tags()
        })?;
        c.tags()
    })?;
    c.skip(4 + 1)?; // timeout_ms, validate_only
    c.tags()
}

/// DeleteTopics v1–v6.
fn delete_topics(c: &mut Cursor, v: i16) -> Walk {
    if v >= 6 {
        c.array(17, |c| {
            c.string()?; // name
            c.skip(16)?; // topic_id
            c.tags()
        })?;
    } else {
        c.array(1, |c| c.string())?;
    }
    c.skip(4)?; // timeout_ms
    c.tags()
}

/// DescribeConfigs v1–v4.
fn describe_configs(c: &mut Cursor, v: i16) -> Walk {
    c.array(3, |c| {
        c.skip(1)?; // resource_type
        c.string()?; // resource_name
        c.array(1, |c| c.string())?; // configuration_keys
        c.tags()
    })?;
    c.skip(1)?; // include_synonyms
    if v >= 3 {
        c.skip(1)?; // include_documentation
    }
    c.tags()
}

/// CreatePartitions v0–v3.
fn create_partitions(c: &mut Cursor) -> Walk {
    c.array(6, |c| {
        c.string()?; // name
        c.skip(4)?; // count
        c.array(1, |c| {
            c.array(4, |c| c.skip(4))?; // broker_ids
            c.tags()
        })?;
        c.tags()
    })?;
    c.skip(4 + 1)?; // timeout_ms, validate_only
    c.tags()
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;
    use crate::server::dispatch::APIS;

    fn name(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    fn encoded<T: Encodable>(msg: &T, v: i16) -> Vec<u8> {
        let mut b = BytesMut::new();
        msg.encode(&mut b, v).expect("encodes");
        b.to_vec()
    }

    /// Populated requests of every accepted API, so every array and nested field is walked.
    fn samples(key: ApiKey, v: i16) -> Vec<u8> {
        match key {
            ApiKey::Produce => encoded(
                &ProduceRequest::default()
                    .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
                    .with_topic_data(vec![produce_request::TopicProduceData::default()
                        .with_name(name("t"))
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(1)
                                .with_records(Some(bytes::Bytes::from_static(b"abc"))),
                            produce_request::PartitionProduceData::default(),
                        ])]),
                v,
            ),
            ApiKey::Fetch => encoded(
                &FetchRequest::default()
                    .with_topics(vec![fetch_request::FetchTopic::default()
                        .with_topic(name("t"))
                        .with_partitions(vec![fetch_request::FetchPartition::default(); 2])])
                    .with_forgotten_topics_data(if v >= 7 {
                        vec![fetch_request::ForgottenTopic::default()
                            .with_topic(name("f"))
                            .with_partitions(vec![1, 2])]
                    } else {
                        vec![]
                    }),
                v,
            ),
            ApiKey::ListOffsets => encoded(
                &ListOffsetsRequest::default().with_topics(vec![
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(name("t"))
                        .with_partitions(vec![
                            list_offsets_request::ListOffsetsPartition::default();
                            3
                        ]),
                ]),
                v,
            ),
            ApiKey::Metadata => encoded(
                &MetadataRequest::default().with_topics(Some(vec![
                    metadata_request::MetadataRequestTopic::default().with_name(Some(name("t"))),
                    metadata_request::MetadataRequestTopic::default().with_name(Some(name("u"))),
                ])),
                v,
            ),
            ApiKey::CreateTopics => encoded(
                &CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(name("t"))
                        .with_assignments(vec![
                            create_topics_request::CreatableReplicaAssignment::default()
                                .with_broker_ids(vec![BrokerId(1), BrokerId(2)]),
                        ])
                        .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_value(Some(StrBytes::from_static_str("1")))]),
                ]),
                v,
            ),
            ApiKey::DeleteTopics => {
                let mut r = DeleteTopicsRequest::default();
                if v >= 6 {
                    r.topics = vec![delete_topics_request::DeleteTopicState::default()
                        .with_name(Some(name("t")))];
                } else {
                    r.topic_names = vec![name("t"), name("u")];
                }
                encoded(&r, v)
            }
            ApiKey::DescribeConfigs => encoded(
                &DescribeConfigsRequest::default().with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("t"))
                        .with_configuration_keys(Some(vec![StrBytes::from_static_str("a")])),
                ]),
                v,
            ),
            ApiKey::CreatePartitions => encoded(
                &CreatePartitionsRequest::default().with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(name("t"))
                        .with_count(3)
                        .with_assignments(Some(vec![
                            create_partitions_request::CreatePartitionsAssignment::default()
                                .with_broker_ids(vec![BrokerId(1)]),
                        ])),
                ]),
                v,
            ),
            _ => Vec::new(),
        }
    }

    #[test]
    fn accepts_every_version_the_codec_encodes_and_consumes_it_all() {
        for api in APIS {
            for v in api.min..=api.max {
                let body = samples(api.key, v);
                check(api.key, v, &body)
                    .unwrap_or_else(|e| panic!("{:?} v{v} rejected: {e}", api.key));
                // A byte short is always caught.
                if !body.is_empty() {
                    assert!(
                        check(api.key, v, &body[..body.len() - 1]).is_err(),
                        "{:?} v{v} truncated accepted",
                        api.key
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_huge_array_counts_before_any_allocation() {
        // Metadata v1 claiming 2^31-1 topics in a 4-byte body.
        let body = i32::MAX.to_be_bytes();
        assert!(matches!(
            check(ApiKey::Metadata, 1, &body),
            Err(ShapeError::ArrayTooLong { .. })
        ));
        // Compact array with a huge varint count.
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(check(ApiKey::Metadata, 12, &body).is_err());
        // Negative lengths other than -1.
        let mut body = (-1i16).to_be_bytes().to_vec();
        body.extend(0i16.to_be_bytes());
        body.extend(0i32.to_be_bytes());
        body.extend((-7i32).to_be_bytes());
        assert!(check(ApiKey::Produce, 3, &body).is_err());
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..400usize {
            let body: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            for api in APIS {
                for v in api.min..=api.max {
                    let _ = check(api.key, v, &body);
                }
            }
        }
    }
}
