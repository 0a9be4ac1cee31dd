//! The shard's Kafka listener: its own SO_REUSEPORT socket on the shared address, so the kernel
//! spreads new connections across shards.

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;

use event_listener::Event;
use glommio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

use crate::server::connection;
use crate::shard::Shard;

/// Binds a listening socket with SO_REUSEPORT, as each shard does on the same address.
pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket)
}

/// Connections a shard is serving, so shutdown can wait for them to drain.
#[derive(Default)]
pub struct Connections {
    open: Cell<usize>,
    closed: Event,
}

impl Connections {
    pub fn open(&self) -> usize {
        self.open.get()
    }

    /// Waits until every connection has closed.
    pub async fn drained(&self) {
        while self.open.get() > 0 {
            let l = self.closed.listen();
            if self.open.get() > 0 {
                l.await;
            }
        }
    }
}

/// Accepts connections until the shard stops.
pub async fn run(shard: Rc<Shard>, socket: Socket, connections: Rc<Connections>) {
    // SAFETY: the descriptor comes from a listening socket we own and hand over whole.
    let listener = unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) };
    let max = shard.config.limits.shard_connections_max;
    loop {
        let stream = match shard.shutdown.or_stop(listener.accept()).await {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::warn!(shard = shard.id, error = %e, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
            None => break,
        };
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        if connections.open() >= max {
            tracing::warn!(shard = shard.id, %peer, max, "connection limit reached; closing new connection");
            drop(stream);
            crate::metrics::record(|m| m.connections_refused += 1);
            continue;
        }
        crate::metrics::record(|m| m.connections_accepted += 1);
        connections.open.set(connections.open.get() + 1);
        let shard = shard.clone();
        let conns = connections.clone();
        glommio::spawn_local(async move {
            connection::serve(shard, stream, peer).await;
            conns.open.set(conns.open.get() - 1);
            conns.closed.notify(usize::MAX);
        })
        .detach();
    }
}
