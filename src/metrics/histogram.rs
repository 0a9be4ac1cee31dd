//! A fixed-bucket histogram of plain integers, owned by one shard: recording is a few compares
//! and two additions, with no atomics and no allocation.

/// Upper bounds, in seconds, for latencies: 100 µs to 10 s.
pub const SECONDS: &[f64; BUCKETS] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Upper bounds, in bytes, for segment sizes: 1 KiB to 1 GiB.
pub const BYTES: &[f64; BUCKETS] = &[
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    2097152.0,
    4194304.0,
    8388608.0,
    16777216.0,
    33554432.0,
    67108864.0,
    134217728.0,
    268435456.0,
    536870912.0,
    1073741824.0,
];

pub const BUCKETS: usize = 16;

#[derive(Clone, Debug)]
pub struct Histogram {
    bounds: &'static [f64; BUCKETS],
    /// Per bucket, not cumulative; the last one is +Inf.
    counts: [u64; BUCKETS + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    pub const fn new(bounds: &'static [f64; BUCKETS]) -> Histogram {
        Histogram {
            bounds,
            counts: [0; BUCKETS + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(BUCKETS);
        self.counts[i] += 1;
        self.sum += value;
        self.count += 1;
    }

    pub fn observe_duration(&mut self, d: std::time::Duration) {
        self.observe(d.as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn add(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// (upper bound, count in that bucket alone), ending with +Inf, as the encoder takes them.
    pub fn buckets(&self) -> [(f64, u64); BUCKETS + 1] {
        let mut out = [(f64::INFINITY, 0); BUCKETS + 1];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = (
                self.bounds.get(i).copied().unwrap_or(f64::INFINITY),
                self.counts[i],
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_that_holds_them() {
        let mut h = Histogram::new(SECONDS);
        h.observe(0.0001);
        h.observe(0.0002);
        h.observe(20.0);
        let b = h.buckets();
        assert_eq!(b[0], (0.0001, 1));
        assert_eq!(b[1], (0.00025, 1));
        assert_eq!(b[BUCKETS], (f64::INFINITY, 1));
        assert_eq!(h.count(), 3);
        let mut total = Histogram::new(SECONDS);
        total.add(&h);
        total.add(&h);
        assert_eq!(total.count(), 6);
        assert_eq!(total.buckets()[0].1, 2);
    }
}
