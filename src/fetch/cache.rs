//! A shard's byte-bounded LRU cache of chunks, keyed by object key and byte position.
//!
//! Filled by the produce path with what the shard just uploaded, and by fetches after a
//! verified read. Owned by one shard; no locks.

use std::cell::RefCell;

use bytes::Bytes;
use lru::LruCache;

pub struct ChunkCache {
    inner: RefCell<Inner>,
}

struct Inner {
    lru: LruCache<(String, u64), Bytes>,
    bytes: usize,
    bytes_max: usize,
    hits: u64,
    misses: u64,
}

impl ChunkCache {
    pub fn new(bytes_max: usize) -> ChunkCache {
        ChunkCache {
            inner: RefCell::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
                bytes_max,
                hits: 0,
                misses: 0,
            }),
        }
    }

    pub fn get(&self, key: &str, byte_pos: u64) -> Option<Bytes> {
        let mut inner = self.inner.borrow_mut();
        // The tuple key needs an owned String; a miss costs one allocation, a hit too, which is
        // small next to the copy a fetch makes anyway.
        let found = inner.lru.get(&(key.to_string(), byte_pos)).cloned();
        if found.is_some() {
            inner.hits += 1;
        } else {
            inner.misses += 1;
        }
        found
    }

    /// Caches a chunk, evicting the least recently used ones to stay within the byte bound.
    /// A chunk larger than the whole cache is not kept.
    pub fn insert(&self, key: &str, byte_pos: u64, chunk: Bytes) {
        let mut inner = self.inner.borrow_mut();
        if chunk.len() > inner.bytes_max {
            return;
        }
        inner.bytes += chunk.len();
        if let Some(old) = inner.lru.put((key.to_string(), byte_pos), chunk) {
            inner.bytes -= old.len();
        }
        while inner.bytes > inner.bytes_max {
            match inner.lru.pop_lru() {
                Some((_, evicted)) => inner.bytes -= evicted.len(),
                None => break,
            }
        }
    }

    /// (bytes held, hits, misses).
    pub fn stats(&self) -> (usize, u64, u64) {
        let inner = self.inner.borrow();
        (inner.bytes, inner.hits, inner.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_to_stay_bounded() {
        let c = ChunkCache::new(10);
        c.insert("a", 0, Bytes::from(vec![0; 4]));
        c.insert("b", 0, Bytes::from(vec![0; 4]));
        assert!(c.get("a", 0).is_some());
        c.insert("c", 0, Bytes::from(vec![0; 4]));
        assert!(c.get("b", 0).is_none());
        assert!(c.get("a", 0).is_some());
        assert!(c.get("c", 0).is_some());
        assert_eq!(c.stats().0, 8);
        c.insert("huge", 0, Bytes::from(vec![0; 11]));
        assert!(c.get("huge", 0).is_none());
        c.insert("a", 0, Bytes::from(vec![0; 2]));
        assert_eq!(c.stats().0, 6);
    }
}
