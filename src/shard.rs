//! Everything one shard owns: its configuration copy, store handles, topic cache, producer,
//! fetch cache and watermarks. Built once when the shard's executor starts; handlers reach it
//! through an `Rc<Shard>` and never share it with another core.

use std::cell::Cell;
use std::rc::Rc;

use event_listener::Event;

use crate::config::AgentConfig;
use crate::fetch::cache::ChunkCache;
use crate::fetch::Watermarks;
use crate::metadata::MetadataClient;
use crate::object_store::ObjectStore;
use crate::produce::ShardProducer;
use crate::topics::TopicCache;

pub struct Shard {
    pub id: usize,
    pub config: Rc<AgentConfig>,
    pub metadata: MetadataClient,
    pub store: Rc<dyn ObjectStore>,
    pub topics: TopicCache,
    pub producer: Rc<ShardProducer>,
    pub cache: Rc<ChunkCache>,
    pub watermarks: Watermarks,
    pub cluster_id: String,
    pub groups: crate::groups::GroupRouter,
    pub shutdown: Shutdown,
    /// Where hand-written answers are encoded; each answer is split off it, so its memory is
    /// reused once earlier answers have been written and dropped.
    pub answer_buf: std::cell::RefCell<bytes::BytesMut>,
}

/// A stop signal: set once, awaited by many. The shard's tells the accept loop and every
/// connection to stop; a connection's own tells its reader that its writer has stopped.
#[derive(Default)]
pub struct Shutdown {
    stopping: Cell<bool>,
    event: Event,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.stopping.set(true);
        self.event.notify(usize::MAX);
    }

    pub fn is_triggered(&self) -> bool {
        self.stopping.get()
    }

    /// Runs `fut` unless the shard starts stopping first (`None` then).
    pub async fn or_stop<T>(&self, fut: impl std::future::Future<Output = T>) -> Option<T> {
        match futures::future::select(std::pin::pin!(fut), std::pin::pin!(self.wait())).await {
            futures::future::Either::Left((v, _)) => Some(v),
            futures::future::Either::Right(_) => None,
        }
    }

    /// Resolves once the shard is stopping.
    pub async fn wait(&self) {
        loop {
            if self.stopping.get() {
                return;
            }
            let listener = self.event.listen();
            if self.stopping.get() {
                return;
            }
            listener.await;
        }
    }
}

impl Shard {
    pub fn new(
        id: usize,
        config: Rc<AgentConfig>,
        metadata: MetadataClient,
        store: Rc<dyn ObjectStore>,
        cluster_id: String,
        group_senders: Vec<flume::Sender<crate::groups::GroupCall>>,
        cache_peers: Vec<flume::Sender<crate::fetch::cache::Fill>>,
    ) -> Rc<Shard> {
        let cache = Rc::new(ChunkCache::with_peers(
            config.limits.fetch_cache_bytes_max,
            cache_peers,
        ));
        let producer = ShardProducer::new(
            id,
            &config.limits,
            store.clone(),
            metadata.clone(),
            cache.clone(),
        );
        let coordinator = crate::groups::Coordinator::new(
            metadata.clone(),
            crate::groups::group::GroupConfig {
                session_timeout_min: config.limits.group_session_timeout_min,
                session_timeout_max: config.limits.group_session_timeout_max,
                initial_rebalance_delay: config.group_initial_rebalance_delay,
            },
        );
        Rc::new(Shard {
            groups: crate::groups::GroupRouter::new(id, group_senders, coordinator),
            id,
            topics: TopicCache::new(config.clone(), metadata.clone()),
            config,
            metadata,
            store,
            producer,
            cache,
            watermarks: Watermarks::default(),
            cluster_id,
            shutdown: Shutdown::default(),
            answer_buf: Default::default(),
        })
    }
}
