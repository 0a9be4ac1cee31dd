//! An in-memory bucket (`mem://NAME`) for tests.
//!
//! Every shard opens its own handle, but a bucket must look the same from all of them, as a real
//! bucket would; so buckets live in a process-wide registry keyed by name and are never freed.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Bound, Range};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use bytes::Bytes;

use super::file::validate_key;
use super::{ObjectStore, ObjectStoreError};

type Bucket = Arc<Mutex<BTreeMap<String, Bytes>>>;

static BUCKETS: OnceLock<Mutex<HashMap<String, Bucket>>> = OnceLock::new();

/// Recovers from poisoning: every operation leaves the map consistent, so a panic in another
/// test thread does not make its contents wrong.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct MemStore {
    objects: Bucket,
}

impl MemStore {
    /// Opens the bucket `name`, creating it empty on first use in this process.
    pub fn open(name: &str) -> MemStore {
        let registry = BUCKETS.get_or_init(Default::default);
        let objects = lock(registry).entry(name.to_string()).or_default().clone();
        MemStore { objects }
    }

    fn objects(&self) -> MutexGuard<'_, BTreeMap<String, Bytes>> {
        lock(&self.objects)
    }
}

#[async_trait::async_trait(?Send)]
impl ObjectStore for MemStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), ObjectStoreError> {
        validate_key(key)?;
        self.objects().insert(key.to_string(), body);
        Ok(())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError> {
        let object = self.get(key).await?;
        let size = object.len() as u64;
        if range.start > range.end || range.end > size {
            return Err(ObjectStoreError::RangeOutOfBounds {
                key: key.to_string(),
                start: range.start,
                end: range.end,
                size,
            });
        }
        // Both bounds are at most `size`, which came from a `usize`.
        let start = usize::try_from(range.start).expect("bounded by the object length");
        let end = usize::try_from(range.end).expect("bounded by the object length");
        Ok(object.slice(start..end))
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        validate_key(key)?;
        self.objects()
            .get(key)
            .cloned()
            .ok_or_else(|| ObjectStoreError::NotFound {
                key: key.to_string(),
            })
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        validate_key(key)?;
        self.objects().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError> {
        Ok(self
            .objects()
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn probe(&self) -> Result<(), ObjectStoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use super::*;

    fn run<F, Fut>(f: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(f());
    }

    #[test]
    fn put_get_range_delete() {
        run(|| async {
            let s = MemStore::open("mem-basic");
            s.put("a/b/c.seg", Bytes::from_static(b"hello world"))
                .await
                .expect("put");
            assert_eq!(s.get("a/b/c.seg").await.expect("get"), &b"hello world"[..]);
            assert_eq!(
                s.get_range("a/b/c.seg", 6..11).await.expect("range"),
                &b"world"[..]
            );
            assert_eq!(
                s.get_range("a/b/c.seg", 11..11).await.expect("empty"),
                &b""[..]
            );
            assert!(matches!(
                s.get_range("a/b/c.seg", 6..12).await,
                Err(ObjectStoreError::RangeOutOfBounds { size: 11, .. })
            ));
            #[allow(clippy::reversed_empty_ranges)]
            let reversed = 5..4;
            assert!(matches!(
                s.get_range("a/b/c.seg", reversed).await,
                Err(ObjectStoreError::RangeOutOfBounds { .. })
            ));
            assert!(matches!(
                s.get_range("missing", 0..1).await,
                Err(ObjectStoreError::NotFound { .. })
            ));
            s.delete("a/b/c.seg").await.expect("delete");
            assert!(matches!(
                s.get("a/b/c.seg").await,
                Err(ObjectStoreError::NotFound { .. })
            ));
            s.delete("a/b/c.seg").await.expect("delete missing");
            s.probe().await.expect("probe");
        });
    }

    #[test]
    fn list_nested_sorted() {
        run(|| async {
            let s = MemStore::open("mem-list");
            for key in [
                "segments/b",
                "segments/a",
                "segments/x/y/z",
                "other/c",
                "top",
            ] {
                s.put(key, Bytes::from_static(b"1")).await.expect("put");
            }
            assert_eq!(
                s.list("").await.expect("list"),
                [
                    "other/c",
                    "segments/a",
                    "segments/b",
                    "segments/x/y/z",
                    "top"
                ]
            );
            assert_eq!(
                s.list("segments/").await.expect("list"),
                ["segments/a", "segments/b", "segments/x/y/z"]
            );
            assert!(s.list("zzz").await.expect("list").is_empty());
        });
    }

    #[test]
    fn invalid_keys_are_rejected() {
        run(|| async {
            let s = MemStore::open("mem-invalid");
            for key in ["", "/abs", "../x", "a/../b", "a//b", "a/", ".tmp-x"] {
                assert!(
                    matches!(s.put(key, Bytes::new()).await,
                        Err(ObjectStoreError::Io { source, .. }) if source.kind() == ErrorKind::InvalidInput),
                    "{key:?}"
                );
            }
            assert!(s.list("").await.expect("list").is_empty());
        });
    }

    #[test]
    fn same_name_is_shared_across_threads() {
        let writer = std::thread::spawn(|| {
            run(|| async {
                let s = MemStore::open("mem-shared");
                s.put("from/writer", Bytes::from_static(b"hi"))
                    .await
                    .expect("put");
            })
        });
        writer.join().expect("writer thread");
        let reader = std::thread::spawn(|| {
            run(|| async {
                let s = super::super::open("mem://mem-shared").expect("open");
                assert_eq!(s.get("from/writer").await.expect("get"), &b"hi"[..]);
                assert!(matches!(
                    MemStore::open("mem-other").get("from/writer").await,
                    Err(ObjectStoreError::NotFound { .. })
                ));
            })
        });
        reader.join().expect("reader thread");
    }
}
