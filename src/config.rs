//! Agent configuration: the raw command-line flags (each readable from a `WEFT_…` env var) and
//! the validated [`AgentConfig`] built from them once at start-up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::limits::Limits;

/// Environment variables that agents of other Kafka-on-object-storage platforms use, read as
/// their weft equivalents so an existing deployment's environment carries over. A `WEFT_…`
/// variable that is set wins.
pub const ENV_ALIASES: &[(&str, &str)] = &[
    ("WARPSTREAM_BUCKET_URL", "WEFT_BUCKET_URL"),
    (
        "WARPSTREAM_DISCOVERY_KAFKA_HOSTNAME_OVERRIDE",
        "WEFT_ADVERTISE_HOST",
    ),
    (
        "WARPSTREAM_DISCOVERY_KAFKA_PORT_OVERRIDE",
        "WEFT_ADVERTISE_PORT",
    ),
];

/// Copies each alias in [`ENV_ALIASES`] to its `WEFT_…` name when that is unset. Call before
/// parsing flags and before any thread starts (it changes the process environment).
pub fn apply_env_aliases() {
    for (alias, name) in ENV_ALIASES {
        if std::env::var_os(name).is_none() {
            if let Some(v) = std::env::var_os(alias) {
                std::env::set_var(name, v);
            }
        }
    }
}

/// Flags of `weft agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// Address the Kafka listener binds (one SO_REUSEPORT socket per shard).
    #[arg(long, env = "WEFT_KAFKA_ADDR", default_value = "0.0.0.0:9092")]
    pub kafka_addr: SocketAddr,

    /// Host put in Metadata answers. Default: this host's private IPv4 address, or 127.0.0.1
    /// when listening on loopback.
    #[arg(long, env = "WEFT_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,

    /// Port put in Metadata answers, when clients reach the agent through a proxy or load
    /// balancer on another port. Default: the port of --kafka-addr.
    #[arg(long, env = "WEFT_ADVERTISE_PORT")]
    pub advertise_port: Option<u16>,

    /// Address of the HTTP server: health checks (`/healthz`, `/readyz`) and Prometheus
    /// metrics (`/metrics`).
    #[arg(long, env = "WEFT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Directory for the embedded metadata store and the default object store.
    #[arg(long, env = "WEFT_DATA_DIR", default_value = "./weft-data")]
    pub data_dir: PathBuf,

    /// Object store URL: `file://DIR`, `s3://BUCKET?region=R&endpoint=URL&addressing=path|virtual`
    /// (credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or
    /// `mem://NAME`. Default: `file://<data-dir>/objects`.
    #[arg(long, env = "WEFT_BUCKET_URL")]
    pub bucket_url: Option<String>,

    /// Metadata store URL: `sqlite://PATH`. Default: `sqlite://<data-dir>/metadata.db`.
    #[arg(long, env = "WEFT_METADATA_URL")]
    pub metadata_url: Option<String>,

    /// Shards (cores) to run, one glommio executor each. Default: every available core.
    #[arg(long, env = "WEFT_CORES")]
    pub cores: Option<usize>,

    /// Flush policy preset: `low-latency` (flush as soon as no upload is in flight, else after
    /// 5 ms) or `cost` (flush after 250 ms or 8 MiB, whichever comes first). The flags below
    /// override single values of the preset. See `FlushPreset` for what each costs.
    #[arg(long, env = "WEFT_FLUSH_PRESET", value_enum, default_value_t = FlushPreset::LowLatency)]
    pub flush_preset: FlushPreset,

    /// Longest a produce request waits in the open segment before it is flushed, e.g. `5ms`,
    /// `250ms`, `1s`. Default: the preset's (5ms for low-latency, 250ms for cost).
    #[arg(long, env = "WEFT_BATCH_TIMEOUT", value_parser = parse_duration)]
    pub batch_timeout: Option<Duration>,

    /// A shard's open segment is flushed once it holds this many bytes. Default: the preset's
    /// (8388608 for both).
    #[arg(long, env = "WEFT_SEGMENT_BYTES_TARGET")]
    pub segment_bytes_target: Option<usize>,

    /// Segment uploads a shard may have in flight at once. Default: the preset's (4 for both).
    #[arg(long, env = "WEFT_UPLOADS_INFLIGHT_MAX")]
    pub uploads_inflight_max: Option<usize>,

    /// Flush at once when no upload is in flight (`true`/`false`). Default: the preset's
    /// (true for low-latency, false for cost).
    #[arg(long, env = "WEFT_FLUSH_WHEN_IDLE", action = clap::ArgAction::Set)]
    pub flush_when_idle: Option<bool>,

    /// A segment PUT to S3 still unanswered after this long is sent again under a new key,
    /// and the first to land is kept, so one slow PUT does not hold back the acknowledgements
    /// behind it (`off` to never). Segments of at most 1 MiB only. Default: the preset's (50ms
    /// for low-latency, off for cost); off for other stores.
    #[arg(long, env = "WEFT_PUT_HEDGE_AFTER", value_parser = parse_hedge_after)]
    pub put_hedge_after: Option<Duration>,

    /// Create unknown topics on Metadata and Produce requests.
    #[arg(long, env = "WEFT_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Partitions of auto-created topics, and of CreateTopics requests that ask for the default.
    #[arg(long, env = "WEFT_DEFAULT_PARTITIONS", default_value_t = 1)]
    pub default_partitions: i32,

    /// `retention.ms` of topics that do not set it (-1: keep forever).
    #[arg(long, env = "WEFT_DEFAULT_RETENTION_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    pub default_retention_ms: i64,

    /// How long the first rebalance of an empty consumer group waits for more members to join
    /// (Kafka's group.initial.rebalance.delay.ms).
    #[arg(long, env = "WEFT_GROUP_INITIAL_REBALANCE_DELAY", default_value = "3s", value_parser = parse_duration)]
    pub group_initial_rebalance_delay: Duration,

    /// Largest request accepted, in bytes (Kafka's socket.request.max.bytes).
    #[arg(long, env = "WEFT_REQUEST_BYTES_MAX", default_value_t = 100 * 1024 * 1024)]
    pub request_bytes_max: usize,

    /// Bytes of segment data each shard keeps cached for fetches.
    #[arg(long, env = "WEFT_FETCH_CACHE_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub fetch_cache_bytes: usize,
}

