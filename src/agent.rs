//! Starting and stopping an agent: the metadata store thread, one glommio executor per shard
//! (each with its own SO_REUSEPORT listener), and the signal thread that turns SIGTERM/SIGINT
//! into a graceful stop: stop accepting, answer what is in flight, flush open segments, exit.

use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{select, Either};
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::AgentConfig;
use crate::metadata::{self, MetadataError};
use crate::metrics;
use crate::object_store;
use crate::server::listener::{self, Connections};
use crate::shard::Shard;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("metadata store: {0}")]
    Metadata(#[from] MetadataError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::ObjectStoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start shard {shard}: {reason}")]
    Shard { shard: usize, reason: String },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Handle to stop a running agent from another thread (signals, tests).
#[derive(Clone)]
pub struct StopHandle {
    senders: Arc<Vec<flume::Sender<()>>>,
}

impl StopHandle {
    pub fn stop(&self) {
        for s in self.senders.iter() {
            let _ = s.try_send(());
        }
    }
}

/// Runs an agent until SIGTERM or SIGINT, then stops it gracefully.
pub fn run(config: AgentConfig) -> Result<(), AgentError> {
    let (stop, wait) = start(config)?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(AgentError::Signals)?;
    std::thread::Builder::new()
        .name("weft-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                if stopping {
                    tracing::warn!(signal = sig, "second signal; exiting at once");
                    std::process::exit(130);
                }
                stopping = true;
                tracing::info!(
                    signal = sig,
                    "stopping: draining connections and flushing segments"
                );
                stop.stop();
            }
        })
        .map_err(AgentError::Signals)?;
    wait()
}

/// Starts an agent and returns a stop handle and a function that waits for it to finish.
pub fn start(
    config: AgentConfig,
) -> Result<(StopHandle, impl FnOnce() -> Result<(), AgentError>), AgentError> {
    let limits = &config.limits;
    object_store::check(&config.bucket_url)?;
    let metadata = metadata::open(&config.metadata_url, limits.metadata_queue_depth)?;
    let cluster_id = futures::executor::block_on(metadata.call("cluster_id", |b| b.cluster_id()))?;

    // Bind every shard's socket up front, so a taken port fails start-up with a clear error.
    let sockets = (0..config.cores)
        .map(|_| {
            listener::bind_reuseport(config.kafka_addr).map_err(|source| AgentError::Bind {
                addr: config.kafka_addr,
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let online = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pin_shards = config.cores <= online;

    // Every shard can reach every shard's group coordinator.
    let (group_senders, mut group_receivers) =
        per_shard_queues::<crate::groups::GroupCall>(config.cores, config.limits.group_queue_depth);
    // Shard 0 serves /metrics and asks every shard for its counters over these.
    let (scrape_senders, mut scrape_receivers) =
        per_shard_queues::<metrics::ScrapeCall>(config.cores, 4);
    // Each shard offers the chunks it uploads to every other shard's cache.
    let (fill_senders, mut fill_receivers) = per_shard_queues::<crate::fetch::cache::Fill>(
        config.cores,
        config.limits.cache_fill_queue_depth,
    );

    let config = Arc::new(config);
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for (id, socket) in sockets.into_iter().enumerate() {
        let (stop_tx, stop_rx) = flume::bounded::<()>(1);
        senders.push(stop_tx);
        let config = config.clone();
        let metadata = metadata.clone();
        let cluster_id = cluster_id.clone();
        let group_senders = group_senders.clone();
        let group_calls = group_receivers.next().expect("one receiver per shard");
        let fills = fill_receivers.next().expect("one receiver per shard");
        let cache_peers: Vec<_> = fill_senders
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != id)
            .map(|(_, tx)| tx.clone())
            .collect();
        let scrape = Scrape {
            calls: scrape_receivers.next().expect("one receiver per shard"),
            shards: if id == 0 {
                scrape_senders.clone()
            } else {
                Vec::new()
            },
        };
        let placement = if pin_shards {
            Placement::Fixed(id)
        } else {
            Placement::Unbound
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("weft-shard-{id}"))
            .spawn(move || async move {
                let store = object_store::open_with(&config.bucket_url, &config.limits)
                    .map_err(|e| e.to_string())?;
                let config = Rc::new((*config).clone());
                let notices = metadata.subscribe();
                let shard = Shard::new(
                    id,
                    config,
                    metadata,
                    store,
                    cluster_id,
                    group_senders,
                    cache_peers,
                );
                shard.groups.local.start(group_calls);
                let cache = shard.cache.clone();
                glommio::spawn_local(async move {
                    while let Ok(fill) = fills.recv_async().await {
                        cache.apply(fill);
                    }
                })
                .detach();
                serve_shard(shard, socket, notices, stop_rx, scrape).await;
                Ok::<(), String>(())
            })
            .map_err(|e| AgentError::Shard {
                shard: id,
                reason: e.to_string(),
            })?;
        handles.push((id, handle));
    }
    tracing::info!(
        addr = %config.kafka_addr,
        advertise = format!("{}:{}", config.advertise_host, config.advertise_port),
        shards = config.cores,
        bucket = config.bucket_url,
        metadata = config.metadata_url,
        cluster_id,
        "weft agent ready"
    );
    let stop = StopHandle {
        senders: Arc::new(senders),
    };
    let wait = move || {
        for (id, h) in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return Err(AgentError::Shard { shard: id, reason }),
                Err(e) => {
                    return Err(AgentError::Shard {
                        shard: id,
                        reason: e.to_string(),
                    })
                }
            }
        }
        tracing::info!("weft agent stopped");
        Ok(())
    };
    Ok((stop, wait))
}

/// One bounded queue per shard: every sender (for whoever may call any shard), and the
/// receivers in shard order, each taken by its shard.
fn per_shard_queues<T>(
    shards: usize,
    depth: usize,
) -> (
    Vec<flume::Sender<T>>,
    std::vec::IntoIter<flume::Receiver<T>>,
) {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards).map(|_| flume::bounded(depth)).unzip();
    (senders, receivers.into_iter())
}

