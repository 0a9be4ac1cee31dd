//! Idempotent-producer state per (producer id, partition), and the sequence checks Kafka makes
//! before appending a batch. Sans-IO: backends load and store the state inside their commit
//! transaction and call [`check`] and [`record`] in between.

use super::{BatchOutcome, ProducerBatch};

/// Batches remembered per producer and partition, as in Kafka: a producer has at most five
/// requests in flight per partition, so a retry is always one of the last five.
pub const RECENT_BATCHES_MAX: usize = 5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerState {
    pub epoch: i16,
    /// Newest last.
    pub recent: Vec<RecentBatch>,
}

/// The sequence of the last record of a batch. Sequences wrap from `i32::MAX` to 0.
pub fn last_sequence(first: i32, offset_count: u32) -> i32 {
    let span = i64::from(offset_count) - 1;
    ((i64::from(first) + span) % (i64::from(i32::MAX) + 1)) as i32
}

fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

/// Decides whether a batch may be appended.
pub fn check(state: Option<&ProducerState>, batch: &ProducerBatch) -> BatchOutcome {
    let Some(state) = state else {
        // A producer seen for the first time on this partition starts at sequence 0.
        return if batch.base_sequence == 0 {
            BatchOutcome::Appended
        } else {
            BatchOutcome::OutOfOrderSequence
        };
    };
    if batch.producer_epoch < state.epoch {
        return BatchOutcome::StaleEpoch;
    }
    if batch.producer_epoch > state.epoch {
        // A bumped epoch restarts the sequence.
        return if batch.base_sequence == 0 {
            BatchOutcome::Appended
        } else {
            BatchOutcome::OutOfOrderSequence
        };
    }
    let last = last_sequence(batch.base_sequence, batch.offset_count);
    if let Some(dup) = state
        .recent
        .iter()
        .find(|r| r.first_sequence == batch.base_sequence && r.last_sequence == last)
    {
        return BatchOutcome::Duplicate {
            base_offset: dup.base_offset,
        };
    }
    match state.recent.last() {
        Some(newest) if batch.base_sequence != next_sequence(newest.last_sequence) => {
            BatchOutcome::OutOfOrderSequence
        }
        _ => BatchOutcome::Appended,
    }
}

/// The state after appending `batch` at `base_offset`.
pub fn record(
    state: Option<ProducerState>,
    batch: &ProducerBatch,
    base_offset: i64,
) -> ProducerState {
    let mut state = match state {
        Some(s) if s.epoch == batch.producer_epoch => s,
        _ => ProducerState {
            epoch: batch.producer_epoch,
            recent: Vec::new(),
        },
    };
    state.recent.push(RecentBatch {
        first_sequence: batch.base_sequence,
        last_sequence: last_sequence(batch.base_sequence, batch.offset_count),
        base_offset,
    });
    if state.recent.len() > RECENT_BATCHES_MAX {
        state.recent.remove(0);
    }
    state
}

/// Text form of the recent batches for storage: `first:last:offset` joined by `;`.
pub fn encode_recent(recent: &[RecentBatch]) -> String {
    recent
        .iter()
        .map(|r| format!("{}:{}:{}", r.first_sequence, r.last_sequence, r.base_offset))
        .collect::<Vec<_>>()
        .join(";")
}

pub fn decode_recent(text: &str) -> Option<Vec<RecentBatch>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(';')
        .map(|item| {
            let mut parts = item.split(':');
            let first_sequence = parts.next()?.parse().ok()?;
            let last_sequence = parts.next()?.parse().ok()?;
            let base_offset = parts.next()?.parse().ok()?;
            Some(RecentBatch {
                first_sequence,
                last_sequence,
                base_offset,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, seq: i32, count: u32) -> ProducerBatch {
        ProducerBatch {
            batch_index: 0,
            offset_in_chunk: 0,
            offset_count: count,
            producer_id: 7,
            producer_epoch: epoch,
            base_sequence: seq,
        }
    }

    #[test]
    fn sequences_must_follow_on() {
        assert_eq!(check(None, &batch(0, 0, 5)), BatchOutcome::Appended);
        assert_eq!(
            check(None, &batch(0, 3, 5)),
            BatchOutcome::OutOfOrderSequence
        );
        let s = record(None, &batch(0, 0, 5), 100);
        assert_eq!(check(Some(&s), &batch(0, 5, 2)), BatchOutcome::Appended);
        assert_eq!(
            check(Some(&s), &batch(0, 6, 2)),
            BatchOutcome::OutOfOrderSequence
        );
        assert_eq!(
            check(Some(&s), &batch(0, 0, 5)),
            BatchOutcome::Duplicate { base_offset: 100 }
        );
    }

    #[test]
    fn remembers_the_last_five_batches() {
        let mut s = None;
        for i in 0..7 {
            s = Some(record(s, &batch(0, i * 2, 2), 1000 + i64::from(i) * 2));
        }
        let s = s.unwrap();
        assert_eq!(s.recent.len(), RECENT_BATCHES_MAX);
        assert_eq!(
            check(Some(&s), &batch(0, 4, 2)),
            BatchOutcome::Duplicate { base_offset: 1004 }
        );
        // Older than the last five: no longer recognised, and out of order.
        assert_eq!(
            check(Some(&s), &batch(0, 2, 2)),
            BatchOutcome::OutOfOrderSequence
        );
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let s = record(None, &batch(3, 0, 1), 0);
        assert_eq!(check(Some(&s), &batch(2, 1, 1)), BatchOutcome::StaleEpoch);
        assert_eq!(check(Some(&s), &batch(4, 0, 1)), BatchOutcome::Appended);
        assert_eq!(
            check(Some(&s), &batch(4, 9, 1)),
            BatchOutcome::OutOfOrderSequence
        );
        let s = record(Some(s), &batch(4, 0, 1), 1);
        assert_eq!(s.epoch, 4);
        assert_eq!(s.recent.len(), 1);
    }

    #[test]
    fn sequences_wrap() {
        assert_eq!(last_sequence(i32::MAX, 1), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 2), 0);
        let s = record(None, &batch(0, 0, 1), 0);
        let mut s = s;
        s.recent[0].last_sequence = i32::MAX;
        assert_eq!(check(Some(&s), &batch(0, 0, 1)), BatchOutcome::Appended);
    }

    #[test]
    fn recent_batches_round_trip_as_text() {
        let s = record(
            record(None, &batch(0, 0, 3), 10).into(),
            &batch(0, 3, 1),
            13,
        );
        let text = encode_recent(&s.recent);
        assert_eq!(decode_recent(&text).unwrap(), s.recent);
        assert_eq!(decode_recent("").unwrap(), vec![]);
        assert!(decode_recent("1:2").is_none());
    }
}
