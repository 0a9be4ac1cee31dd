//! One client connection, served by one shard for its whole life.
//!
//! A reader task splits frames and starts a handler task per request; a writer task awaits the
//! handlers in arrival order and writes their responses, so pipelined requests are answered in
//! order. A bounded queue between them caps the requests in flight per connection. Malformed
//! input, an oversized frame or an unsupported API closes this connection only.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use glommio::Task;

use crate::metrics::{self, Rejection};
use crate::protocol::frame::FrameReader;
use crate::server::dispatch::{self, Disconnect};
use crate::server::ordering::AppendOrder;
use crate::shard::{Shard, Shutdown};

type Pending = Task<Result<Option<Bytes>, Disconnect>>;

/// What a connection's reader and writer are doing, for the log line of a drain that times
/// out: a connection that outlives its client has to say where it is stuck.
#[derive(Default)]
pub struct Phases {
    reader: Cell<&'static str>,
    writer: Cell<&'static str>,
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "reader {}, writer {}",
            self.reader.get(),
            self.writer.get()
        )
    }
}

pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr, phases: Rc<Phases>) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
    }
    let (mut reader, mut writer) = stream.split();
    let (queue_tx, queue_rx) =
        local_channel::new_bounded::<Pending>(shard.config.limits.connection_inflight_requests_max);

    // Set when the writer stops. The reader must not rely on the queue to say so: glommio's
    // bounded channel keeps a sender waiting for room forever once the receiver is dropped
    // with the queue full, which left a connection open after its client had gone.
    let writer_gone = Rc::new(Shutdown::default());
    let gone = writer_gone.clone();
    let writer_phases = phases.clone();
    let writer_task = glommio::spawn_local(async move {
        let phase = |p: &'static str| writer_phases.writer.set(p);
        loop {
            phase("waiting for a request");
            let Some(pending) = queue_rx.recv().await else {
                break;
            };
            phase("waiting for a handler");
            match pending.await {
                Ok(Some(response)) => {
                    tracing::trace!(%peer, bytes = response.len(), "response");
                    phase("writing");
                    if let Err(e) = writer.write_all(&response).await {
                        tracing::debug!(%peer, error = %e, "write failed; closing");
                        break;
                    }
                    metrics::record(|m| m.bytes_sent += response.len() as u64);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::info!(%peer, error = %e, "closing connection");
                    break;
                }
            }
        }
        gone.trigger();
        phase("closing");
        let _ = writer.close().await;
        phase("closed");
    });

    let append_order = Rc::new(AppendOrder::default());
    let mut frames = FrameReader::new(shard.config.limits.request_bytes_max);
    'read: loop {
        loop {
            let frame = match frames.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "bad frame; closing connection");
                    metrics::rejected(Rejection::BadFrame);
                    break 'read;
                }
            };
            // A request that closes the connection is the last one read: nothing pipelined
            // behind it may run, as with Kafka.
            let (task, last): (Pending, bool) = match dispatch::parse(frame, peer) {
                Ok(req) => {
                    if req.key == kafka_protocol::messages::ApiKey::Produce {
                        *req.ctx.append_turn.borrow_mut() = Some(append_order.ticket());
                    }
                    let shard = shard.clone();
                    let task = glommio::spawn_local(async move {
                        let (key, started) = (req.key, Instant::now());
                        let result = dispatch::handle(&shard, req).await;
                        metrics::request_done(key, started.elapsed(), result.is_ok());
                        result
                    });
                    (task, false)
                }
                Err(e) => {
                    metrics::rejected(e.rejection());
                    (glommio::spawn_local(async move { Err(e) }), true)
                }
            };
            phases.reader.set("queueing a request");
            let queued = matches!(writer_gone.or_stop(queue_tx.send(task)).await, Some(Ok(())));
            if !queued || last {
                break 'read;
            }
        }
        let space = match frames.read_space() {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(%peer, error = %e, "bad frame; closing connection");
                metrics::rejected(Rejection::BadFrame);
                break;
            }
        };
        let space_len = space.len();
        phases.reader.set("reading");
        match shard.shutdown.or_stop(reader.read(space)).await {
            Some(Ok(0)) => break,
            Some(Ok(n)) => {
                frames.filled(space_len, n);
                metrics::record(|m| m.bytes_received += n as u64);
            }
            Some(Err(e)) => {
                tracing::debug!(%peer, error = %e, "read failed; closing");
                break;
            }
            // Stop reading; what is already queued is still answered.
            None => break,
        }
    }
    drop(queue_tx);
    phases.reader.set("waiting for the writer");
    writer_task.await;
}
