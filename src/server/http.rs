//! The HTTP endpoint, served by shard 0: `/healthz` (the process is alive), `/readyz` (the
//! object store and the metadata store answer) and `/metrics` (Prometheus, OpenMetrics text).
//! One request per connection.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use crate::metrics::{self, ScrapeCall};
use crate::shard::Shard;

/// Largest request head accepted; health checks are tiny.
const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;

/// How long a scrape waits for a shard's counters; a shard that does not answer in time is
/// left out of that scrape (and logged) rather than stalling it.
const SHARD_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// Every shard's scrape queue, this shard's included.
type Shards = Rc<Vec<flume::Sender<ScrapeCall>>>;

pub async fn run(shard: Rc<Shard>, addr: SocketAddr, shards: Vec<flume::Sender<ScrapeCall>>) {
    let shards: Shards = Rc::new(shards);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot bind the HTTP address; health checks are off");
            return;
        }
    };
    // Serves until the shard's executor ends, drain included: while the agent stops,
    // `/readyz` answers 503 rather than refusing connections, and `/metrics` still answers.
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let (shard, shards) = (shard.clone(), shards.clone());
                glommio::spawn_local(async move { serve(shard, shards, started, stream).await })
                    .detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve(shard: Rc<Shard>, shards: Shards, started: f64, mut stream: TcpStream) {
    let mut buf = vec![0u8; REQUEST_HEAD_BYTES_MAX];
    let mut len = 0;
    let path = loop {
        let n = match stream.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => break req.path.unwrap_or("/").to_string(),
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            _ => {
                let _ = respond(&mut stream, 400, TEXT, "bad request\n").await;
                return;
            }
        }
    };
    let (status, content_type, body) = match path.as_str() {
        "/healthz" => (200, TEXT, "ok\n".to_string()),
        "/readyz" => {
            let (status, body) = readiness(&shard).await;
            (status, TEXT, body)
        }
        "/metrics" => (200, OPENMETRICS, scrape(&shard, &shards, started).await),
        _ => (404, TEXT, "not found\n".to_string()),
    };
    let _ = respond(&mut stream, status, content_type, &body).await;
}

const TEXT: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Asks every shard for its counters, all at once, and renders their sum.
async fn scrape(shard: &Shard, shards: &Shards, started: f64) -> String {
    let asks = shards.iter().enumerate().map(|(id, tx)| async move {
        let (reply, answer) = futures::channel::oneshot::channel();
        let ask = async {
            tx.send_async(reply).await.ok()?;
            answer.await.ok()
        };
        match futures::future::select(
            std::pin::pin!(ask),
            std::pin::pin!(glommio::timer::sleep(SHARD_ANSWER_WAIT)),
        )
        .await
        {
            futures::future::Either::Left((Some(snapshot), _)) => Some(snapshot),
            _ => {
                tracing::warn!(
                    shard = id,
                    "shard did not answer the metrics scrape in time"
                );
                None
            }
        }
    });
    let snapshots: Vec<_> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    metrics::render(
        &snapshots,
        metrics::ProcessInfo::read(&shard.cluster_id, started),
    )
}

async fn readiness(shard: &Shard) -> (u16, String) {
    // Checked first: a stopping agent must drop out of rotation at once.
    if shard.shutdown.is_triggered() {
        return (503, "shutting down\n".to_string());
    }
    if let Err(e) = shard.store.probe().await {
        return (503, format!("object store unreachable: {e}\n"));
    }
    if let Err(e) = shard
        .metadata
        .call("list_topics", |b| b.list_topics().map(|_| ()))
        .await
    {
        return (503, format!("metadata store unreachable: {e}\n"));
    }
    (200, "ready\n".to_string())
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(msg.as_bytes()).await?;
    stream.close().await
}
