//! A TCP proxy for fault injection: forwards client bytes to the agent and agent bytes back,
//! and can hold back every answer for a while, as a congested network would. The agent is told
//! to advertise the proxy's port so that clients keep going through it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Proxy {
    pub port: u16,
    /// While set, answers from the agent are held back (and delivered once it clears, unless
    /// the client has closed the connection by then).
    pub stall_answers: Arc<AtomicBool>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on `port` and forwards to `target`.
    pub fn start(port: u16, target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind proxy port");
        listener.set_nonblocking(true).expect("nonblocking");
        let stall = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicU64::new(0));
        let (s, st, c) = (stall.clone(), stop.clone(), connections.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        let Ok(agent) = TcpStream::connect(target) else {
                            continue;
                        };
                        pipe(client, agent, s.clone(), st.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            port,
            stall_answers: stall,
            connections,
            stop,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pipe(client: TcpStream, agent: TcpStream, stall: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    let _ = client.set_nodelay(true);
    let _ = agent.set_nodelay(true);
    let (c_read, a_write) = (
        client.try_clone().expect("clone"),
        agent.try_clone().expect("clone"),
    );
    let stop2 = stop.clone();
    std::thread::spawn(move || copy(c_read, a_write, None, stop2));
    std::thread::spawn(move || copy(agent, client, Some(stall), stop));
}

fn copy(
    mut from: TcpStream,
    mut to: TcpStream,
    stall: Option<Arc<AtomicBool>>,
    stop: Arc<AtomicBool>,
) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        if let Some(stall) = &stall {
            while stall.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}
