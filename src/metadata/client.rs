//! The handle shards use to reach the metadata backend running on its own thread.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

use futures::channel::oneshot;
use uuid::Uuid;

use super::{CommitNotice, MetadataBackend, MetadataError, SegmentCommit, SegmentCommitted};

type Job = Box<dyn FnOnce(&mut dyn MetadataBackend) + Send>;

/// Senders of every subscriber. Locked only by [`MetadataClient::subscribe`] and by the metadata
/// thread after a commit, never by a caller awaiting a result.
type Subscribers = Arc<Mutex<Vec<flume::Sender<CommitNotice>>>>;

/// A cloneable handle to the metadata thread, which owns the backend and runs one job at a time.
///
/// Jobs travel over a bounded channel: when the store falls behind, callers wait asynchronously
/// for room instead of piling up work or blocking their reactor. The thread stops once every
/// handle is dropped and the queued jobs have run.
#[derive(Clone)]
pub struct MetadataClient {
    jobs: flume::Sender<Job>,
    subscribers: Subscribers,
}

impl MetadataClient {
    /// Starts the `weft-metadata` thread around `backend`, with room for `queue_depth` waiting
    /// jobs (0 makes every call wait for the thread to take it).
    ///
    /// Should the thread fail to start, the error is logged and every call on the returned
    /// client fails with [`MetadataError::Unavailable`], as if the thread had died.
    pub fn start(backend: Box<dyn MetadataBackend>, queue_depth: usize) -> MetadataClient {
        let (jobs, queue) = flume::bounded::<Job>(queue_depth);
        let spawned = std::thread::Builder::new()
            .name("weft-metadata".to_string())
            .spawn(move || run(backend, queue));
        if let Err(e) = spawned {
            // The closure, and with it the receiver, is dropped: sends now fail.
            tracing::error!(error = %e, "cannot start the metadata thread");
        }
        MetadataClient {
            jobs,
            subscribers: Arc::default(),
        }
    }

    /// Runs `f` on the metadata thread and returns its result. `op` names the operation in the
    /// calling shard's metrics, which time it from here, queueing included.
    ///
    /// Dropping the future after the job was queued does not cancel the job; its result is then
    /// discarded. A panic in `f` is contained to this call, which fails with
    /// [`MetadataError::Backend`].
    pub async fn call<R, F>(&self, op: &'static str, f: F) -> Result<R, MetadataError>
    where
        F: FnOnce(&mut dyn MetadataBackend) -> Result<R, MetadataError> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |backend| {
            // Any transaction `f` had open was rolled back when its guard dropped during the
            // unwind, so the backend is still usable for the next job.
            let result =
                panic::catch_unwind(AssertUnwindSafe(|| f(backend))).unwrap_or_else(|_| {
                    Err(MetadataError::Backend(
                        "metadata operation panicked".to_string(),
                    ))
                });
            // The caller may have stopped waiting; nobody is left to tell.
            let _ = reply.send(result);
        });
        let started = std::time::Instant::now();
        let result = match self.jobs.send_async(job).await {
            Ok(()) => answer.await.unwrap_or_else(|_| Err(stopped())),
            Err(_) => Err(stopped()),
        };
        // Answers such as "topic exists" are not failures of the store.
        let failed = matches!(
            result,
            Err(MetadataError::Unavailable(_) | MetadataError::Backend(_))
        );
        crate::metrics::metadata_op(op, started.elapsed(), !failed);
        result
    }

    /// Commits a segment (see [`MetadataBackend::commit_segment`]) and then tells every
    /// subscriber the new high watermark of each partition that received a chunk.
    pub async fn commit_segment(
        &self,
        segment: SegmentCommit,
    ) -> Result<SegmentCommitted, MetadataError> {
        let subscribers = Arc::clone(&self.subscribers);
        self.call("commit_segment", move |backend| {
            let committed = backend.commit_segment(&segment)?;
            notify(&subscribers, &segment, &committed);
            Ok(committed)
        })
        .await
    }

    /// A new receiver of [`CommitNotice`]s for every later commit made through any clone of this
    /// client. Unbounded, so the metadata thread never waits for a slow shard; dropping the
    /// receiver unsubscribes.
    pub fn subscribe(&self) -> flume::Receiver<CommitNotice> {
        let (tx, rx) = flume::unbounded();
        lock(&self.subscribers).push(tx);
        rx
    }
}

fn run(mut backend: Box<dyn MetadataBackend>, queue: flume::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        job(backend.as_mut());
    }
    tracing::debug!("metadata thread stopping: every client is gone");
}

