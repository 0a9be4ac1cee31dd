#!/usr/bin/env python3
"""End-to-end check of a weft agent with the pure-Python kafka-python client.

An admin client creates a topic with 4 partitions; a producer sends 2000 keyed records with
headers (acks='all') and checks every future's partition and offset; a consumer without a group
assigns every partition, seeks to the beginning and reads everything back, checking keys, values,
headers and that offsets are contiguous per partition.

Exit status: 0 on success, 1 when a check fails, 2 when kafka-python is not installed.
"""

import argparse
import sys
import time
import uuid

try:
    import kafka
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
except ImportError as e:  # pragma: no cover - exercised only where the package is missing
    print(
        "kafka-python is not installed ({}): run `pip install kafka-python`".format(e),
        file=sys.stderr,
    )
    sys.exit(2)

PARTITIONS = 4
RECORDS = 2000
# Upper bounds for liveness only; a healthy agent needs a small fraction of them.
FUTURE_TIMEOUT_S = 60
CONSUME_DEADLINE_S = 120


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def expected_record(i):
    """Key, value and headers of record number i."""
    key = "key-{:05d}".format(i).encode()
    value = "value-{:05d}-".format(i).encode() + b"x" * (i % 97)
    headers = [("index", str(i).encode()), ("source", b"kafka-python")]
    if i % 5 == 0:
        headers.append(("empty", b""))
    return key, value, headers


def create_topic(bootstrap, topic):
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="weft-e2e-admin",
        request_timeout_ms=30000,
    )
    try:
        admin.create_topics(
            [NewTopic(name=topic, num_partitions=PARTITIONS, replication_factor=1)]
        )
        names = admin.list_topics()
        check(topic in names, "created topic {} is not listed: {}".format(topic, names))
    finally:
        admin.close()


