//! A bucket in a local directory (`file://DIR`), for single-node deployments and tests.
//!
//! A key maps to a path below the root, `/` separating sub-directories. Every filesystem call
//! runs on glommio's blocking thread pool: std file I/O would otherwise stall the shard's reactor
//! and every connection it serves. The store must therefore be used from inside a glommio
//! executor.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{ObjectStore, ObjectStoreError};

/// File names starting with this are in-progress writes; keys may not use it, so a temp file can
/// never be mistaken for an object.
const TEMP_PREFIX: &str = ".tmp-";

pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// Opens (creating it if needed) the directory that holds the objects.
    ///
    /// This blocks, which is acceptable because it runs once per shard at start-up, before the
    /// shard serves anything.
    pub fn open(dir: &str) -> Result<FileStore, ObjectStoreError> {
        if dir.is_empty() {
            return Err(ObjectStoreError::InvalidUrl(
                "file://".to_string(),
                "the directory is empty".to_string(),
            ));
        }
        let root = PathBuf::from(dir);
        fs::create_dir_all(&root).map_err(|source| io_err("", source))?;
        if !fs::metadata(&root)
            .map_err(|source| io_err("", source))?
            .is_dir()
        {
            return Err(io_err(
                "",
                io::Error::new(
                    ErrorKind::NotADirectory,
                    format!("{dir} is not a directory"),
                ),
            ));
        }
        Ok(FileStore { root })
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, ObjectStoreError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

/// Rejects keys that could escape the root, alias another key, or collide with temp files.
///
/// Shared with the in-memory store so that a key accepted by one store is accepted by the other.
pub(super) fn validate_key(key: &str) -> Result<(), ObjectStoreError> {
    let reason = if key.is_empty() {
        Some("the key is empty")
    } else if key.starts_with('/') {
        Some("the key is an absolute path")
    } else if key.contains('\0') {
        Some("the key contains a NUL byte")
    } else {
        key.split('/').find_map(|segment| match segment {
            "" => Some("the key has an empty segment"),
            "." | ".." => Some("the key has a '.' or '..' segment"),
            s if s.starts_with(TEMP_PREFIX) => {
                Some("the key has a segment reserved for temp files")
            }
            _ => None,
        })
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(io_err(key, io::Error::new(ErrorKind::InvalidInput, reason))),
    }
}

fn io_err(key: &str, source: io::Error) -> ObjectStoreError {
    ObjectStoreError::Io {
        key: key.to_string(),
        source,
    }
}

/// Maps "nothing there" errors to `NotFound`. `NotADirectory` counts because a key below an
/// existing object (`a/b` when `a` is an object) names nothing.
fn read_err(key: &str, source: io::Error) -> ObjectStoreError {
    match source.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory => ObjectStoreError::NotFound {
            key: key.to_string(),
        },
        _ => io_err(key, source),
    }
}

/// Runs blocking filesystem work off the reactor thread.
async fn blocking<R, F>(func: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    glommio::executor().spawn_blocking(func).await
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens `path` as an object: directories are not objects, even though `open` accepts them.
fn open_object(key: &str, path: &Path) -> Result<(File, u64), ObjectStoreError> {
    let file = File::open(path).map_err(|e| read_err(key, e))?;
    let meta = file.metadata().map_err(|e| io_err(key, e))?;
    if !meta.is_file() {
        return Err(ObjectStoreError::NotFound {
            key: key.to_string(),
        });
    }
    Ok((file, meta.len()))
}

fn read_exact_at(key: &str, file: &File, start: u64, len: u64) -> Result<Bytes, ObjectStoreError> {
    let len = usize::try_from(len).map_err(|_| {
        io_err(
            key,
            io::Error::new(ErrorKind::OutOfMemory, "range does not fit in memory"),
        )
    })?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, start)
        .map_err(|e| io_err(key, e))?;
    Ok(Bytes::from(buf))
}

