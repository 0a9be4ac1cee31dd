//! When to retry an S3 request and how long to wait first. Sans-IO: the attempt count, the
//! elapsed time and a random number come in as arguments, so the policy is tested directly.
//!
//! Backoff is exponential with full jitter (a uniform wait between zero and the ceiling), so
//! that shards retrying after the same outage spread out instead of arriving together.

use std::time::Duration;

use crate::limits::S3Limits;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts_max: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub operation_timeout: Duration,
}

impl RetryPolicy {
    pub fn from_limits(limits: &S3Limits) -> RetryPolicy {
        RetryPolicy {
            attempts_max: limits.attempts_max,
            backoff_base: limits.backoff_base,
            backoff_max: limits.backoff_max,
            operation_timeout: limits.operation_timeout,
        }
    }

    /// The ceiling of the wait after `attempts_made` failed attempts (1 after the first).
    pub fn backoff_ceiling(&self, attempts_made: u32) -> Duration {
        let doublings = attempts_made.saturating_sub(1).min(31);
        self.backoff_base
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }

    /// How long to wait before the next attempt, or `None` when the operation must fail now:
    /// the attempts are used up, or the wait would run past the operation's deadline.
    /// `random` is any uniformly distributed number.
    pub fn next_delay(
        &self,
        attempts_made: u32,
        elapsed: Duration,
        random: u64,
    ) -> Option<Duration> {
        if attempts_made >= self.attempts_max {
            return None;
        }
        let ceiling_ns = u64::try_from(self.backoff_ceiling(attempts_made).as_nanos())
            .expect("backoff_max fits in u64 nanoseconds");
        let delay = Duration::from_nanos(random % (ceiling_ns + 1));
        if elapsed.saturating_add(delay) >= self.operation_timeout {
            return None;
        }
        Some(delay)
    }
}

/// Whether an HTTP status (and S3 error code, if the body had one) is worth retrying: server
/// errors, throttling and request timeouts are; every other answer will not change.
pub fn is_retriable_status(status: u16, code: Option<&str>) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
        || matches!(
            code,
            Some("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable")
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts_max: 5,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            operation_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let p = policy();
        let ceilings: Vec<u128> = (1..=6).map(|a| p.backoff_ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff_ceiling(0).as_millis(), 100);
        assert_eq!(p.backoff_ceiling(u32::MAX), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_spans_zero_to_the_ceiling() {
        let p = policy();
        assert_eq!(p.next_delay(1, Duration::ZERO, 0), Some(Duration::ZERO));
        assert_eq!(
            p.next_delay(1, Duration::ZERO, 100_000_000),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            p.next_delay(3, Duration::ZERO, 400_000_001),
            Some(Duration::ZERO)
        );
        for random in [1, 12345, u64::MAX / 3, u64::MAX] {
            for attempt in 1..5 {
                let d = p.next_delay(attempt, Duration::ZERO, random).unwrap();
                assert!(d <= p.backoff_ceiling(attempt), "{attempt} {random} {d:?}");
            }
        }
    }

    #[test]
    fn bounded_in_count() {
        let p = policy();
        assert!(p.next_delay(4, Duration::ZERO, 7).is_some());
        assert_eq!(p.next_delay(5, Duration::ZERO, 7), None);
        assert_eq!(p.next_delay(50, Duration::ZERO, 0), None);
    }

    #[test]
    fn bounded_in_total_time() {
        let p = policy();
        assert_eq!(p.next_delay(1, Duration::from_secs(10), 0), None);
        assert_eq!(
            p.next_delay(2, Duration::from_millis(9_900), 150_000_000),
            None,
            "a 150 ms wait would end past the 10 s deadline"
        );
        assert_eq!(
            p.next_delay(2, Duration::from_millis(9_900), 50_000_000),
            Some(Duration::from_millis(50))
        );
    }

    #[test]
    fn a_seeded_source_replays_the_same_waits() {
        let p = policy();
        let waits = |seed: u64| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (1..5)
                .map(|a| p.next_delay(a, Duration::ZERO, rng.u64(..)))
                .collect::<Vec<_>>()
        };
        assert_eq!(waits(42), waits(42));
        assert_ne!(waits(42), waits(43));
    }

    #[test]
    fn which_answers_are_retried() {
        for status in [500, 502, 503, 504, 429, 408] {
            assert!(is_retriable_status(status, None), "{status}");
        }
        assert!(is_retriable_status(503, Some("SlowDown")));
        assert!(is_retriable_status(400, Some("RequestTimeout")));
        for status in [400, 401, 403, 404, 409, 411, 416, 501] {
            assert!(!is_retriable_status(status, None), "{status}");
        }
        assert!(!is_retriable_status(403, Some("AccessDenied")));
    }
}
