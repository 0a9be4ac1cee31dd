//! The HTTP endpoint for health checks, served by shard 0: `/healthz` (the process is alive)
//! and `/readyz` (the object store and the metadata store answer). One request per connection.

use std::net::SocketAddr;
use std::rc::Rc;

use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use crate::shard::Shard;

/// Largest request head accepted; health checks are tiny.
const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;

pub async fn run(shard: Rc<Shard>, addr: SocketAddr) {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot bind the HTTP address; health checks are off");
            return;
        }
    };
    loop {
        match shard.shutdown.or_stop(listener.accept()).await {
            Some(Ok(stream)) => {
                let shard = shard.clone();
                glommio::spawn_local(async move { serve(shard, stream).await }).detach();
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
            None => return,
        }
    }
}

async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
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
                let _ = respond(&mut stream, 400, "bad request\n").await;
                return;
            }
        }
    };
    let (status, body) = match path.as_str() {
        "/healthz" => (200, "ok\n".to_string()),
        "/readyz" => readiness(&shard).await,
        _ => (404, "not found\n".to_string()),
    };
    let _ = respond(&mut stream, status, &body).await;
}

async fn readiness(shard: &Shard) -> (u16, String) {
    if let Err(e) = shard.store.probe().await {
        return (503, format!("object store unreachable: {e}\n"));
    }
    if let Err(e) = shard.metadata.call(|b| b.list_topics().map(|_| ())).await {
        return (503, format!("metadata store unreachable: {e}\n"));
    }
    if shard.shutdown.is_triggered() {
        return (503, "shutting down\n".to_string());
    }
    (200, "ready\n".to_string())
}

async fn respond(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(msg.as_bytes()).await?;
    stream.close().await
}
