//! A shard's byte-bounded LRU cache of chunks, keyed by object key and byte position.
//!
//! Filled with what any shard just uploaded (the uploading shard offers each segment's chunks
//! to the others over bounded channels, so a consumer tailing from another core reads from
//! memory, not with a GET), and by fetches after a verified read. Owned by one shard; no
//! locks. The chunks themselves are immutable `Bytes` slices of the uploaded segment, so the
//! shards share the memory without copying it.

use std::cell::RefCell;

use bytes::Bytes;
use lru::LruCache;

pub struct ChunkCache {
    inner: RefCell<Inner>,
    /// The other shards' fill queues.
    peers: Vec<flume::Sender<Fill>>,
}

/// The chunks of a segment another shard just uploaded: (byte position, bytes) each.
pub struct Fill {
    pub key: String,
    pub chunks: Vec<(u64, Bytes)>,
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
        ChunkCache::with_peers(bytes_max, Vec::new())
    }

    /// A cache that offers what its shard uploads to the shards behind `peers`.
    pub fn with_peers(bytes_max: usize, peers: Vec<flume::Sender<Fill>>) -> ChunkCache {
        ChunkCache {
            peers,
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

    /// Caches the chunks of a segment this shard just uploaded, and offers them to every other
    /// shard. Called once the PUT succeeded and before the commit, so that the commit notice
    /// that wakes a tailing fetch on any shard almost always finds the chunks there. An offer a
    /// busy shard cannot take is dropped: its fetches then read from the store, as before.
    pub fn insert_uploaded(&self, key: &str, chunks: Vec<(u64, Bytes)>) {
        for peer in &self.peers {
            let fill = Fill {
                key: key.to_string(),
                chunks: chunks.clone(),
            };
            if peer.try_send(fill).is_err() {
                crate::metrics::record(|m| m.cache_fills_dropped += 1);
            }
        }
        for (byte_pos, chunk) in chunks {
            self.insert(key, byte_pos, chunk);
        }
    }

    /// Takes another shard's offer.
    pub fn apply(&self, fill: Fill) {
        for (byte_pos, chunk) in fill.chunks {
            self.insert(&fill.key, byte_pos, chunk);
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
    fn uploads_are_offered_to_the_other_shards() {
        let (tx, rx) = flume::bounded(1);
        let uploader = ChunkCache::with_peers(100, vec![tx]);
        let other = ChunkCache::new(100);
        let chunks = vec![
            (0, Bytes::from_static(b"abc")),
            (3, Bytes::from_static(b"de")),
        ];
        uploader.insert_uploaded("seg-1", chunks.clone());
        assert_eq!(uploader.get("seg-1", 3).as_deref(), Some(&b"de"[..]));
        other.apply(rx.try_recv().expect("offered"));
        assert_eq!(other.get("seg-1", 0).as_deref(), Some(&b"abc"[..]));
        // A full queue drops the offer; the uploader keeps its own copy.
        uploader.insert_uploaded("seg-2", chunks.clone());
        uploader.insert_uploaded("seg-3", chunks);
        assert_eq!(rx.len(), 1);
        assert!(uploader.get("seg-3", 0).is_some());
    }

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