/// How a shard trades object-store requests for produce latency.
///
/// The arithmetic, per shard, with S3 list prices in us-east-1 ($0.005 per 1000 PUTs, $0.0004
/// per 1000 GETs) and a 30-day month (2,592,000 s): one PUT per second all month costs $12.96,
/// one GET per second $1.04.
///
/// - `LowLatency` (the default): a segment is flushed as soon as no upload is in flight, and
///   after 5 ms otherwise, with up to 4 uploads in flight. An acknowledgement waits about one
///   PUT plus one commit. Under steady traffic a shard PUTs up to
///   `min(1 / 5 ms, 4 / PUT latency)` times a second: 80/s at a 50 ms PUT, $1,036.80 a month;
///   a lone producer sending one request at a time causes one PUT per request.
/// - `Cost`: a segment is flushed after 250 ms or once it holds 8 MiB, never because the
///   uploader is idle. A shard PUTs at most 4 times a second below 32 MiB/s (8 MiB × 4), which
///   is $51.84 a month, and acknowledgements wait up to 250 ms plus one PUT.
///
/// Above the size target both presets PUT `throughput / 8 MiB` times a second. Reads cost
/// little in comparison: tailing consumers are served from the shard's cache, and a consumer
/// catching up issues one ranged GET per chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FlushPreset {
    LowLatency,
    Cost,
}

/// The flush settings a preset stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushSettings {
    pub batch_timeout: Duration,
    pub segment_bytes_target: usize,
    pub uploads_inflight_max: usize,
    pub flush_when_idle: bool,
    pub put_hedge_after: Option<Duration>,
}

