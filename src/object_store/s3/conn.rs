//! The thin glommio driver of the S3 client: one shard's keep-alive connections to the
//! endpoint (plain TCP, or TLS over it for `https://`), and one request/response exchange on
//! them. Parsing lives in `http.rs`.
//!
//! Owned by one shard's store and used only there. Connections are taken from the idle list
//! (newest first) or opened, used for one exchange, and put back only when the response said
//! the connection may be reused and nothing followed it.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_rustls::client::TlsStream;
use futures_rustls::pki_types::ServerName;
use futures_rustls::TlsConnector;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;

use super::http::{self, HttpError, Request, Response, ResponseReader};

/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Bodies up to this size go out in the same write as the head.
const COALESCE_BODY_BYTES_MAX: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    /// The TLS handshake failed on the peer's certificate or the protocol, which retrying
    /// will not change.
    #[error("TLS handshake with {host} failed: {source}")]
    Tls { host: String, source: io::Error },
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Http(#[from] HttpError),
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// TLS settings of a pool whose endpoint is `https://`.
pub struct Tls {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

impl Tls {
    pub fn new(
        config: std::sync::Arc<futures_rustls::rustls::ClientConfig>,
        host: &str,
    ) -> Result<Tls, String> {
        let server_name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .map_err(|e| format!("'{host}' is not a TLS server name: {e}"))?;
        Ok(Tls {
            connector: TlsConnector::from(config),
            server_name,
        })
    }
}

struct Conn {
    stream: Stream,
    /// Received bytes not yet parsed.
    buf: Vec<u8>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

pub struct Pool {
    host: String,
    port: u16,
    tls: Option<Tls>,
    connect_timeout: Duration,
    idle_max: usize,
    idle_lifetime: Duration,
    idle: RefCell<Vec<Idle>>,
    /// Bounds the connections open at once, idle ones excluded.
    slots: Semaphore,
}

impl Pool {
    pub fn new(
        host: String,
        port: u16,
        tls: Option<Tls>,
        connect_timeout: Duration,
        connections_max: usize,
        idle_max: usize,
        idle_lifetime: Duration,
    ) -> Pool {
        Pool {
            host,
            port,
            tls,
            connect_timeout,
            idle_max,
            idle_lifetime,
            idle: RefCell::new(Vec::new()),
            slots: Semaphore::new(connections_max as u64),
        }
    }

    /// Sends one request and reads its response. A reused connection that turns out to have
    /// been closed by the server before it answered is replaced by a fresh one once: the
    /// request never reached a live server, so resending it is always safe.
    pub async fn exchange(
        &self,
        req: &Request<'_>,
        body: &[u8],
        reader: impl Fn() -> ResponseReader,
    ) -> Result<Response, ConnError> {
        let _slot = self
            .slots
            .acquire_permit(1)
            .await
            .map_err(|e| ConnError::Io(io::Error::other(e.to_string())))?;
        let mut head = Vec::with_capacity(512 + body.len().min(COALESCE_BODY_BYTES_MAX));
        http::write_request_head(req, &mut head);
        if let Some(conn) = self.take_idle() {
            let mut r = reader();
            match exchange_on(conn, &head, body, &mut r).await {
                Ok(done) => return Ok(self.finish(done, r)),
                Err((e, answered)) if answered => return Err(e),
                Err(_) => {}
            }
        }
        let conn = self.connect().await?;
        let mut r = reader();
        match exchange_on(conn, &head, body, &mut r).await {
            Ok(done) => Ok(self.finish(done, r)),
            Err((e, _)) => Err(e),
        }
    }

    fn finish(&self, conn: Conn, reader: ResponseReader) -> Response {
        let response = reader.into_response();
        if response.keep_alive && conn.buf.is_empty() {
            let mut idle = self.idle.borrow_mut();
            if idle.len() < self.idle_max {
                idle.push(Idle {
                    conn,
                    since: Instant::now(),
                });
            }
        }
        response
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let now = Instant::now();
        idle.retain(|i| now.duration_since(i.since) < self.idle_lifetime);
        idle.pop().map(|i| i.conn)
    }

    async fn connect(&self) -> Result<Conn, ConnError> {
        let addrs = self.resolve().await?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(addr, self.connect_timeout).await {
                Ok(stream) => {
                    // Requests are written whole; Nagle would only delay the last packet.
                    stream
                        .set_nodelay(true)
                        .map_err(|e| ConnError::Io(io::Error::other(e.to_string())))?;
                    let stream = match &self.tls {
                        None => Stream::Plain(stream),
                        Some(tls) => Stream::Tls(Box::new(
                            tls.connector
                                .connect(tls.server_name.clone(), stream)
                                .await
                                .map_err(|source| self.handshake_error(source))?,
                        )),
                    };
                    return Ok(Conn {
                        stream,
                        buf: Vec::new(),
                    });
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        let (addr, e) = last.expect("resolve returns at least one address");
        Err(ConnError::Connect {
            addr: addr.to_string(),
            source: io::Error::other(e.to_string()),
        })
    }

    /// rustls reports certificate and protocol failures as `InvalidData`; anything else is
    /// the connection breaking mid-handshake, which a retry may get past.
    fn handshake_error(&self, source: io::Error) -> ConnError {
        if source.kind() == io::ErrorKind::InvalidData {
            ConnError::Tls {
                host: self.host.clone(),
                source,
            }
        } else {
            ConnError::Io(source)
        }
    }

    async fn resolve(&self) -> Result<Vec<SocketAddr>, ConnError> {
        if let Ok(ip) = self.host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        // getaddrinfo blocks; it runs on glommio's blocking pool, off the reactor.
        let (host, port) = (self.host.clone(), self.port);
        let resolved = glommio::executor()
            .spawn_blocking(move || {
                (host.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>())
            })
            .await;
        match resolved {
            Ok(addrs) if !addrs.is_empty() => Ok(addrs),
            Ok(_) => Err(ConnError::Resolve {
                host: self.host.clone(),
                source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
            }),
            Err(source) => Err(ConnError::Resolve {
                host: self.host.clone(),
                source,
            }),
        }
    }
}

/// One exchange on `conn`. On failure, also says whether any byte of a response arrived (after
/// which the request cannot be assumed unsent).
async fn exchange_on(
    mut conn: Conn,
    head: &[u8],
    body: &[u8],
    reader: &mut ResponseReader,
) -> Result<Conn, (ConnError, bool)> {
    let sent = async {
        if body.len() <= COALESCE_BODY_BYTES_MAX {
            let mut both = Vec::with_capacity(head.len() + body.len());
            both.extend_from_slice(head);
            both.extend_from_slice(body);
            conn.stream.write_all(&both).await?;
        } else {
            conn.stream.write_all(head).await?;
            conn.stream.write_all(body).await?;
        }
        conn.stream.flush().await
    }
    .await;
    if let Err(e) = sent {
        return Err((ConnError::Io(e), false));
    }
    let mut received_any = false;
    loop {
        if !conn.buf.is_empty() {
            let n = reader
                .feed(&conn.buf)
                .map_err(|e| (ConnError::Http(e), true))?;
            conn.buf.drain(..n);
            if reader.is_done() {
                return Ok(conn);
            }
        }
        let len = conn.buf.len();
        conn.buf.resize(len + READ_CHUNK_BYTES, 0);
        let read = conn.stream.read(&mut conn.buf[len..]).await;
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                conn.buf.truncate(len);
                return Err((ConnError::Io(e), received_any));
            }
        };
        conn.buf.truncate(len + n);
        if n == 0 {
            reader
                .eof()
                .map_err(|e| (ConnError::Http(e), received_any))?;
            return Ok(conn);
        }
        received_any = true;
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::object_store::s3::http::{BodyLimits, Method};

    /// Reads one request head (no body) from a blocking socket.
    fn read_head(s: &mut std::net::TcpStream) -> bool {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return false,
            }
        }
        true
    }

    /// A scripted server: on each connection, answers the listed responses in turn, one per
    /// request, then closes the connection.
    fn serve(script: Vec<Vec<&'static str>>) -> (u16, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for answers in script {
                let (mut s, _) = listener.accept().expect("accept");
                counter.fetch_add(1, Ordering::SeqCst);
                for answer in answers {
                    if !read_head(&mut s) {
                        break;
                    }
                    s.write_all(answer.as_bytes()).expect("answer");
                }
            }
        });
        (port, accepted)
    }

    fn reader() -> ResponseReader {
        ResponseReader::new(
            Method::Get,
            BodyLimits {
                success_bytes_max: 1024,
                success_bytes_exact: None,
                error_bytes_max: 1024,
                head_bytes_max: 1024,
            },
        )
    }

    #[test]
    fn reuses_keep_alive_connections_and_replaces_closed_ones() {
        const KEEP: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        const CLOSE: &str = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
        const CHUNKED: &str =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let (port, accepted) = serve(vec![
            // Two exchanges on one connection, the second saying it closes.
            vec![KEEP, CHUNKED, CLOSE],
            // One exchange, then the server drops the connection without a word, as an idle
            // timeout would; the next request finds it dead and goes to a fresh one.
            vec![KEEP],
            vec![KEEP],
        ]);
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let pool = Pool::new(
                    "127.0.0.1".into(),
                    port,
                    None,
                    Duration::from_secs(1),
                    4,
                    4,
                    Duration::from_secs(60),
                );
                let req = Request {
                    method: Method::Get,
                    target: "/b/k",
                    host: "127.0.0.1",
                    range: None,
                    body_len: 0,
                    headers: &[],
                };
                for (i, keep_alive) in [true, true, false, true, true].into_iter().enumerate() {
                    let resp = pool.exchange(&req, &[], reader).await.expect("exchange");
                    assert_eq!(resp.body, &b"ok"[..], "exchange {i}");
                    assert_eq!(resp.keep_alive, keep_alive, "exchange {i}");
                    if i == 3 {
                        // Let the server's close reach us before the next request.
                        glommio::timer::sleep(Duration::from_millis(50)).await;
                    }
                }
            });
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn refused_connections_are_reported_with_the_address() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let pool = Pool::new(
                    "127.0.0.1".into(),
                    port,
                    None,
                    Duration::from_secs(1),
                    1,
                    1,
                    Duration::from_secs(1),
                );
                let req = Request {
                    method: Method::Get,
                    target: "/",
                    host: "h",
                    range: None,
                    body_len: 0,
                    headers: &[],
                };
                let err = pool.exchange(&req, &[], reader).await.unwrap_err();
                assert!(
                    matches!(&err, ConnError::Connect { addr, .. } if addr.ends_with(&port.to_string())),
                    "{err}"
                );
            });
    }
}