/// A shard's part in metrics scrapes.
struct Scrape {
    /// Scrapes asking this shard for its snapshot.
    calls: flume::Receiver<metrics::ScrapeCall>,
    /// On shard 0, which serves HTTP: every shard's call queue, its own included.
    shards: Vec<flume::Sender<metrics::ScrapeCall>>,
}

async fn serve_shard(
    shard: Rc<Shard>,
    socket: socket2::Socket,
    notices: flume::Receiver<crate::metadata::CommitNotice>,
    stop_rx: flume::Receiver<()>,
    scrape: Scrape,
) {
    let s = shard.clone();
    glommio::spawn_local(async move {
        while let Ok(notice) = notices.recv_async().await {
            s.watermarks.apply(notice);
        }
    })
    .detach();
    let s = shard.clone();
    glommio::spawn_local(async move {
        let _ = stop_rx.recv_async().await;
        s.shutdown.trigger();
        s.watermarks.wake_all();
    })
    .detach();
    let connections = Rc::new(Connections::default());
    let (s, conns) = (shard.clone(), connections.clone());
    glommio::spawn_local(async move {
        while let Ok(reply) = scrape.calls.recv_async().await {
            let _ = reply.send(snapshot(&s, &conns));
        }
    })
    .detach();
    if shard.id == 0 {
        let s = shard.clone();
        let addr = s.config.http_addr;
        glommio::spawn_local(crate::server::http::run(s, addr, scrape.shards)).detach();
    }

    listener::run(shard.clone(), socket, connections.clone()).await;

    // Stopping: connections answer what they have queued, then open segments are flushed.
    let drain = shard.config.limits.shutdown_drain;
    if !within(drain, connections.drained()).await {
        tracing::warn!(
            shard = shard.id,
            open = connections.open(),
            connections = ?connections.describe(),
            "connections still open after the drain period"
        );
    }
    if !within(drain, shard.producer.drain()).await {
        tracing::warn!(
            shard = shard.id,
            "uploads still in flight after the drain period"
        );
    }
}

/// This shard's counters and levels, for a scrape.
fn snapshot(shard: &Shard, connections: &Connections) -> metrics::ShardSnapshot {
    let (uploads_inflight, buffered) = shard.producer.levels();
    let (cache_bytes, cache_hits, cache_misses) = shard.cache.stats();
    metrics::ShardSnapshot {
        shard: shard.id,
        counters: metrics::local_counters(),
        gauges: metrics::Gauges {
            connections_open: connections.open() as u64,
            uploads_inflight: uploads_inflight as u64,
            produce_buffered_bytes: buffered as u64,
            cache_bytes: cache_bytes as u64,
            cache_hits,
            cache_misses,
        },
    }
}

async fn within(limit: Duration, fut: impl std::future::Future<Output = ()>) -> bool {
    matches!(
        select(pin!(fut), pin!(glommio::timer::sleep(limit))).await,
        Either::Left(_)
    )
}
