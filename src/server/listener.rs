//! The shard's Kafka listener: its own SO_REUSEPORT socket on the shared address, so the kernel
//! spreads new connections across shards.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
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

/// Connections a shard is serving, so shutdown can wait for them to drain, and say which
/// are still open, and where, if they do not.
#[derive(Default)]
pub struct Connections {
    open: RefCell<BTreeMap<u64, (SocketAddr, Rc<connection::Phases>)>>,
    next_id: Cell<u64>,
    closed: Event,
}

impl Connections {
    pub fn open(&self) -> usize {
        self.open.borrow().len()
    }

    fn register(&self, peer: SocketAddr) -> (u64, Rc<connection::Phases>) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let phases = Rc::new(connection::Phases::default());
        self.open.borrow_mut().insert(id, (peer, phases.clone()));
        (id, phases)
    }

    fn deregister(&self, id: u64) {
        self.open.borrow_mut().remove(&id);
        self.closed.notify(usize::MAX);
    }

    /// Each open connection's peer and what its reader and writer are doing.
    pub fn describe(&self) -> Vec<String> {
        self.open
            .borrow()
            .values()
            .map(|(peer, p)| format!("{peer}: {p}"))
            .collect()
    }

    /// Waits until every connection has closed.
    pub async fn drained(&self) {
        while self.open() > 0 {
            let l = self.closed.listen();
            if self.open() > 0 {
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
        let (id, phases) = connections.register(peer);
        let shard = shard.clone();
        let conns = connections.clone();
        glommio::spawn_local(async move {
            connection::serve(shard, stream, peer, phases).await;
            conns.deregister(id);
        })
        .detach();
    }
}