fn stopped() -> MetadataError {
    MetadataError::Unavailable("metadata thread has stopped".to_string())
}

/// The list stays valid even if a holder panicked (pushes and retains cannot leave it half
/// updated), so poisoning is ignored.
fn lock(subscribers: &Subscribers) -> std::sync::MutexGuard<'_, Vec<flume::Sender<CommitNotice>>> {
    subscribers.lock().unwrap_or_else(PoisonError::into_inner)
}

fn notify(subscribers: &Subscribers, segment: &SegmentCommit, committed: &SegmentCommitted) {
    // One notice per partition even when the segment holds several of its chunks: later chunks
    // end higher, so the last one seen wins.
    let mut watermarks: BTreeMap<(Uuid, i32), i64> = BTreeMap::new();
    for (chunk, done) in segment.chunks.iter().zip(&committed.chunks) {
        if let Some(base) = done.as_ref().and_then(|d| d.base_offset) {
            let taken = done.as_ref().map_or(0, |d| d.offsets_taken(chunk));
            let high_watermark = base + i64::from(taken);
            watermarks.insert((chunk.topic_id, chunk.partition), high_watermark);
        }
    }
    if watermarks.is_empty() {
        return;
    }
    let mut subscribers = lock(subscribers);
    subscribers.retain(|subscriber| {
        watermarks
            .iter()
            .all(|(&(topic_id, partition), &high_watermark)| {
                subscriber
                    .send(CommitNotice {
                        topic_id,
                        partition,
                        high_watermark,
                    })
                    .is_ok()
            })
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures::executor::block_on;

    use super::*;
    use crate::metadata::sqlite::SqliteBackend;
    use crate::metadata::{open, ChunkCommit};

    fn client() -> MetadataClient {
        let backend = SqliteBackend::open_in_memory().expect("in-memory database");
        MetadataClient::start(Box::new(backend), 4)
    }

    fn chunk(topic_id: Uuid, partition: i32, offset_count: u32) -> ChunkCommit {
        ChunkCommit {
            topic_id,
            partition,
            byte_pos: 0,
            byte_len: 10,
            crc32c: 0,
            offset_count,
            max_timestamp_ms: 0,
            producer_batches: vec![],
        }
    }

    fn segment(key: &str, chunks: Vec<ChunkCommit>) -> SegmentCommit {
        SegmentCommit {
            object_key: key.to_string(),
            size_bytes: 100,
            created_ms: 0,
            chunks,
        }
    }

    #[test]
    fn call_runs_on_the_metadata_thread() {
        let c = client();
        let (topic, thread) = block_on(c.call("test", |b| {
            let topic = b.create_topic("t", 2, &BTreeMap::new())?;
            Ok((topic, std::thread::current().name().map(str::to_string)))
        }))
        .expect("call");
        assert_eq!(thread.as_deref(), Some("weft-metadata"));
        assert_eq!(topic.partition_count, 2);
        let err = block_on(c.call("create_topic", |b| b.create_topic("t", 1, &BTreeMap::new())));
        assert_eq!(err, Err(MetadataError::TopicExists("t".to_string())));
    }

    #[test]
    fn commit_notifies_every_subscriber() {
        let c = client();
        let early = c.subscribe();
        let dropped = c.subscribe();
        drop(dropped);
        let t = block_on(c.call("create_topic", |b| b.create_topic("t", 2, &BTreeMap::new())))
            .expect("create")
            .id;
        let gone = block_on(c.call("test", |b| {
            let id = b.create_topic("gone", 1, &BTreeMap::new())?.id;
            b.delete_topic("gone")?;
            Ok(id)
        }))
        .expect("create and delete");

        let committed = block_on(c.commit_segment(segment(
            "s1",
            vec![
                chunk(t, 0, 3),
                chunk(gone, 0, 9),
                chunk(t, 1, 2),
                chunk(t, 0, 4),
            ],
        )))
        .expect("commit");
        assert_eq!(
            committed.base_offsets(),
            vec![Some(0), None, Some(0), Some(3)]
        );

        let notices: Vec<CommitNotice> = early.try_iter().collect();
        assert_eq!(
            notices.len(),
            2,
            "one notice per partition, none for the deleted topic: {notices:?}"
        );
        assert!(notices.contains(&CommitNotice {
            topic_id: t,
            partition: 0,
            high_watermark: 7
        }));
        assert!(notices.contains(&CommitNotice {
            topic_id: t,
            partition: 1,
            high_watermark: 2
        }));

        // A subscriber sees only commits made after it subscribed, through any clone.
        let late = c.clone().subscribe();
        block_on(
            c.clone()
                .commit_segment(segment("s2", vec![chunk(t, 1, 5)])),
        )
        .expect("commit");
        let expected = CommitNotice {
            topic_id: t,
            partition: 1,
            high_watermark: 7,
        };
        assert_eq!(late.try_iter().collect::<Vec<_>>(), vec![expected]);
        assert_eq!(early.try_iter().collect::<Vec<_>>(), vec![expected]);
        assert_eq!(
            lock(&c.subscribers).len(),
            2,
            "dropped subscriber was pruned"
        );
    }

    #[test]
    fn failed_commit_sends_no_notice() {
        let c = client();
        let notices = c.subscribe();
        let t = block_on(c.call("create_topic", |b| b.create_topic("t", 1, &BTreeMap::new())))
            .expect("create")
            .id;
        let result = block_on(c.commit_segment(segment("s1", vec![chunk(t, 0, 0)])));
        assert!(
            matches!(result, Err(MetadataError::Backend(_))),
            "{result:?}"
        );
        assert!(notices.try_recv().is_err());
    }

    #[test]
    fn panicking_job_does_not_kill_the_thread() {
        let c = client();
        let result: Result<(), _> = block_on(c.call("test", |_| panic!("job bug")));
        assert!(
            matches!(result, Err(MetadataError::Backend(_))),
            "{result:?}"
        );
        let topics = block_on(c.call("list_topics", |b| b.list_topics())).expect("still serving");
        assert!(topics.is_empty());
    }

    #[test]
    fn dead_thread_is_unavailable() {
        let (jobs, queue) = flume::bounded::<Job>(1);
        drop(queue);
        let c = MetadataClient {
            jobs,
            subscribers: Arc::default(),
        };
        let result = block_on(c.call("list_topics", |b| b.list_topics()));
        assert!(
            matches!(result, Err(MetadataError::Unavailable(_))),
            "{result:?}"
        );
    }

    #[test]
    fn thread_exits_when_every_client_is_dropped() {
        let c = client();
        let (tx, rx) = std::sync::mpsc::channel();
        // A thread-local of the metadata thread is dropped only when that thread exits.
        block_on(c.call("test", move |_| {
            struct Guard(std::sync::mpsc::Sender<()>);
            impl Drop for Guard {
                fn drop(&mut self) {
                    let _ = self.0.send(());
                }
            }
            thread_local!(static GUARD: std::cell::RefCell<Option<Guard>> = const { std::cell::RefCell::new(None) });
            GUARD.with(|g| *g.borrow_mut() = Some(Guard(tx)));
            Ok(())
        }))
        .expect("install guard");
        let other = c.clone();
        drop(c);
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "one client left"
        );
        drop(other);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("thread exited");
    }

    #[test]
    fn backpressure_with_a_small_queue() {
        let backend = SqliteBackend::open_in_memory().expect("in-memory database");
        let c = MetadataClient::start(Box::new(backend), 1);
        let t = block_on(c.call("create_topic", |b| b.create_topic("t", 1, &BTreeMap::new())))
            .expect("create")
            .id;
        let commits = (0..20).map(|i| {
            let c = c.clone();
            async move {
                c.commit_segment(segment(&format!("s{i}"), vec![chunk(t, 0, 1)]))
                    .await
            }
        });
        let results = block_on(futures::future::join_all(commits));
        let mut bases: Vec<i64> = results
            .into_iter()
            .map(|r| r.expect("commit").base_offsets()[0].expect("committed"))
            .collect();
        bases.sort_unstable();
        assert_eq!(bases, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn open_urls() {
        let c = open("sqlite::memory:", 2).expect("memory");
        assert!(block_on(c.call("list_topics", |b| b.list_topics()))
            .expect("list")
            .is_empty());

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("meta.db");
        let url = format!("sqlite://{}", path.display());
        let c = open(&url, 2).expect("file");
        block_on(c.call("create_topic", |b| b.create_topic("t", 1, &BTreeMap::new())))
            .expect("create");
        drop(c);
        let c = open(&url, 2).expect("reopen");
        assert!(block_on(c.call("topic_by_name", |b| b.topic_by_name("t")))
            .expect("lookup")
            .is_some());

        assert!(matches!(
            open("postgres://x", 1),
            Err(MetadataError::Backend(_))
        ));
        assert!(matches!(
            open("sqlite://", 1),
            Err(MetadataError::Backend(_))
        ));
    }
}
