//! A bucket in S3 or an S3-compatible server (`s3://BUCKET?region=R&endpoint=URL`).
//!
//! Each shard opens its own [`S3Store`] and uses it only on that shard: requests are signed by
//! rusty_s3 (presigned URLs, so a body is never hashed twice) and sent over the shard's own
//! keep-alive glommio connections (`conn.rs`), with responses parsed sans-IO (`http.rs`).
//! Every operation runs under a per-attempt timeout and is retried with jittered exponential
//! backoff on server errors, throttling, timeouts and broken connections (`retry.rs`), bounded
//! in attempts and in total time. When the retries run out, the error names the bucket, the
//! key and the last status.
//!
//! Integrity: a PUT carries the body's CRC-32C in `x-amz-checksum-crc32c`, so a store that
//! checks it refuses a body damaged on the way; readers verify chunk CRCs after every GET
//! (`fetch::read_chunk`).
//!
//! `https://` endpoints use TLS (rustls), trusting `AWS_CA_BUNDLE` if set, else the Mozilla
//! roots (`tls.rs`).

mod conn;
pub mod http;
pub mod retry;
pub mod tls;
pub mod url;
pub mod xml;

use std::cell::RefCell;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rusty_s3::{Bucket, Credentials, S3Action};

use super::file::validate_key;
use super::{ObjectStore, ObjectStoreError};
use crate::limits::S3Limits;
use conn::{ConnError, Pool, Tls};
use http::{BodyLimits, HttpError, Method, Request, Response, ResponseReader};
use retry::RetryPolicy;
pub use url::{Addressing, S3Location};

/// How long a presigned URL stays valid. It only has to outlive one attempt; the margin
/// absorbs clock skew between the agent and the store.
const PRESIGN_EXPIRY: Duration = Duration::from_secs(15 * 60);
/// Keys asked for per ListObjectsV2 page (S3's maximum).
const LIST_PAGE_KEYS: usize = 1000;

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("HTTP {status}{}{}", code_suffix(.code), message_suffix(.message))]
    Status {
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_deref().map(|c| format!(" {c}")).unwrap_or_default()
}

fn message_suffix(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

impl S3Error {
    fn status(&self) -> Option<u16> {
        match self {
            S3Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether another attempt may succeed. A response that broke a size bound would break it
    /// again, so it is final; any other broken exchange is treated like a dropped connection.
    fn is_retriable(&self) -> bool {
        match self {
            S3Error::Timeout(_) => true,
            S3Error::Status { status, code, .. } => {
                retry::is_retriable_status(*status, code.as_deref())
            }
            S3Error::Conn(ConnError::Http(
                HttpError::HeadTooLarge(_)
                | HttpError::BodyTooLarge { .. }
                | HttpError::LengthMismatch { .. },
            )) => false,
            S3Error::Conn(ConnError::Tls { .. }) => false,
            S3Error::Conn(_) => true,
        }
    }
}

/// How an operation ended, before it is named in an [`ObjectStoreError`].
#[derive(Debug)]
enum Failure {
    /// The store answered with a status that will not change on retry.
    Refused(Response, S3Error),
    /// The exchange failed in a way that will not change on retry.
    Final(S3Error),
    /// Retriable failures, until the attempts or the time ran out.
    Exhausted { attempts: u32, last: S3Error },
}

/// What one operation sends.
struct Op<'a> {
    name: &'static str,
    method: Method,
    key: &'a str,
    range: Option<Range<u64>>,
    body: &'a [u8],
    headers: &'a [(&'a str, String)],
    limits: BodyLimits,
}

impl Op<'_> {
    /// The store operation this request serves, as metrics label it.
    fn store_op(&self) -> Option<crate::metrics::StoreOp> {
        use crate::metrics::StoreOp;
        Some(match self.name {
            "PUT" => StoreOp::Put,
            "GET" if self.range.is_some() => StoreOp::GetRange,
            "GET" => StoreOp::Get,
            "DELETE" => StoreOp::Delete,
            "ListObjectsV2" => StoreOp::List,
            "HeadBucket" => StoreOp::Probe,
            _ => return None,
        })
    }
}