/// Creates the missing directories between `root` and `dir`, returning the directories that
/// gained an entry and so must be fsynced for the new object to survive a crash.
fn create_parents(root: &Path, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut dirty = Vec::new();
    let relative = dir.strip_prefix(root).map_err(|_| {
        io::Error::new(
            ErrorKind::InvalidInput,
            "object directory is outside the root",
        )
    })?;
    let mut current = root.to_path_buf();
    for component in relative.components() {
        let parent = current.clone();
        current.push(component);
        match fs::create_dir(&current) {
            Ok(()) => dirty.push(parent),
            // Another put (or shard) may create the same directory concurrently.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(dirty)
}

fn put_blocking(root: &Path, path: &Path, body: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "object path has no parent"))?;
    let dirty = create_parents(root, dir)?;
    // The temp file lives in the destination directory so that the rename cannot cross a
    // filesystem boundary and stays atomic.
    let temp = dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(body)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        // Best effort: a leftover temp file is invisible to readers and harmless.
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    fsync_dir(dir)?;
    // Deepest first, so a directory is durable before the entry that names it in its parent.
    for parent in dirty.iter().rev() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Appends to `out` the keys below `dir` (whose key prefix is `dir_key`) that start with
/// `prefix`, skipping sub-trees that cannot match.
fn list_dir(dir: &Path, dir_key: &str, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // A concurrent delete may remove a directory mid-walk; it then holds no keys.
        Err(e) if e.kind() == ErrorKind::NotFound && !dir_key.is_empty() => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            // Not valid UTF-8, so not written by this store and not nameable by a key.
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let key = format!("{dir_key}{name}");
        // Does not follow symlinks: only plain files and directories are objects and folders.
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if file_type.is_dir() {
            let sub_key = format!("{key}/");
            if sub_key.starts_with(prefix) || prefix.starts_with(&sub_key) {
                list_dir(&entry.path(), &sub_key, prefix, out)?;
            }
        } else if file_type.is_file() && key.starts_with(prefix) {
            out.push(key);
        }
    }
    Ok(())
}