impl FlushPreset {
    pub fn settings(self) -> FlushSettings {
        match self {
            FlushPreset::LowLatency => FlushSettings {
                batch_timeout: Duration::from_millis(5),
                segment_bytes_target: 8 * 1024 * 1024,
                uploads_inflight_max: 4,
                flush_when_idle: true,
                put_hedge_after: Some(Duration::from_millis(50)),
            },
            FlushPreset::Cost => FlushSettings {
                batch_timeout: Duration::from_millis(250),
                segment_bytes_target: 8 * 1024 * 1024,
                uploads_inflight_max: 4,
                flush_when_idle: false,
                put_hedge_after: None,
            },
        }
    }
}

/// A duration, or `off` (zero) for "never".
fn parse_hedge_after(s: &str) -> Result<Duration, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        Ok(Duration::ZERO)
    } else {
        parse_duration(s)
    }
}

/// Parses `250ms`, `5s`, `1m` or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "ms"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a duration such as 250ms or 1s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "us" => Ok(Duration::from_micros(n)),
        _ => Err(format!("'{s}': unknown unit '{unit}' (use us, ms, s or m)")),
    }
}

/// The validated configuration every shard reads.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub kafka_addr: SocketAddr,
    pub advertise_host: String,
    pub advertise_port: u16,
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub bucket_url: String,
    pub metadata_url: String,
    pub cores: usize,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub default_retention_ms: i64,
    /// The id this agent answers with in Metadata (one agent for now).
    pub node_id: i32,
    pub group_initial_rebalance_delay: Duration,
    pub limits: Limits,
}

impl AgentConfig {
    pub fn from_args(args: &AgentArgs) -> Result<AgentConfig, String> {
        let mut limits = Limits::production();
        let preset = args.flush_preset.settings();
        limits.batch_timeout = args.batch_timeout.unwrap_or(preset.batch_timeout);
        limits.segment_bytes_target = args
            .segment_bytes_target
            .unwrap_or(preset.segment_bytes_target);
        limits.uploads_inflight_max = args
            .uploads_inflight_max
            .unwrap_or(preset.uploads_inflight_max);
        limits.flush_when_idle = args.flush_when_idle.unwrap_or(preset.flush_when_idle);
        limits.request_bytes_max = args.request_bytes_max;
        limits.fetch_cache_bytes_max = args.fetch_cache_bytes;
        if limits.uploads_inflight_max == 0 {
            return Err("--uploads-inflight-max must be at least 1".into());
        }
        if limits.segment_bytes_target == 0 {
            return Err("--segment-bytes-target must be at least 1".into());
        }
        if args.default_partitions < 1 || args.default_partitions > limits.topic_partitions_max {
            return Err(format!(
                "--default-partitions must be between 1 and {}",
                limits.topic_partitions_max
            ));
        }
        let available = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cores = args.cores.unwrap_or(available);
        if cores == 0 {
            return Err("--cores must be at least 1".into());
        }
        let data_dir = args.data_dir.clone();
        let bucket_url = args
            .bucket_url
            .clone()
            .unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display()));
        let metadata_url = args
            .metadata_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("metadata.db").display()));
        // Hedging pays against a remote store's latency outliers; a local one has none to hedge.
        limits.put_hedge_after = match args.put_hedge_after {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None if bucket_url.starts_with("s3://") => preset.put_hedge_after,
            None => None,
        };
        let advertise_host = match &args.advertise_host {
            Some(h) if !h.is_empty() => h.clone(),
            _ => default_advertise_host(args.kafka_addr.ip()),
        };
        Ok(AgentConfig {
            kafka_addr: args.kafka_addr,
            advertise_host,
            advertise_port: args.advertise_port.unwrap_or(args.kafka_addr.port()),
            http_addr: args.http_addr,
            data_dir,
            bucket_url,
            metadata_url,
            cores,
            auto_create_topics: args.auto_create_topics,
            default_partitions: args.default_partitions,
            default_retention_ms: args.default_retention_ms,
            node_id: 0,
            group_initial_rebalance_delay: args.group_initial_rebalance_delay,
            limits,
        })
    }
}