/// Reads credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for temporary
/// credentials, `AWS_SESSION_TOKEN`.
pub fn credentials_from_env() -> Result<Credentials, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(key), Some(secret)) => Ok(match var("AWS_SESSION_TOKEN") {
            Some(token) => Credentials::new_with_token(key, secret, token),
            None => Credentials::new(key, secret),
        }),
        _ => Err("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the s3:// store".into()),
    }
}

/// The PEM file of CA certificates to trust for `https://` endpoints, from `AWS_CA_BUNDLE`.
pub fn ca_bundle_from_env() -> Option<PathBuf> {
    std::env::var_os("AWS_CA_BUNDLE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Checks a bucket URL, the credentials and the CA bundle without connecting, so that the
/// agent can refuse to start before any shard runs.
pub fn check(url: &str) -> Result<(), ObjectStoreError> {
    let invalid = |why: String| ObjectStoreError::InvalidUrl(url.to_string(), why);
    let location = S3Location::parse(url).map_err(invalid)?;
    location.bucket().map_err(invalid)?;
    credentials_from_env().map_err(invalid)?;
    if location.endpoint.scheme() == "https" {
        tls::client_config(ca_bundle_from_env().as_deref()).map_err(invalid)?;
    }
    Ok(())
}

pub struct S3Store {
    location: S3Location,
    bucket: Bucket,
    credentials: Credentials,
    /// The Host header: the host of the bucket's URL, with its port unless it is the default.
    host_header: String,
    pool: Pool,
    retry: RetryPolicy,
    limits: S3Limits,
    rng: RefCell<fastrand::Rng>,
}

impl S3Store {
    /// Opens the store for `url`, with credentials and CA bundle from the environment. Opens
    /// no connection.
    pub fn open(url: &str, limits: &S3Limits) -> Result<S3Store, ObjectStoreError> {
        let invalid = |why: String| ObjectStoreError::InvalidUrl(url.to_string(), why);
        let location = S3Location::parse(url).map_err(invalid)?;
        let credentials = credentials_from_env().map_err(invalid)?;
        S3Store::new(
            location,
            credentials,
            ca_bundle_from_env().as_deref(),
            limits,
        )
        .map_err(invalid)
    }

    /// `ca_bundle` matters only for `https://` endpoints: the CA certificates to trust instead
    /// of the built-in roots. Reads it, so call it at start-up.
    pub fn new(
        location: S3Location,
        credentials: Credentials,
        ca_bundle: Option<&Path>,
        limits: &S3Limits,
    ) -> Result<S3Store, String> {
        let bucket = location.bucket()?;
        let base = bucket.base_url();
        let host = base
            .host_str()
            .ok_or_else(|| format!("endpoint {base} has no host"))?
            .to_string();
        let port = base
            .port_or_known_default()
            .ok_or_else(|| format!("endpoint {base} has no port"))?;
        let host_header = match base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let tls = match base.scheme() {
            "https" => Some(Tls::new(tls::client_config(ca_bundle)?, &host)?),
            _ => None,
        };
        let pool = Pool::new(
            host,
            port,
            tls,
            limits.connect_timeout,
            limits.connections_max,
            limits.idle_connections_max,
            limits.idle_connection_lifetime,
        );
        Ok(S3Store {
            location,
            bucket,
            credentials,
            host_header,
            pool,
            retry: RetryPolicy::from_limits(limits),
            limits: limits.clone(),
            rng: RefCell::new(fastrand::Rng::new()),
        })
    }

    pub fn bucket_name(&self) -> &str {
        &self.location.bucket
    }

    /// Creates the bucket; succeeds if this account already owns it. For tests and tools: the
    /// agent expects its bucket to exist.
    pub async fn create_bucket(&self) -> Result<(), ObjectStoreError> {
        let action = self.bucket.create_bucket(&self.credentials);
        let body = action.body();
        let op = Op {
            name: "CreateBucket",
            method: Method::Put,
            key: "",
            range: None,
            body: body.as_bytes(),
            headers: &[],
            limits: self.body_limits(self.limits.error_body_bytes_max, None),
        };
        match self.execute(&op, &|| action.sign(PRESIGN_EXPIRY)).await {
            Ok(_) => Ok(()),
            Err(Failure::Refused(_, S3Error::Status { code: Some(c), .. }))
                if c == "BucketAlreadyOwnedByYou" =>
            {
                Ok(())
            }
            Err(f) => Err(self.error(&op, f)),
        }
    }

    /// The size of an object.
    pub async fn head(&self, key: &str) -> Result<u64, ObjectStoreError> {
        validate_key(key)?;
        let action = self.bucket.head_object(Some(&self.credentials), key);
        let op = Op {
            name: "HEAD",
            method: Method::Head,
            key,
            range: None,
            body: &[],
            headers: &[],
            limits: self.body_limits(0, None),
        };
        match self.execute(&op, &|| action.sign(PRESIGN_EXPIRY)).await {
            Ok(resp) => resp.content_length.ok_or_else(|| {
                self.error(
                    &op,
                    Failure::Final(S3Error::Conn(ConnError::Http(HttpError::BadHead(
                        "HEAD answer without content-length".into(),
                    )))),
                )
            }),
            Err(f) => Err(self.error(&op, f)),
        }
    }

    fn body_limits(&self, success_bytes_max: u64, exact: Option<u64>) -> BodyLimits {
        BodyLimits {
            success_bytes_max,
            success_bytes_exact: exact,
            error_bytes_max: self.limits.error_body_bytes_max,
            head_bytes_max: self.limits.response_head_bytes_max,
        }
    }

    /// Runs one operation with timeouts and retries. `sign` presigns a fresh URL per attempt.
    async fn execute(
        &self,
        op: &Op<'_>,
        sign: &dyn Fn() -> ::url::Url,
    ) -> Result<Response, Failure> {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            let url = sign();
            let target = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_string(),
            };
            let req = Request {
                method: op.method,
                target: &target,
                host: &self.host_header,
                range: op.range.clone(),
                body_len: op.body.len(),
                headers: op.headers,
            };
            let remaining = self
                .retry
                .operation_timeout
                .saturating_sub(started.elapsed());
            let limit = self.limits.attempt_timeout.min(remaining);
            let exchange = self
                .pool
                .exchange(&req, op.body, || ResponseReader::new(op.method, op.limits));
            let e = match within(limit, exchange).await {
                None => S3Error::Timeout(limit),
                Some(Err(e)) => S3Error::Conn(e),
                Some(Ok(resp)) if (200..300).contains(&resp.status) => return Ok(resp),
                Some(Ok(resp)) => {
                    let doc = xml::parse_error(&resp.body);
                    let e = S3Error::Status {
                        status: resp.status,
                        code: doc.code,
                        message: doc.message,
                    };
                    if !e.is_retriable() {
                        return Err(Failure::Refused(resp, e));
                    }
                    e
                }
            };
            if !e.is_retriable() {
                return Err(Failure::Final(e));
            }
            attempts += 1;
            if let Some(kind) = op.store_op() {
                crate::metrics::store_retry(kind);
            }
            let random = self.rng.borrow_mut().u64(..);
            match self.retry.next_delay(attempts, started.elapsed(), random) {
                None => return Err(Failure::Exhausted { attempts, last: e }),
                Some(wait) => {
                    tracing::debug!(
                        op = op.name,
                        bucket = self.location.bucket,
                        key = op.key,
                        attempts,
                        wait_ms = wait.as_millis() as u64,
                        error = %e,
                        "S3 request failed; retrying"
                    );
                    glommio::timer::sleep(wait).await;
                }
            }
        }
    }

    /// Names a failed operation for the caller.
    fn error(&self, op: &Op<'_>, failure: Failure) -> ObjectStoreError {
        let bucket = self.location.bucket.clone();
        let key = op.key.to_string();
        match failure {
            Failure::Refused(resp, e) if resp.status == 404 && is_missing_key(&e) => {
                ObjectStoreError::NotFound { key }
            }
            Failure::Refused(resp, e) => ObjectStoreError::Rejected {
                op: op.name,
                bucket,
                key,
                status: resp.status,
                detail: e.to_string(),
            },
            Failure::Final(e) => ObjectStoreError::BadResponse {
                op: op.name,
                bucket,
                key,
                detail: e.to_string(),
            },
            Failure::Exhausted { attempts, last } => ObjectStoreError::Unavailable {
                op: op.name,
                bucket,
                key,
                status: last.status(),
                attempts,
                detail: last.to_string(),
            },
        }
    }
}