#[async_trait::async_trait(?Send)]
impl ObjectStore for FileStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), ObjectStoreError> {
        let path = self.path_of(key)?;
        let root = self.root.clone();
        blocking(move || put_blocking(&root, &path, &body))
            .await
            .map_err(|e| io_err(key, e))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError> {
        let path = self.path_of(key)?;
        let owned_key = key.to_string();
        blocking(move || {
            let key = owned_key.as_str();
            let (file, size) = open_object(key, &path)?;
            if range.start > range.end || range.end > size {
                return Err(ObjectStoreError::RangeOutOfBounds {
                    key: owned_key,
                    start: range.start,
                    end: range.end,
                    size,
                });
            }
            read_exact_at(key, &file, range.start, range.end - range.start)
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        let path = self.path_of(key)?;
        let owned_key = key.to_string();
        blocking(move || {
            let key = owned_key.as_str();
            let (file, size) = open_object(key, &path)?;
            read_exact_at(key, &file, 0, size)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        let path = self.path_of(key)?;
        blocking(move || {
            match fs::remove_file(&path) {
                Ok(()) => {}
                // Deleting what is not there succeeds, as on S3, so retries are idempotent.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
                    ) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            match path.parent() {
                Some(dir) => fsync_dir(dir),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| io_err(key, e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError> {
        let root = self.root.clone();
        let owned_prefix = prefix.to_string();
        blocking(move || {
            let mut keys = Vec::new();
            list_dir(&root, "", &owned_prefix, &mut keys)?;
            keys.sort_unstable();
            Ok(keys)
        })
        .await
        .map_err(|e| io_err(prefix, e))
    }

    async fn probe(&self) -> Result<(), ObjectStoreError> {
        let root = self.root.clone();
        blocking(move || {
            let meta = fs::metadata(&root)?;
            if meta.is_dir() {
                Ok(())
            } else {
                Err(io::Error::new(
                    ErrorKind::NotADirectory,
                    format!("{} is not a directory", root.display()),
                ))
            }
        })
        .await
        .map_err(|e| io_err("", e))
    }
}

#[cfg(test)]
mod tests {
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

    fn store(dir: &tempfile::TempDir) -> FileStore {
        FileStore::open(dir.path().join("bucket").to_str().expect("utf-8 path")).expect("open")
    }

    #[test]
    fn put_get_range_delete() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let s = store(&dir);
            s.put("a/b/c.seg", Bytes::from_static(b"hello world"))
                .await
                .expect("put");
            assert_eq!(s.get("a/b/c.seg").await.expect("get"), &b"hello world"[..]);
            assert_eq!(
                s.get_range("a/b/c.seg", 6..11).await.expect("range"),
                &b"world"[..]
            );
            assert_eq!(
                s.get_range("a/b/c.seg", 3..3).await.expect("empty"),
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
            s.put("empty", Bytes::new()).await.expect("put empty");
            assert!(s.get("empty").await.expect("get empty").is_empty());

            s.delete("a/b/c.seg").await.expect("delete");
            assert!(matches!(
                s.get("a/b/c.seg").await,
                Err(ObjectStoreError::NotFound { .. })
            ));
            s.delete("a/b/c.seg").await.expect("delete missing");
            s.delete("never/was").await.expect("delete missing dir");
            s.probe().await.expect("probe");
        });
    }

    #[test]
    fn not_found() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let s = store(&dir);
            s.put("a/b", Bytes::from_static(b"x")).await.expect("put");
            for key in ["missing", "a", "a/b/c", "a/c"] {
                assert!(
                    matches!(s.get(key).await, Err(ObjectStoreError::NotFound { .. })),
                    "{key}"
                );
                assert!(
                    matches!(
                        s.get_range(key, 0..1).await,
                        Err(ObjectStoreError::NotFound { .. })
                    ),
                    "{key}"
                );
            }
        });
    }

    #[test]
    fn overwrite_replaces_whole_object() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let s = store(&dir);
            s.put("k", Bytes::from_static(b"a long first body"))
                .await
                .expect("put");
            s.put("k", Bytes::from_static(b"short")).await.expect("put");
            assert_eq!(s.get("k").await.expect("get"), &b"short"[..]);
        });
    }

    #[test]
    fn list_nested_sorted_without_temp_files() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let s = store(&dir);
            for key in [
                "segments/b",
                "segments/a",
                "segments/x/y/z",
                "other/c",
                "top",
            ] {
                s.put(key, Bytes::from_static(b"1")).await.expect("put");
            }
            // A write interrupted by a crash leaves its temp file behind.
            fs::write(dir.path().join("bucket/segments/.tmp-crashed"), b"partial")
                .expect("write temp");
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
            assert_eq!(
                s.list("segments/x").await.expect("list"),
                ["segments/x/y/z"]
            );
            assert_eq!(s.list("seg").await.expect("list").len(), 3);
            assert!(s.list("nothing/").await.expect("list").is_empty());
        });
    }

    #[test]
    fn put_leaves_no_temp_files() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let s = store(&dir);
            s.put("d/k", Bytes::from_static(b"v")).await.expect("put");
            let names: Vec<_> = fs::read_dir(dir.path().join("bucket/d"))
                .expect("read_dir")
                .map(|e| e.expect("entry").file_name())
                .collect();
            assert_eq!(names, ["k"]);
        });
    }

    #[test]
    fn invalid_keys_are_rejected() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let s = store(&dir);
            for key in [
                "",
                "/abs",
                "../escape",
                "a/../b",
                "a/./b",
                ".",
                "a//b",
                "a/",
                ".tmp-x",
                "a/.tmp-y",
                "nul\0",
            ] {
                let is_invalid = |r: Result<(), ObjectStoreError>| {
                    matches!(r, Err(ObjectStoreError::Io { source, .. })
                        if source.kind() == ErrorKind::InvalidInput)
                };
                assert!(is_invalid(s.put(key, Bytes::new()).await), "put {key:?}");
                assert!(is_invalid(s.get(key).await.map(drop)), "get {key:?}");
                assert!(
                    is_invalid(s.get_range(key, 0..0).await.map(drop)),
                    "get_range {key:?}"
                );
                assert!(is_invalid(s.delete(key).await), "delete {key:?}");
            }
            assert!(!dir.path().join("escape").exists());
        });
    }

    #[test]
    fn probe_fails_when_root_is_gone() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let s = store(&dir);
            fs::remove_dir_all(dir.path().join("bucket")).expect("remove");
            assert!(s.probe().await.is_err());
            fs::write(dir.path().join("bucket"), b"file").expect("write");
            assert!(s.probe().await.is_err());
        });
    }

    #[test]
    fn open_via_url() {
        run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("file://{}", dir.path().join("b").display());
            let s = super::super::open(&url).expect("open");
            s.put("k", Bytes::from_static(b"v")).await.expect("put");
            assert_eq!(s.get("k").await.expect("get"), &b"v"[..]);
            assert!(matches!(
                super::super::open("s3://x"),
                Err(ObjectStoreError::InvalidUrl(..))
            ));
        });
    }
}
