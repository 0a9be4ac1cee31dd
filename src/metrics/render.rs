//! Renders summed shard snapshots in the OpenMetrics text format, through prometheus-client's
//! encoder. The metric objects are built per scrape from plain numbers, so nothing here is on a
//! request path.

use std::fmt::Error;

use kafka_protocol::messages::ApiKey;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{Counters, Histogram, Rejection, ShardSnapshot, StoreOp};
use crate::produce::FlushReason;
use crate::server::dispatch::APIS;

/// Facts about the process, gathered by the scraping shard.
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    pub cluster_id: String,
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub start_time_seconds: f64,
}

impl ProcessInfo {
    /// Reads CPU time from `getrusage` and resident memory from `/proc/self/statm`.
    pub fn read(cluster_id: &str, start_time_seconds: f64) -> ProcessInfo {
        // SAFETY: getrusage fills the struct we hand it and touches nothing else.
        let cpu_seconds = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0 {
                let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
                secs(usage.ru_utime) + secs(usage.ru_stime)
            } else {
                0.0
            }
        };
        // SAFETY: sysconf only reads a system constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
        let resident_pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        ProcessInfo {
            cluster_id: cluster_id.to_string(),
            cpu_seconds,
            resident_bytes: resident_pages * page,
            start_time_seconds,
        }
    }
}

/// The scrape's body: every shard's snapshot summed, plus the per-shard connection gauges.
pub fn render(shards: &[ShardSnapshot], process: ProcessInfo) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        shards: shards.to_vec(),
        process,
    }));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct Scrape {
    shards: Vec<ShardSnapshot>,
    process: ProcessInfo,
}