/// A 404 means the object is missing unless the body says the bucket is.
fn is_missing_key(e: &S3Error) -> bool {
    !matches!(e, S3Error::Status { code: Some(c), .. } if c == "NoSuchBucket")
}

async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    use futures::future::{select, Either};
    match select(
        std::pin::pin!(fut),
        std::pin::pin!(glommio::timer::sleep(limit)),
    )
    .await
    {
        Either::Left((v, _)) => Some(v),
        Either::Right(_) => None,
    }
}

/// Standard base64 of a big-endian CRC-32C, as `x-amz-checksum-crc32c` wants it.
fn crc32c_header(crc32c: u32) -> String {
    base64(&crc32c.to_be_bytes())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[async_trait::async_trait(?Send)]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), ObjectStoreError> {
        let crc = crc32c::crc32c(&body);
        self.put_with_crc32c(key, body, crc).await
    }

    async fn put_with_crc32c(
        &self,
        key: &str,
        body: Bytes,
        crc32c: u32,
    ) -> Result<(), ObjectStoreError> {
        validate_key(key)?;
        let checksum = crc32c_header(crc32c);
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        action
            .headers_mut()
            .insert("x-amz-checksum-crc32c", checksum.clone());
        let headers = [("x-amz-checksum-crc32c", checksum)];
        let op = Op {
            name: "PUT",
            method: Method::Put,
            key,
            range: None,
            body: &body,
            headers: &headers,
            limits: self.body_limits(self.limits.error_body_bytes_max, None),
        };
        self.execute(&op, &|| action.sign(PRESIGN_EXPIRY))
            .await
            .map(drop)
            .map_err(|f| self.error(&op, f))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError> {
        validate_key(key)?;
        let out_of_bounds = |size| ObjectStoreError::RangeOutOfBounds {
            key: key.to_string(),
            start: range.start,
            end: range.end,
            size,
        };
        if range.start >= range.end {
            // HTTP cannot ask for an empty range; the object's size says whether it is valid.
            let size = self.head(key).await?;
            return if range.start == range.end && range.end <= size {
                Ok(Bytes::new())
            } else {
                Err(out_of_bounds(size))
            };
        }
        let len = range.end - range.start;
        if len > self.limits.object_bytes_max {
            return Err(ObjectStoreError::BadResponse {
                op: "GET",
                bucket: self.location.bucket.clone(),
                key: key.to_string(),
                detail: format!(
                    "range of {len} bytes exceeds the limit of {}",
                    self.limits.object_bytes_max
                ),
            });
        }
        let action = self.bucket.get_object(Some(&self.credentials), key);
        let op = Op {
            name: "GET",
            method: Method::Get,
            key,
            range: Some(range.clone()),
            body: &[],
            headers: &[],
            limits: self.body_limits(len, Some(len)),
        };
        match self.execute(&op, &|| action.sign(PRESIGN_EXPIRY)).await {
            Ok(resp) => {
                let starts_right = match resp.content_range.and_then(|c| c.range) {
                    Some((start, _)) => start == range.start,
                    // A 200 carries the whole object, which matches only from offset 0.
                    None => range.start == 0,
                };
                if starts_right {
                    Ok(resp.body)
                } else {
                    Err(self.error(
                        &op,
                        Failure::Final(S3Error::Conn(ConnError::Http(HttpError::BadHead(
                            format!("answer to range {range:?} is {:?}", resp.content_range),
                        )))),
                    ))
                }
            }
            Err(Failure::Refused(resp, _)) if resp.status == 416 => Err(out_of_bounds(
                resp.content_range.and_then(|c| c.size).unwrap_or(0),
            )),
            Err(Failure::Final(S3Error::Conn(ConnError::Http(HttpError::LengthMismatch {
                object_size: Some(size),
                ..
            }))))
                if range.end > size =>
            {
                Err(out_of_bounds(size))
            }
            Err(f) => Err(self.error(&op, f)),
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        validate_key(key)?;
        let action = self.bucket.get_object(Some(&self.credentials), key);
        let op = Op {
            name: "GET",
            method: Method::Get,
            key,
            range: None,
            body: &[],
            headers: &[],
            limits: self.body_limits(self.limits.object_bytes_max, None),
        };
        self.execute(&op, &|| action.sign(PRESIGN_EXPIRY))
            .await
            .map(|r| r.body)
            .map_err(|f| self.error(&op, f))
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        validate_key(key)?;
        let action = self.bucket.delete_object(Some(&self.credentials), key);
        let op = Op {
            name: "DELETE",
            method: Method::Delete,
            key,
            range: None,
            body: &[],
            headers: &[],
            limits: self.body_limits(self.limits.error_body_bytes_max, None),
        };
        match self.execute(&op, &|| action.sign(PRESIGN_EXPIRY)).await {
            Ok(_) => Ok(()),
            // Deleting what is not there succeeds, so retries are idempotent.
            Err(Failure::Refused(resp, e)) if resp.status == 404 && is_missing_key(&e) => Ok(()),
            Err(f) => Err(self.error(&op, f)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError> {
        let mut keys = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(prefix);
            action.with_max_keys(LIST_PAGE_KEYS);
            if let Some(token) = &continuation {
                action.with_continuation_token(token.as_str());
            }
            let op = Op {
                name: "ListObjectsV2",
                method: Method::Get,
                key: prefix,
                range: None,
                body: &[],
                headers: &[],
                limits: self.body_limits(self.limits.list_page_bytes_max, None),
            };
            let resp = self
                .execute(&op, &|| action.sign(PRESIGN_EXPIRY))
                .await
                .map_err(|f| self.error(&op, f))?;
            let page = xml::parse_list_page(&resp.body).map_err(|detail| {
                ObjectStoreError::BadResponse {
                    op: op.name,
                    bucket: self.location.bucket.clone(),
                    key: prefix.to_string(),
                    detail,
                }
            })?;
            keys.extend(page.keys.into_iter().filter(|k| k.starts_with(prefix)));
            if keys.len() > self.limits.list_keys_max {
                return Err(ObjectStoreError::BadResponse {
                    op: op.name,
                    bucket: self.location.bucket.clone(),
                    key: prefix.to_string(),
                    detail: format!(
                        "more than {} keys under the prefix",
                        self.limits.list_keys_max
                    ),
                });
            }
            match page.continuation {
                Some(token) if Some(&token) != continuation.as_ref() => continuation = Some(token),
                Some(_) => {
                    return Err(ObjectStoreError::BadResponse {
                        op: op.name,
                        bucket: self.location.bucket.clone(),
                        key: prefix.to_string(),
                        detail: "the listing repeats its continuation token".into(),
                    })
                }
                None => break,
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    async fn probe(&self) -> Result<(), ObjectStoreError> {
        let action = self.bucket.head_bucket(Some(&self.credentials));
        let op = Op {
            name: "HeadBucket",
            method: Method::Head,
            key: "",
            range: None,
            body: &[],
            headers: &[],
            limits: self.body_limits(0, None),
        };
        self.execute(&op, &|| action.sign(PRESIGN_EXPIRY))
            .await
            .map(drop)
            .map_err(|f| self.error(&op, f))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A fake S3 that answers requests, on any connection, from a script, and records the
    /// request lines it saw.
    struct Scripted {
        port: u16,
        seen: Arc<Mutex<Vec<String>>>,
    }

    fn scripted(answers: Vec<&'static str>) -> Scripted {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (answers, log) = (answers.clone(), log.clone());
                std::thread::spawn(move || {
                    let mut w = conn.try_clone().expect("clone");
                    let mut r = BufReader::new(conn);
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut body_len = 0usize;
                        loop {
                            let mut h = String::new();
                            r.read_line(&mut h).expect("header");
                            if h == "\r\n" {
                                break;
                            }
                            if let Some(v) = h.strip_prefix("content-length: ") {
                                body_len = v.trim().parse().expect("length");
                            }
                        }
                        let mut body = vec![0u8; body_len];
                        r.read_exact(&mut body).expect("body");
                        log.lock().expect("log").push(line.trim().to_string());
                        let answer = answers.lock().expect("script").pop_front();
                        match answer {
                            Some(a) => w.write_all(a.as_bytes()).expect("answer"),
                            None => return,
                        }
                    }
                });
            }
        });
        Scripted { port, seen }
    }

    fn run<T: Send + 'static>(
        port: u16,
        f: impl FnOnce(S3Store) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>>
            + Send
            + 'static,
    ) -> T {
        std::thread::spawn(move || {
            glommio::LocalExecutorBuilder::default()
                .make()
                .expect("executor")
                .run(async move {
                    let url = format!("s3://scripted?endpoint=http://127.0.0.1:{port}");
                    let location = S3Location::parse(&url).expect("url");
                    let creds = Credentials::new("key", "secret");
                    let store =
                        S3Store::new(location, creds, None, &S3Limits::test()).expect("store");
                    f(store).await
                })
        })
        .join()
        .expect("store thread")
    }

    const SLOW_DOWN: &str = "HTTP/1.1 503 Slow Down\r\nContent-Length: 79\r\n\r\n\
        <Error><Code>SlowDown</Code><Message>Please reduce your rate.</Message></Error>";
    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    const DENIED: &str = "HTTP/1.1 403 Forbidden\r\nContent-Length: 62\r\n\r\n\
        <Error><Code>AccessDenied</Code><Message>No.</Message></Error>";

    #[test]
    fn slow_down_is_retried_until_it_passes() {
        let server = scripted(vec![SLOW_DOWN, SLOW_DOWN, OK]);
        run(server.port, |s| {
            Box::pin(async move { s.put("segments/a", Bytes::from_static(b"abc")).await })
        })
        .expect("third attempt succeeds");
        let seen = server.seen.lock().expect("log").clone();
        assert_eq!(seen.len(), 3);
        assert!(seen
            .iter()
            .all(|l| l.starts_with("PUT /scripted/segments/a?")));
    }

    #[test]
    fn retries_run_out_with_bucket_key_status_and_attempts() {
        let limits = S3Limits::test();
        let server = scripted(vec![SLOW_DOWN; 10]);
        let err = run(server.port, |s| {
            Box::pin(async move { s.get_range("segments/b", 0..10).await })
        })
        .expect_err("always throttled");
        match &err {
            ObjectStoreError::Unavailable {
                op,
                bucket,
                key,
                status,
                attempts,
                detail,
            } => {
                assert_eq!(
                    (*op, bucket.as_str(), key.as_str()),
                    ("GET", "scripted", "segments/b")
                );
                assert_eq!(*status, Some(503));
                assert_eq!(*attempts, limits.attempts_max);
                assert!(detail.contains("SlowDown"), "{detail}");
            }
            other => panic!("expected Unavailable, got {other}"),
        }
        assert_eq!(
            server.seen.lock().expect("log").len(),
            limits.attempts_max as usize
        );
        assert!(err.to_string().contains("last status: 503"), "{err}");
    }

    #[test]
    fn refusals_are_not_retried() {
        let server = scripted(vec![DENIED, OK]);
        let err = run(server.port, |s| {
            Box::pin(async move { s.delete("segments/c").await })
        })
        .expect_err("denied");
        assert!(
            matches!(&err, ObjectStoreError::Rejected { status: 403, detail, .. } if detail.contains("AccessDenied")),
            "{err}"
        );
        assert_eq!(server.seen.lock().expect("log").len(), 1);
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0xfd, 0xfc]), "//79/A==");
        // The CRC-32C check value of "123456789" is 0xe3069283.
        assert_eq!(
            crc32c_header(crc32c::crc32c(b"123456789")),
            base64(&[0xe3, 0x06, 0x92, 0x83])
        );
    }

    #[test]
    fn errors_say_whether_to_retry() {
        let status = |status, code: Option<&str>| S3Error::Status {
            status,
            code: code.map(String::from),
            message: None,
        };
        assert!(status(503, Some("SlowDown")).is_retriable());
        assert!(status(500, None).is_retriable());
        assert!(!status(403, Some("AccessDenied")).is_retriable());
        assert!(S3Error::Timeout(Duration::from_secs(1)).is_retriable());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(S3Error::Conn(ConnError::Io(reset)).is_retriable());
        assert!(S3Error::Conn(ConnError::Http(HttpError::Truncated)).is_retriable());
        assert!(
            !S3Error::Conn(ConnError::Http(HttpError::BodyTooLarge { len: 2, max: 1 }))
                .is_retriable()
        );
        assert_eq!(
            status(503, Some("SlowDown")).to_string(),
            "HTTP 503 SlowDown"
        );
    }

    #[test]
    fn a_tls_failure_is_final() {
        let bad_cert = std::io::Error::new(std::io::ErrorKind::InvalidData, "UnknownIssuer");
        assert!(!S3Error::Conn(ConnError::Tls {
            host: "h".into(),
            source: bad_cert
        })
        .is_retriable());
    }
}
