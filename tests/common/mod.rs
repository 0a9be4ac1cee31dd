//! Shared harness for the end-to-end tests: start a real `weft agent` process on free ports,
//! kill or stop it by process id, and restart it on the same data directory.
#![allow(dead_code)]

pub mod kafka;
pub mod proxy;
pub mod seaweed;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local address")
        .port()
}

/// The agent binary: `WEFT_BIN` if set (useful when several worktrees share one target
/// directory, where the built binary is overwritten by whichever built last), else the one
/// cargo built for these tests.
pub fn weft_bin() -> PathBuf {
    std::env::var_os("WEFT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_weft")))
}

/// A running agent process.
pub struct Agent {
    child: Option<Child>,
    pub port: u16,
    pub http_port: u16,
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
}

impl Agent {
    /// Starts an agent with a fresh data directory and test-sized settings.
    pub fn start() -> Agent {
        Agent::start_with(&[])
    }

    pub fn start_with(extra_args: &[&str]) -> Agent {
        Agent::start_with_env(extra_args, &[])
    }

    /// Starts an agent with extra flags and environment variables (e.g. S3 credentials).
    pub fn start_with_env(extra_args: &[&str], env: &[(String, String)]) -> Agent {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut agent = Agent {
            child: None,
            port: free_port(),
            http_port: free_port(),
            data_dir: tmp.path().to_path_buf(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: env.to_vec(),
            _tmp: Some(tmp),
        };
        agent.spawn();
        agent
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("agent.log"))
            .expect("agent log file");
        // WEFT_TEST_WRAPPER runs the agent under another program, e.g. a debugger:
        // WEFT_TEST_WRAPPER="gdb -batch -ex run -ex bt --args".
        let wrapper = std::env::var("WEFT_TEST_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(weft_bin());
                c
            }
            None => Command::new(weft_bin()),
        };
        let child = cmd
            .arg("agent")
            .arg("--kafka-addr")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--cores")
            .arg("2")
            .args(&self.extra_args)
            .env(
                "WEFT_LOG",
                std::env::var("WEFT_TEST_LOG").unwrap_or_else(|_| "info".to_string()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start weft agent");
        self.child = Some(child);
        wait_for_port(self.addr(), Duration::from_secs(30));
    }

    /// SIGKILL, as a crash would. Returns once the port is free again: the kernel may keep a
    /// dead process's listening sockets open for a moment after it is reaped.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            wait_for_port_free(self.port, Duration::from_secs(10));
        }
    }

    /// SIGTERM, then waits for the process to exit; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the agent with SIGKILL and starts it again on the same ports and data directory.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Starts a stopped agent again.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "agent still running");
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("agent.log")).unwrap_or_default()
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                eprintln!("---- the agent had already exited: {status} ----");
            }
        }
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- agent log ----\n{}", self.log());
        }
    }
}

pub fn wait_for_port(addr: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("agent did not listen on {addr} within {timeout:?}");
}

/// Waits until nothing listens on `port` (a plain bind succeeds).
pub fn wait_for_port_free(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("port {port} still in use after {timeout:?}");
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out
}