/// The host to advertise when none is configured: the listen address when it is a specific
/// one, 127.0.0.1 on loopback, else the first private IPv4 address of this host.
fn default_advertise_host(listen: IpAddr) -> String {
    if listen.is_loopback() {
        return Ipv4Addr::LOCALHOST.to_string();
    }
    if !listen.is_unspecified() {
        return listen.to_string();
    }
    private_ipv4()
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| Ipv4Addr::LOCALHOST.to_string())
}

/// First RFC 1918 IPv4 address on an interface that is up, else the first non-loopback one.
fn private_ipv4() -> Option<Ipv4Addr> {
    let mut found = Vec::new();
    // SAFETY: getifaddrs fills a linked list that we walk read-only and free exactly once.
    unsafe {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut head) != 0 {
            return None;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            let up = ifa.ifa_flags & (libc::IFF_UP as u32) != 0;
            if up && !ifa.ifa_addr.is_null() && (*ifa.ifa_addr).sa_family as i32 == libc::AF_INET {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    found.push(ip);
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    found
        .iter()
        .copied()
        .find(|ip| ip.is_private())
        .or_else(|| found.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_millis(7));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5h").is_err());
    }

    fn try_args(flags: &[&str]) -> Result<AgentArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            agent: AgentArgs,
        }
        let argv = std::iter::once("weft").chain(flags.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv).map(|c| c.agent)
    }

    fn args(flags: &[&str]) -> AgentArgs {
        try_args(flags).expect("flags parse")
    }

    #[test]
    fn low_latency_is_the_default_preset() {
        let c = AgentConfig::from_args(&args(&[])).unwrap();
        assert_eq!(c.limits.batch_timeout, Duration::from_millis(5));
        assert_eq!(c.limits.segment_bytes_target, 8 * 1024 * 1024);
        assert_eq!(c.limits.uploads_inflight_max, 4);
        assert!(c.limits.flush_when_idle);
    }

    #[test]
    fn puts_to_s3_are_hedged_under_low_latency_only() {
        let hedge = |flags: &[&str]| {
            AgentConfig::from_args(&args(flags))
                .unwrap()
                .limits
                .put_hedge_after
        };
        let s3 = ["--bucket-url", "s3://b?endpoint=http://127.0.0.1:1"];
        assert_eq!(hedge(&s3), Some(Duration::from_millis(50)));
        assert_eq!(hedge(&[]), None, "a local store is not hedged");
        assert_eq!(
            hedge(&[&s3[..], &["--flush-preset", "cost"]].concat()),
            None
        );
        assert_eq!(
            hedge(&[&s3[..], &["--put-hedge-after", "off"]].concat()),
            None
        );
        assert_eq!(
            hedge(&["--put-hedge-after", "30ms"]),
            Some(Duration::from_millis(30))
        );
    }

    #[test]
    fn cost_preset_waits_and_explicit_flags_override_it() {
        let c = AgentConfig::from_args(&args(&["--flush-preset", "cost"])).unwrap();
        assert_eq!(c.limits.batch_timeout, Duration::from_millis(250));
        assert_eq!(c.limits.segment_bytes_target, 8 * 1024 * 1024);
        assert!(!c.limits.flush_when_idle);
        let c = AgentConfig::from_args(&args(&[
            "--flush-preset",
            "cost",
            "--batch-timeout",
            "50ms",
            "--segment-bytes-target",
            "1000",
            "--uploads-inflight-max",
            "2",
            "--flush-when-idle",
            "true",
        ]))
        .unwrap();
        assert_eq!(c.limits.batch_timeout, Duration::from_millis(50));
        assert_eq!(c.limits.segment_bytes_target, 1000);
        assert_eq!(c.limits.uploads_inflight_max, 2);
        assert!(c.limits.flush_when_idle);
        assert!(try_args(&["--flush-preset", "cheap"]).is_err());
    }

    #[test]
    fn loopback_advertises_loopback() {
        assert_eq!(
            default_advertise_host("127.0.0.1".parse().unwrap()),
            "127.0.0.1"
        );
        assert_eq!(
            default_advertise_host("10.1.2.3".parse().unwrap()),
            "10.1.2.3"
        );
    }
}