def produce(bootstrap, topic):
    """Sends every record; returns {i: (partition, offset)} from the acknowledgements."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="weft-e2e-producer",
        acks="all",
        # kafka-python 3 turns idempotence on by default: InitProducerId and sequence checks.
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=30000,
        max_block_ms=60000,
    )
    try:
        futures = []
        for i in range(RECORDS):
            key, value, headers = expected_record(i)
            futures.append(producer.send(topic, key=key, value=value, headers=headers))
        producer.flush(timeout=FUTURE_TIMEOUT_S)
        acked = {}
        for i, future in enumerate(futures):
            meta = future.get(timeout=FUTURE_TIMEOUT_S)
            check(meta.topic == topic, "record {} acknowledged for topic {}".format(i, meta.topic))
            check(
                0 <= meta.partition < PARTITIONS,
                "record {} acknowledged on partition {}".format(i, meta.partition),
            )
            check(meta.offset >= 0, "record {} acknowledged at offset {}".format(i, meta.offset))
            acked[i] = (meta.partition, meta.offset)
    finally:
        producer.close(timeout=10)

    # Every partition's acknowledged offsets are exactly 0..n-1, and the same key always goes to
    # the same partition.
    by_partition = {}
    for i, (p, o) in acked.items():
        by_partition.setdefault(p, []).append(o)
    for p, offsets in sorted(by_partition.items()):
        offsets.sort()
        check(
            offsets == list(range(len(offsets))),
            "acknowledged offsets of partition {} are not 0..{}: first gaps/duplicates near {}".format(
                p, len(offsets) - 1, _first_mismatch(offsets)
            ),
        )
    check(
        len(by_partition) > 1,
        "2000 distinct keys all went to one partition: {}".format(sorted(by_partition)),
    )
    return acked


def _first_mismatch(offsets):
    for expected, got in enumerate(offsets):
        if expected != got:
            return "index {} (offset {})".format(expected, got)
    return "none"


def consume(bootstrap, topic, acked):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="weft-e2e-consumer",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=30000,
    )
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        consumer.seek_to_beginning()

        expected_counts = {p: 0 for p in range(PARTITIONS)}
        for p, _ in acked.values():
            expected_counts[p] += 1
        end_offsets = consumer.end_offsets(parts)
        for tp in parts:
            check(
                end_offsets[tp] == expected_counts[tp.partition],
                "end offset of partition {} is {}, expected {}".format(
                    tp.partition, end_offsets[tp], expected_counts[tp.partition]
                ),
            )
        beginning = consumer.beginning_offsets(parts)
        check(
            all(beginning[tp] == 0 for tp in parts),
            "beginning offsets are not all 0: {}".format(beginning),
        )

        seen = {}  # (partition, offset) -> record
        next_offset = {p: 0 for p in range(PARTITIONS)}
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        while len(seen) < RECORDS:
            check(
                time.monotonic() < deadline,
                "read {} of {} records within {} s".format(len(seen), RECORDS, CONSUME_DEADLINE_S),
            )
            batches = consumer.poll(timeout_ms=1000, max_records=500)
            for tp, records in batches.items():
                for r in records:
                    check(
                        r.offset == next_offset[tp.partition],
                        "partition {}: got offset {} after {}".format(
                            tp.partition, r.offset, next_offset[tp.partition] - 1
                        ),
                    )
                    next_offset[tp.partition] = r.offset + 1
                    seen[(tp.partition, r.offset)] = r
        check(len(seen) == RECORDS, "read {} records, expected {}".format(len(seen), RECORDS))
        # Nothing more arrives.
        extra = consumer.poll(timeout_ms=500)
        check(
            not any(extra.values()),
            "records beyond the {} produced: {}".format(RECORDS, extra),
        )
    finally:
        consumer.close()

    for i in range(RECORDS):
        key, value, headers = expected_record(i)
        where = acked[i]
        r = seen.get(where)
        check(r is not None, "record {} acknowledged at {} was not read".format(i, where))
        check(r.key == key, "record {} at {}: key {!r}, expected {!r}".format(i, where, r.key, key))
        check(
            r.value == value,
            "record {} at {}: value {!r}, expected {!r}".format(i, where, r.value, value),
        )
        got_headers = [(k, bytes(v) if v is not None else None) for k, v in r.headers]
        check(
            got_headers == headers,
            "record {} at {}: headers {!r}, expected {!r}".format(i, where, got_headers, headers),
        )
    for p in range(PARTITIONS):
        offsets = sorted(o for (q, o) in seen if q == p)
        check(
            offsets == list(range(len(offsets))),
            "offsets read from partition {} are not contiguous from 0".format(p),
        )


def consume_as_group(bootstrap, topic):
    """Two members of one consumer group split the partitions, read every record once, and
    commit; a member that joins afterwards finds nothing left and the commits in place."""
    group = "kafka-python-group-{}".format(uuid.uuid4().hex[:8])

    def member(name):
        c = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=name,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10000,
            heartbeat_interval_ms=500,
            request_timeout_ms=30000,
        )
        c.subscribe([topic])
        return c

    members = [member("py-member-a"), member("py-member-b")]
    seen = set()
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    try:
        while len(seen) < RECORDS:
            check(
                time.monotonic() < deadline,
                "group read {} of {} records within {} s".format(len(seen), RECORDS, CONSUME_DEADLINE_S),
            )
            for c in members:
                for tp, records in c.poll(timeout_ms=200, max_records=500).items():
                    for r in records:
                        key = (tp.partition, r.offset)
                        check(key not in seen, "record {} read twice by the group".format(key))
                        seen.add(key)
                if c.assignment():
                    c.commit()
        assignments = [sorted(tp.partition for tp in c.assignment()) for c in members]
        check(
            sorted(sum(assignments, [])) == list(range(PARTITIONS)),
            "partitions split between the members: {}".format(assignments),
        )
        for c in members:
            c.commit()
    finally:
        for c in members:
            c.close()

    late = member("py-member-late")
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = late.end_offsets(parts)
        for tp in parts:
            committed = late.committed(tp)
            check(committed == ends[tp], "committed {} for {}, end {}".format(committed, tp, ends[tp]))
        extra = late.poll(timeout_ms=3000)
        check(not any(extra.values()), "a new member re-read committed records: {}".format(extra))
    finally:
        late.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT of the agent")
    parser.add_argument("--topic", default=None, help="topic to create (default: a fresh name)")
    args = parser.parse_args()
    topic = args.topic or "kafka-python-e2e-{}".format(uuid.uuid4().hex[:8])

    print("kafka-python {} against {}, topic {}".format(kafka.__version__, args.bootstrap, topic))
    try:
        create_topic(args.bootstrap, topic)
        print("created {} with {} partitions".format(topic, PARTITIONS))
        acked = produce(args.bootstrap, topic)
        counts = {}
        for p, _ in acked.values():
            counts[p] = counts.get(p, 0) + 1
        print("produced {} records, per partition {}".format(len(acked), dict(sorted(counts.items()))))
        consume(args.bootstrap, topic, acked)
        print("consumed and verified {} records".format(RECORDS))
        consume_as_group(args.bootstrap, topic)
        print("a consumer group read every record once and committed")
    except CheckFailed as e:
        print("FAILED: {}".format(e), file=sys.stderr)
        return 1
    except Exception as e:  # a client error is a failure too, with its type for the reader
        print("FAILED: {}: {}".format(type(e).__name__, e), file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