type Labels<'a> = Vec<(&'static str, std::borrow::Cow<'a, str>)>;

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), Error> {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge<T>(e: &mut DescriptorEncoder, name: &str, help: &str, v: T) -> Result<(), Error>
where
    ConstGauge<T>: EncodeMetric,
{
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// A family of one metric type, one member per label set.
fn family<'a, M: EncodeMetric + 'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    members: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> Result<(), Error> {
    let mut m = e.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in members {
        metric.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A histogram snapshot as prometheus-client encodes it.
#[derive(Debug)]
struct HistogramValue<'a>(&'a Histogram);

impl EncodeMetric for HistogramValue<'_> {
    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder) -> Result<(), Error> {
        encoder.encode_histogram::<Vec<(String, String)>>(
            self.0.sum(),
            self.0.count(),
            &self.0.buckets(),
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn label(name: &'static str, value: impl Into<std::borrow::Cow<'static, str>>) -> Labels<'static> {
    vec![(name, value.into())]
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| key.to_string(), |k| format!("{k:?}"))
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), Error> {
        let mut t = Counters::default();
        for s in &self.shards {
            t.add(&s.counters);
        }
        let sum = |f: fn(&ShardSnapshot) -> u64| self.shards.iter().map(f).sum::<u64>();
        let p = &self.process;

        family(
            &mut e,
            "weft_info",
            "Build and cluster of this agent (value 1).",
            MetricType::Gauge,
            [(
                vec![
                    ("version", env!("CARGO_PKG_VERSION").into()),
                    ("cluster_id", p.cluster_id.clone().into()),
                ],
                ConstGauge::new(1i64),
            )],
        )?;
        gauge(
            &mut e,
            "weft_shards",
            "Shards (executors) serving.",
            self.shards.len() as i64,
        )?;
        // ConstCounter takes integers or floats; CPU time is fractional.
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(e.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time of the process, in seconds.",
            None,
            MetricType::Counter,
        )?)?;
        gauge(
            &mut e,
            "process_resident_memory_bytes",
            "Resident memory.",
            p.resident_bytes as i64,
        )?;
        gauge(
            &mut e,
            "process_start_time_seconds",
            "Start time, Unix seconds.",
            p.start_time_seconds,
        )?;

        // Requests.
        family(
            &mut e,
            "weft_request_duration_seconds",
            "Time from a decoded request to its answer, by Kafka API.",
            MetricType::Histogram,
            APIS.iter()
                .zip(&t.requests)
                .filter(|(_, r)| r.latency.count() > 0)
                .map(|(a, r)| {
                    (
                        label("api", format!("{:?}", a.key)),
                        HistogramValue(&r.latency),
                    )
                }),
        )?;
        family(
            &mut e,
            "weft_requests",
            "Requests by Kafka API and outcome: answered, or closed the connection.",
            MetricType::Counter,
            APIS.iter().zip(&t.requests).flat_map(|(a, r)| {
                let api: std::borrow::Cow<'static, str> = format!("{:?}", a.key).into();
                [("answered", r.answered), ("closed", r.closed)]
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(move |(outcome, n)| {
                        (
                            vec![("api", api.clone()), ("outcome", outcome.into())],
                            ConstCounter::new(n),
                        )
                    })
            }),
        )?;
        family(
            &mut e,
            "weft_request_errors",
            "Error codes in answers, by Kafka API and code, one per partition or group.",
            MetricType::Counter,
            t.errors.iter().map(|((api, code), n)| {
                (
                    vec![
                        ("api", api_name(*api).into()),
                        ("code", code.to_string().into()),
                    ],
                    ConstCounter::new(*n),
                )
            }),
        )?;
        family(
            &mut e,
            "weft_requests_rejected",
            "Requests that closed their connection before running, by reason.",
            MetricType::Counter,
            Rejection::ALL.iter().map(|r| {
                (
                    label("reason", r.name()),
                    ConstCounter::new(t.rejected[*r as usize]),
                )
            }),
        )?;

        // Network.
        counter(
            &mut e,
            "weft_network_received_bytes",
            "Bytes read from Kafka clients.",
            t.bytes_received,
        )?;
        counter(
            &mut e,
            "weft_network_sent_bytes",
            "Bytes written to Kafka clients.",
            t.bytes_sent,
        )?;
        counter(
            &mut e,
            "weft_produce_bytes",
            "Record-batch bytes accepted by Produce.",
            t.produce_bytes,
        )?;
        counter(
            &mut e,
            "weft_fetch_bytes",
            "Record-batch bytes returned by Fetch.",
            t.fetch_bytes,
        )?;
        family(
            &mut e,
            "weft_connections",
            "Open Kafka connections, by shard.",
            MetricType::Gauge,
            self.shards.iter().map(|s| {
                (
                    label("shard", s.shard.to_string()),
                    ConstGauge::new(s.gauges.connections_open as i64),
                )
            }),
        )?;
        counter(
            &mut e,
            "weft_connections_accepted",
            "Kafka connections accepted.",
            t.connections_accepted,
        )?;
        counter(
            &mut e,
            "weft_connections_refused",
            "Kafka connections closed at once: the shard's connection limit was reached.",
            t.connections_refused,
        )?;

        // Produce path.
        family(
            &mut e,
            "weft_produce_flushes",
            "Segments flushed, by reason: size, age, idle (no upload in flight) or shutdown.",
            MetricType::Counter,
            FlushReason::ALL.iter().map(|r| {
                (
                    label("reason", r.name()),
                    ConstCounter::new(t.flushes[*r as usize]),
                )
            }),
        )?;
        family(
            &mut e,
            "weft_produce_flush_bytes",
            "Size of flushed segments.",
            MetricType::Histogram,
            [(Labels::new(), HistogramValue(&t.flush_bytes))],
        )?;
        family(
            &mut e,
            "weft_produce_flush_age_seconds",
            "Age of a segment's oldest request when it was flushed.",
            MetricType::Histogram,
            [(Labels::new(), HistogramValue(&t.flush_age))],
        )?;
        gauge(
            &mut e,
            "weft_uploads_in_flight",
            "Segment uploads not yet committed.",
            sum(|s| s.gauges.uploads_inflight) as i64,
        )?;
        gauge(
            &mut e,
            "weft_produce_buffered_bytes",
            "Produced bytes not yet acknowledged: in open segments or uploading.",
            sum(|s| s.gauges.produce_buffered_bytes) as i64,
        )?;

        // Object store.
        family(
            &mut e,
            "weft_object_store_duration_seconds",
            "Object-store operation latency, retries included, by operation.",
            MetricType::Histogram,
            StoreOp::ALL
                .iter()
                .zip(&t.object_store)
                .map(|(op, c)| (label("op", op.name()), HistogramValue(&c.latency))),
        )?;
        family(
            &mut e,
            "weft_object_store_requests",
            "Object-store operations by operation and outcome (retries counted once).",
            MetricType::Counter,
            StoreOp::ALL
                .iter()
                .zip(&t.object_store)
                .flat_map(|(op, c)| {
                    let ok = c.latency.count() - c.errors;
                    [("ok", ok), ("error", c.errors)].map(|(outcome, n)| {
                        (
                            vec![("op", op.name().into()), ("outcome", outcome.into())],
                            ConstCounter::new(n),
                        )
                    })
                }),
        )?;
        family(
            &mut e,
            "weft_object_store_retries",
            "Object-store attempts repeated after a retriable failure, by operation.",
            MetricType::Counter,
            StoreOp::ALL.iter().map(|op| {
                (
                    label("op", op.name()),
                    ConstCounter::new(t.object_store_retries[*op as usize]),
                )
            }),
        )?;

        counter(
            &mut e,
            "weft_object_store_put_hedges",
            "Segment PUTs sent again under a new key because the first was slow.",
            t.put_hedges,
        )?;
        counter(
            &mut e,
            "weft_object_store_put_hedges_won",
            "Hedged PUTs whose second copy landed first.",
            t.put_hedges_won,
        )?;

        // Metadata store.
        family(
            &mut e,
            "weft_metadata_store_duration_seconds",
            "Metadata-store operation latency as the shard sees it (queueing included), by operation.",
            MetricType::Histogram,
            t.metadata_store.iter().map(|(op, c)| (label("op", *op), HistogramValue(&c.latency))),
        )?;
        family(
            &mut e,
            "weft_metadata_store_errors",
            "Metadata-store operations that failed, by operation.",
            MetricType::Counter,
            t.metadata_store
                .iter()
                .map(|(op, c)| (label("op", *op), ConstCounter::new(c.errors))),
        )?;

        // Fetch path.
        counter(
            &mut e,
            "weft_cache_hits",
            "Chunk reads served from the shard's cache.",
            sum(|s| s.gauges.cache_hits),
        )?;
        counter(
            &mut e,
            "weft_cache_misses",
            "Chunk reads that went to the object store.",
            sum(|s| s.gauges.cache_misses),
        )?;
        counter(
            &mut e,
            "weft_cache_fills_dropped",
            "Segments another shard offered to a shard's cache while its queue was full.",
            t.cache_fills_dropped,
        )?;
        gauge(
            &mut e,
            "weft_cache_bytes",
            "Bytes held in the chunk caches.",
            sum(|s| s.gauges.cache_bytes) as i64,
        )?;
        counter(
            &mut e,
            "weft_fetch_long_poll_waits",
            "Fetches that waited for data.",
            t.long_poll_waits,
        )?;
        counter(
            &mut e,
            "weft_fetch_long_poll_wakeups",
            "Waiting fetches woken by a commit on one of their partitions.",
            t.long_poll_wakeups,
        )?;
        counter(
            &mut e,
            "weft_fetch_long_poll_timeouts",
            "Waiting fetches that reached their max wait.",
            t.long_poll_timeouts,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Gauges;
    use std::time::Duration;

    #[test]
    fn renders_summed_shards_in_openmetrics_text() {
        let mut c = Counters::default();
        c.requests[0]
            .latency
            .observe_duration(Duration::from_millis(3));
        c.requests[0].answered = 1;
        c.flushes[FlushReason::Idle as usize] = 2;
        c.errors.insert((ApiKey::Produce as i16, 56), 1);
        let shard = |id| ShardSnapshot {
            shard: id,
            counters: c.clone(),
            gauges: Gauges {
                connections_open: 3,
                cache_hits: 5,
                ..Gauges::default()
            },
        };
        let text = render(&[shard(0), shard(1)], ProcessInfo::read("cluster-a", 0.0));
        assert!(
            text.contains("weft_requests_total{api=\"Produce\",outcome=\"answered\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("weft_request_duration_seconds_count{api=\"Produce\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("weft_request_duration_seconds_bucket{le=\"0.005\",api=\"Produce\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("weft_produce_flushes_total{reason=\"idle\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("weft_request_errors_total{api=\"Produce\",code=\"56\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("weft_connections{shard=\"1\"} 3\n"), "{text}");
        assert!(text.contains("weft_cache_hits_total 10\n"), "{text}");
        assert!(text.contains("weft_info{version=\""), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
