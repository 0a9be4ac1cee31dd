//! The segment object format: one immutable object per flush, holding the record batches of many
//! partitions.
//!
//! This module only turns bytes into values and back (no I/O), so it is usable from any shard,
//! tool or test.
//!
//! # Layout, format version 1
//!
//! All integers are big-endian. Offsets are from the start of the object.
//!
//! ```text
//! header (28 bytes)
//!   magic          8  b"WEFTSEG\0"
//!   version        u16  1
//!   flags          u16  0 (no flags are defined; readers reject any set bit)
//!   created_ms     i64  wall-clock time the segment was sealed
//!   chunk_count    u32  number of chunks, equal to index entries
//!   header_crc32c  u32  CRC-32C of the 24 header bytes above
//! data
//!   chunk*         each chunk is one partition's Kafka v2 record batches, concatenated exactly
//!                  as the producer sent them, so a fetch can return a chunk without re-encoding
//! index (chunk_count entries of 52 bytes, in the order of the chunks)
//!   topic_id       16   topic UUID
//!   partition      i32
//!   byte_pos       u64  where the chunk starts
//!   byte_len       u32  chunk length
//!   crc32c         u32  CRC-32C of the chunk bytes
//!   batch_count    u32  record batches in the chunk
//!   offset_count   u32  offsets the chunk's batches span
//!   max_timestamp_ms i64  largest record timestamp in the chunk
//! footer (28 bytes, always the last bytes of the object)
//!   index_pos      u64  where the index starts
//!   index_len      u32  index length, chunk_count * 52
//!   index_crc32c   u32  CRC-32C of the index bytes
//!   magic          8    b"WEFTEND\0"
//!   footer_crc32c  u32  CRC-32C of the 24 footer bytes above
//! ```
//!
//! Chunks tile the data region exactly: the first starts right after the header, each next one
//! where the previous ended, and the last ends at `index_pos`, which is followed directly by the
//! footer. So every byte of the object is covered by a magic or a checksum: [`decode`] detects
//! every single-byte error, and all but a 2^-32 share of larger ones. The header and footer have fixed sizes so that a reader can fetch
//! either with one ranged read; the footer sits at the end because the index is only known once
//! the data has been written.
//!
//! A later format changes `version`; readers reject versions they do not know rather than guess.

mod crc;

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use uuid::{ContextV7, Timestamp, Uuid};

pub const MAGIC: &[u8; 8] = b"WEFTSEG\0";
pub const FOOTER_MAGIC: &[u8; 8] = b"WEFTEND\0";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 28;
pub const INDEX_ENTRY_LEN: usize = 52;
pub const FOOTER_LEN: usize = 28;

/// One partition's batches to be written into a segment.
#[derive(Clone, Debug)]
pub struct ChunkInput {
    pub topic_id: Uuid,
    pub partition: i32,
    /// Raw Kafka v2 record batches, written untouched in this order. Their CRCs must have
    /// been checked: the chunk's checksum is derived from them (shorter blobs than a batch
    /// header are checksummed directly).
    pub batches: Vec<Bytes>,
    pub offset_count: u32,
    pub max_timestamp_ms: i64,
}

/// Where a chunk lives in a segment object and how to check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    pub topic_id: Uuid,
    pub partition: i32,
    pub byte_pos: u64,
    pub byte_len: u32,
    pub crc32c: u32,
    pub batch_count: u32,
    pub offset_count: u32,
    pub max_timestamp_ms: i64,
}

impl ChunkEntry {
    /// The chunk's bytes in the object, for a ranged read.
    pub fn byte_range(&self) -> Range<u64> {
        // Saturating so that a hand-built entry cannot panic; a decoded one never overflows.
        self.byte_pos..self.byte_pos.saturating_add(u64::from(self.byte_len))
    }
}

#[derive(Clone, Debug)]
pub struct EncodedSegment {
    pub bytes: Bytes,
    /// CRC-32C of `bytes`.
    pub crc32c: u32,
    /// The index, in chunk order, for the metadata store.
    pub chunks: Vec<ChunkEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedSegment {
    pub created_ms: i64,
    pub chunks: Vec<ChunkEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("segment is truncated: needs {needed} bytes, has {available}")]
    Truncated { needed: u64, available: u64 },
    #[error("segment does not start with the segment magic")]
    BadMagic,
    #[error("segment format version {0} is not supported")]
    UnsupportedVersion(u16),
    #[error("segment header has unknown flags {0:#06x}")]
    UnsupportedFlags(u16),
    #[error("segment header checksum mismatch")]
    HeaderChecksum,
    #[error("segment does not end with the footer magic")]
    BadFooterMagic,
    #[error("segment footer checksum mismatch")]
    FooterChecksum,
    #[error("segment index checksum mismatch")]
    IndexChecksum,
    #[error("segment index is {index_len} bytes, which does not hold {chunk_count} entries")]
    IndexLength { index_len: u32, chunk_count: u32 },
    #[error("segment index or chunk lies outside its region of the object")]
    IndexOutOfBounds,
    #[error(
        "chunk {chunk} starts at {byte_pos}, expected {expected}: chunks overlap or leave a gap"
    )]
    ChunkLayout {
        chunk: usize,
        byte_pos: u64,
        expected: u64,
    },
    #[error("checksum mismatch in chunk of partition {partition} of topic {topic_id}: expected {expected:#010x}, got {actual:#010x}")]
    ChunkChecksum {
        topic_id: Uuid,
        partition: i32,
        expected: u32,
        actual: u32,
    },
    #[error("chunk checksum mismatch: expected {expected:#010x}, got {actual:#010x}")]
    RangeChecksum { expected: u32, actual: u32 },
}

/// Builds a segment object from `chunks`, in the given order.
///
/// # Panics
///
/// If a chunk or the index exceeds 4 GiB, which the segment size limit rules out long before.
pub fn encode(created_ms: i64, chunks: &[ChunkInput]) -> EncodedSegment {
    let chunk_lens: Vec<u32> = chunks
        .iter()
        .map(|c| {
            let len: usize = c.batches.iter().map(Bytes::len).sum();
            u32::try_from(len)
                .expect("a chunk is bounded by the segment size target, far below 4 GiB")
        })
        .collect();
    let data_len: usize = chunk_lens.iter().map(|&l| l as usize).sum();
    let chunk_count =
        u32::try_from(chunks.len()).expect("a segment holds far fewer than 2^32 chunks");
    let index_len = u32::try_from(chunks.len() * INDEX_ENTRY_LEN)
        .expect("a segment holds far fewer than 2^32 / 52 chunks");
    let total = HEADER_LEN + data_len + index_len as usize + FOOTER_LEN;

    // Sized exactly, so the object is built without reallocating.
    let mut out = BytesMut::with_capacity(total);
    out.put_slice(MAGIC);
    out.put_u16(FORMAT_VERSION);
    out.put_u16(0);
    out.put_i64(created_ms);
    out.put_u32(chunk_count);
    out.put_u32(crc32c::crc32c(&out[..HEADER_LEN - 4]));

    let mut entries = Vec::with_capacity(chunks.len());
    for (chunk, &byte_len) in chunks.iter().zip(&chunk_lens) {
        let byte_pos = out.len() as u64;
        let mut crc = 0;
        for batch in &chunk.batches {
            crc = crc::append_batch(crc, batch);
            out.put_slice(batch);
        }
        entries.push(ChunkEntry {
            topic_id: chunk.topic_id,
            partition: chunk.partition,
            byte_pos,
            byte_len,
            crc32c: crc,
            batch_count: u32::try_from(chunk.batches.len())
                .expect("a chunk of at most 4 GiB holds fewer than 2^32 batches"),
            offset_count: chunk.offset_count,
            max_timestamp_ms: chunk.max_timestamp_ms,
        });
    }

    let index_pos = out.len();
    for e in &entries {
        out.put_slice(e.topic_id.as_bytes());
        out.put_i32(e.partition);
        out.put_u64(e.byte_pos);
        out.put_u32(e.byte_len);
        out.put_u32(e.crc32c);
        out.put_u32(e.batch_count);
        out.put_u32(e.offset_count);
        out.put_i64(e.max_timestamp_ms);
    }
    let index_crc = crc32c::crc32c(&out[index_pos..]);

    let footer_pos = out.len();
    out.put_u64(index_pos as u64);
    out.put_u32(index_len);
    out.put_u32(index_crc);
    out.put_slice(FOOTER_MAGIC);
    out.put_u32(crc32c::crc32c(&out[footer_pos..]));
    debug_assert_eq!(out.len(), total);

    // The whole object's CRC-32C, for the store's own check on arrival, from the parts'
    // without another pass over the data.
    let mut crc = crc32c::crc32c(&out[..HEADER_LEN]);
    for e in &entries {
        crc = crc::combine(crc, e.crc32c, e.byte_len as usize);
    }
    crc = crc::combine(crc, index_crc, index_len as usize);
    crc = crc::combine(crc, crc32c::crc32c(&out[footer_pos..]), FOOTER_LEN);
    debug_assert_eq!(crc, crc32c::crc32c(&out));

    EncodedSegment {
        bytes: out.freeze(),
        chunks: entries,
        crc32c: crc,
    }
}

/// Reads fields in order from a byte slice; running off the end is an error, never a panic.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SegmentError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(SegmentError::Truncated {
                needed: N as u64,
                available: self.buf.len() as u64,
            })?;
        self.buf = rest;
        Ok(*head)
    }

    fn u16(&mut self) -> Result<u16, SegmentError> {
        self.take().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, SegmentError> {
        self.take().map(u32::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, SegmentError> {
        self.take().map(i32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, SegmentError> {
        self.take().map(u64::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64, SegmentError> {
        self.take().map(i64::from_be_bytes)
    }
}

/// Parses and fully verifies a segment object: structure, every checksum, and the chunk layout.
pub fn decode(object: &[u8]) -> Result<DecodedSegment, SegmentError> {
    let len = object.len();
    if len < HEADER_LEN + FOOTER_LEN {
        return Err(SegmentError::Truncated {
            needed: (HEADER_LEN + FOOTER_LEN) as u64,
            available: len as u64,
        });
    }
    let (header, _) = object.split_at(HEADER_LEN);
    let footer_pos = len - FOOTER_LEN;
    let (before_footer, footer) = object.split_at(footer_pos);

    let mut h = Reader { buf: header };
    if &h.take::<8>()? != MAGIC {
        return Err(SegmentError::BadMagic);
    }
    // Checked before the header CRC: another version may lay out (and check) its header
    // differently, and "unsupported" is the useful answer for it.
    let version = h.u16()?;
    if version != FORMAT_VERSION {
        return Err(SegmentError::UnsupportedVersion(version));
    }
    let flags = h.u16()?;
    let created_ms = h.i64()?;
    let chunk_count = h.u32()?;
    if h.u32()? != crc32c::crc32c(&header[..HEADER_LEN - 4]) {
        return Err(SegmentError::HeaderChecksum);
    }
    if flags != 0 {
        return Err(SegmentError::UnsupportedFlags(flags));
    }

    let mut f = Reader { buf: footer };
    let index_pos = f.u64()?;
    let index_len = f.u32()?;
    let index_crc = f.u32()?;
    // A missing footer magic most likely means a cut-off object, so it is reported before the
    // checksum that would fail along with it.
    if &f.take::<8>()? != FOOTER_MAGIC {
        return Err(SegmentError::BadFooterMagic);
    }
    if f.u32()? != crc32c::crc32c(&footer[..FOOTER_LEN - 4]) {
        return Err(SegmentError::FooterChecksum);
    }

    let index_end = index_pos
        .checked_add(u64::from(index_len))
        .ok_or(SegmentError::IndexOutOfBounds)?;
    if index_pos < HEADER_LEN as u64 || index_end != footer_pos as u64 {
        return Err(SegmentError::IndexOutOfBounds);
    }
    // Both bounds now lie within `object`, whose length is a `usize`.
    let index_start = usize::try_from(index_pos).map_err(|_| SegmentError::IndexOutOfBounds)?;
    let index = before_footer
        .get(index_start..)
        .ok_or(SegmentError::IndexOutOfBounds)?;
    if u64::from(index_len) != u64::from(chunk_count) * INDEX_ENTRY_LEN as u64 {
        return Err(SegmentError::IndexLength {
            index_len,
            chunk_count,
        });
    }
    if crc32c::crc32c(index) != index_crc {
        return Err(SegmentError::IndexChecksum);
    }

    // The index length check bounds `chunk_count` by the object size, so this cannot be a huge
    // allocation driven by a corrupt count.
    let mut chunks = Vec::with_capacity(chunk_count as usize);
    let mut r = Reader { buf: index };
    let mut expected_pos = HEADER_LEN as u64;
    for chunk in 0..chunk_count as usize {
        let entry = ChunkEntry {
            topic_id: Uuid::from_bytes(r.take()?),
            partition: r.i32()?,
            byte_pos: r.u64()?,
            byte_len: r.u32()?,
            crc32c: r.u32()?,
            batch_count: r.u32()?,
            offset_count: r.u32()?,
            max_timestamp_ms: r.i64()?,
        };
        if entry.byte_pos != expected_pos {
            return Err(SegmentError::ChunkLayout {
                chunk,
                byte_pos: entry.byte_pos,
                expected: expected_pos,
            });
        }
        let end = entry
            .byte_pos
            .checked_add(u64::from(entry.byte_len))
            .filter(|&end| end <= index_pos)
            .ok_or(SegmentError::IndexOutOfBounds)?;
        expected_pos = end;
        chunks.push(entry);
    }
    if expected_pos != index_pos {
        return Err(SegmentError::ChunkLayout {
            chunk: chunks.len(),
            byte_pos: index_pos,
            expected: expected_pos,
        });
    }

    // Checksums last: the layout checks above are cheap and prove every range is in bounds.
    for entry in &chunks {
        let start = usize::try_from(entry.byte_pos).map_err(|_| SegmentError::IndexOutOfBounds)?;
        let end = entry
            .byte_pos
            .checked_add(u64::from(entry.byte_len))
            .and_then(|end| usize::try_from(end).ok())
            .ok_or(SegmentError::IndexOutOfBounds)?;
        let bytes = object
            .get(start..end)
            .ok_or(SegmentError::IndexOutOfBounds)?;
        let actual = crc32c::crc32c(bytes);
        if actual != entry.crc32c {
            return Err(SegmentError::ChunkChecksum {
                topic_id: entry.topic_id,
                partition: entry.partition,
                expected: entry.crc32c,
                actual,
            });
        }
    }

    Ok(DecodedSegment { created_ms, chunks })
}

/// Checks one chunk fetched with a ranged read against the CRC recorded in its index entry.
pub fn verify_chunk(chunk: &[u8], expected_crc32c: u32) -> Result<(), SegmentError> {
    let actual = crc32c::crc32c(chunk);
    if actual == expected_crc32c {
        Ok(())
    } else {
        Err(SegmentError::RangeChecksum {
            expected: expected_crc32c,
            actual,
        })
    }
}

thread_local! {
    // One per shard thread: keys from a shard are strictly increasing even when flushes share a
    // millisecond or the clock steps back. The shard number in the key separates shards.
    static KEY_CONTEXT: ContextV7 = const { ContextV7::new() };
}

/// A fresh object key for a segment sealed at `created_ms` by `shard`.
///
/// The UUID v7 leads with the timestamp, so keys sort by creation time; its counter and random
/// bits make every key new, so an object is never overwritten, not even after a restart.
pub fn object_key(shard: usize, created_ms: i64) -> String {
    let ms = u64::try_from(created_ms).unwrap_or(0);
    let nanos = u32::try_from(ms % 1000).expect("below 1000") * 1_000_000;
    let id =
        KEY_CONTEXT.with(|context| Uuid::new_v7(Timestamp::from_unix(context, ms / 1000, nanos)));
    format!("segments/{id}-s{shard}.seg")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift, so failures reproduce without a random-number dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    fn topic(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn sample_chunks() -> Vec<ChunkInput> {
        vec![
            ChunkInput {
                topic_id: topic(1),
                partition: 0,
                batches: vec![
                    Bytes::from_static(b"first batch of p0"),
                    Bytes::from_static(b"second"),
                ],
                offset_count: 7,
                max_timestamp_ms: 1_700_000_000_123,
            },
            ChunkInput {
                topic_id: topic(1),
                partition: 3,
                batches: vec![Bytes::from_static(b"p3")],
                offset_count: 1,
                max_timestamp_ms: -1,
            },
            ChunkInput {
                topic_id: topic(2),
                partition: 0,
                batches: vec![Bytes::from(
                    crate::protocol::record_batch::build::uncompressed(3, &[0xAB; 80], 0),
                )],
                offset_count: 300,
                max_timestamp_ms: i64::MAX,
            },
        ]
    }

    fn small_segment() -> Bytes {
        encode(
            42,
            &[
                ChunkInput {
                    topic_id: topic(9),
                    partition: 1,
                    batches: vec![Bytes::from_static(b"abc"), Bytes::from_static(b"de")],
                    offset_count: 2,
                    max_timestamp_ms: 5,
                },
                ChunkInput {
                    topic_id: topic(8),
                    partition: 2,
                    batches: vec![Bytes::from_static(b"xyz")],
                    offset_count: 1,
                    max_timestamp_ms: 6,
                },
            ],
        )
        .bytes
    }

    /// A footer with valid magic and CRC around arbitrary fields, to reach the index checks.
    fn footer(index_pos: u64, index_len: u32, index_crc: u32) -> Vec<u8> {
        let mut f = Vec::with_capacity(FOOTER_LEN);
        f.extend_from_slice(&index_pos.to_be_bytes());
        f.extend_from_slice(&index_len.to_be_bytes());
        f.extend_from_slice(&index_crc.to_be_bytes());
        f.extend_from_slice(FOOTER_MAGIC);
        let crc = crc32c::crc32c(&f);
        f.extend_from_slice(&crc.to_be_bytes());
        f
    }

    #[test]
    fn round_trip() {
        let inputs = sample_chunks();
        let encoded = encode(1_700_000_000_000, &inputs);
        let decoded = decode(&encoded.bytes).expect("decode");
        assert_eq!(decoded.created_ms, 1_700_000_000_000);
        assert_eq!(decoded.chunks, encoded.chunks);
        assert_eq!(decoded.chunks.len(), 3);
        for (input, entry) in inputs.iter().zip(&decoded.chunks) {
            let expected: Vec<u8> = input.batches.concat();
            let start = usize::try_from(entry.byte_range().start).expect("fits");
            let end = usize::try_from(entry.byte_range().end).expect("fits");
            let chunk = &encoded.bytes[start..end];
            assert_eq!(chunk, &expected[..]);
            verify_chunk(chunk, entry.crc32c).expect("chunk crc");
            assert_eq!(entry.topic_id, input.topic_id);
            assert_eq!(entry.partition, input.partition);
            assert_eq!(entry.batch_count as usize, input.batches.len());
            assert_eq!(entry.offset_count, input.offset_count);
            assert_eq!(entry.max_timestamp_ms, input.max_timestamp_ms);
        }
        assert_eq!(&encoded.bytes[..8], MAGIC);
        assert_eq!(
            &encoded.bytes[encoded.bytes.len() - 12..][..8],
            FOOTER_MAGIC
        );
    }

    #[test]
    fn encode_allocates_exactly() {
        let inputs = sample_chunks();
        let data: usize = inputs.iter().flat_map(|c| &c.batches).map(Bytes::len).sum();
        let encoded = encode(0, &inputs);
        assert_eq!(
            encoded.bytes.len(),
            HEADER_LEN + data + inputs.len() * INDEX_ENTRY_LEN + FOOTER_LEN
        );
    }

    #[test]
    fn empty_segment_and_empty_chunk_round_trip() {
        let empty = encode(-5, &[]);
        assert_eq!(empty.bytes.len(), HEADER_LEN + FOOTER_LEN);
        let decoded = decode(&empty.bytes).expect("decode");
        assert_eq!(decoded.created_ms, -5);
        assert!(decoded.chunks.is_empty());

        let with_empty_chunk = encode(
            1,
            &[ChunkInput {
                topic_id: topic(3),
                partition: 0,
                batches: vec![],
                offset_count: 0,
                max_timestamp_ms: 0,
            }],
        );
        let decoded = decode(&with_empty_chunk.bytes).expect("decode");
        assert_eq!(decoded.chunks[0].byte_len, 0);
    }

    #[test]
    fn every_byte_flip_is_detected() {
        let bytes = small_segment();
        decode(&bytes).expect("intact segment decodes");
        for pos in 0..bytes.len() {
            for mask in [0x01u8, 0x80, 0xFF] {
                let mut corrupt = bytes.to_vec();
                corrupt[pos] ^= mask;
                assert!(
                    decode(&corrupt).is_err(),
                    "flip {mask:#04x} at byte {pos} went undetected"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let bytes = small_segment();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
            assert!(
                decode(&bytes[bytes.len() - len..]).is_err(),
                "head cut to {len}"
            );
        }
        let mut extended = bytes.to_vec();
        extended.push(0);
        assert!(decode(&extended).is_err());
    }

    #[test]
    fn specific_errors() {
        let bytes = small_segment();
        let mut v = bytes.to_vec();
        v[8..10].copy_from_slice(&2u16.to_be_bytes());
        assert!(matches!(
            decode(&v),
            Err(SegmentError::UnsupportedVersion(2))
        ));

        let mut v = bytes.to_vec();
        v[0] = b'X';
        assert!(matches!(decode(&v), Err(SegmentError::BadMagic)));

        let mut v = bytes.to_vec();
        v[HEADER_LEN] ^= 1;
        assert!(matches!(
            decode(&v),
            Err(SegmentError::ChunkChecksum { partition: 1, .. })
        ));

        let mut v = bytes.to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        assert!(matches!(decode(&v), Err(SegmentError::FooterChecksum)));

        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(SegmentError::BadFooterMagic)
        ));
        assert!(matches!(decode(&[]), Err(SegmentError::Truncated { .. })));
    }

    #[test]
    fn index_outside_the_object_is_rejected() {
        let header = &small_segment()[..HEADER_LEN];
        for (pos, len) in [
            (u64::MAX, 52),
            (u64::MAX - 10, u32::MAX),
            (0, 0),
            (HEADER_LEN as u64 + 1000, 0),
            (HEADER_LEN as u64, 52),
        ] {
            let mut v = header.to_vec();
            v.extend_from_slice(&footer(pos, len, 0));
            assert!(
                matches!(decode(&v), Err(SegmentError::IndexOutOfBounds)),
                "{pos} {len}"
            );
        }
    }

    #[test]
    fn chunk_entries_outside_or_overlapping_are_rejected() {
        // Header claiming one chunk, 4 data bytes, then a hand-made index entry.
        let mut header = Vec::new();
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&1u16.to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        header.extend_from_slice(&0i64.to_be_bytes());
        header.extend_from_slice(&1u32.to_be_bytes());
        let crc = crc32c::crc32c(&header);
        header.extend_from_slice(&crc.to_be_bytes());
        let data = b"data";
        let index_pos = (HEADER_LEN + data.len()) as u64;
        // (byte_pos, byte_len, whether the failure is a layout error rather than out of bounds)
        let cases = [
            (HEADER_LEN as u64, 5, false),
            (HEADER_LEN as u64, u32::MAX, false),
            (u64::MAX, 4, true),
            (HEADER_LEN as u64 - 1, 4, true),
            (HEADER_LEN as u64, 3, true),
        ];
        for (byte_pos, byte_len, layout) in cases {
            let mut entry = Vec::new();
            entry.extend_from_slice(topic(1).as_bytes());
            entry.extend_from_slice(&0i32.to_be_bytes());
            entry.extend_from_slice(&byte_pos.to_be_bytes());
            entry.extend_from_slice(&byte_len.to_be_bytes());
            entry.extend_from_slice(&crc32c::crc32c(data).to_be_bytes());
            entry.extend_from_slice(&[0; 16]);
            let mut v = header.clone();
            v.extend_from_slice(data);
            v.extend_from_slice(&entry);
            v.extend_from_slice(&footer(index_pos, 52, crc32c::crc32c(&entry)));
            let err = decode(&v).expect_err("bad entry accepted");
            let matched = if layout {
                matches!(err, SegmentError::ChunkLayout { .. })
            } else {
                matches!(err, SegmentError::IndexOutOfBounds)
            };
            assert!(matched, "{byte_pos} {byte_len}: {err}");
        }
    }

    #[test]
    fn verify_chunk_detects_a_flip() {
        let chunk = b"some record batch bytes";
        let crc = crc32c::crc32c(chunk);
        verify_chunk(chunk, crc).expect("intact");
        for pos in 0..chunk.len() {
            let mut corrupt = chunk.to_vec();
            corrupt[pos] ^= 0x10;
            assert!(matches!(
                verify_chunk(&corrupt, crc),
                Err(SegmentError::RangeChecksum { .. })
            ));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let valid = encode(7, &sample_chunks()).bytes;
        for _ in 0..20_000 {
            let n = rng.below(400);
            let mut garbage = rng.bytes(n);
            // Give some inputs valid framing so the deeper checks run on nonsense too.
            if n >= HEADER_LEN && rng.below(2) == 0 {
                garbage[..HEADER_LEN].copy_from_slice(&valid[..HEADER_LEN]);
            }
            let index_len = 3 * INDEX_ENTRY_LEN;
            if n >= HEADER_LEN + index_len + FOOTER_LEN && rng.below(3) == 0 {
                // A checksummed index of random entries, matching the header's chunk count.
                let index_pos = n - FOOTER_LEN - index_len;
                let crc = crc32c::crc32c(&garbage[index_pos..n - FOOTER_LEN]);
                let f = footer(index_pos as u64, index_len as u32, crc);
                garbage[n - FOOTER_LEN..].copy_from_slice(&f);
            } else if n >= HEADER_LEN + FOOTER_LEN && rng.below(2) == 0 {
                let pos = rng.next() % (n as u64 + 8);
                let len = (rng.next() % 200) as u32;
                let f = footer(pos, len, rng.next() as u32);
                garbage[n - FOOTER_LEN..].copy_from_slice(&f);
            }
            let _ = decode(&garbage);
        }
        for _ in 0..5_000 {
            let mut corrupt = valid.to_vec();
            for _ in 0..1 + rng.below(4) {
                let pos = rng.below(corrupt.len());
                corrupt[pos] = rng.next() as u8;
            }
            let cut = rng.below(corrupt.len() + 1);
            let _ = decode(&corrupt[..cut]);
            let _ = decode(&corrupt);
        }
    }

    #[test]
    fn object_keys_are_unique_and_time_ordered() {
        let a = object_key(0, 1_000);
        let b = object_key(0, 1_000);
        let c = object_key(0, 2_000);
        let d = object_key(1, 500);
        assert!(a.starts_with("segments/") && a.ends_with("-s0.seg"), "{a}");
        assert!(d.ends_with("-s1.seg"), "{d}");
        assert_ne!(a, b);
        assert!(a < b && b < c, "{a} {b} {c}");
        let id = a
            .strip_prefix("segments/")
            .and_then(|k| k.strip_suffix("-s0.seg"))
            .expect("key shape");
        let uuid = Uuid::parse_str(id).expect("uuid");
        assert_eq!(uuid.get_version_num(), 7);
        let (secs, nanos) = uuid.get_timestamp().expect("v7 timestamp").to_unix();
        assert_eq!(secs * 1000 + u64::from(nanos / 1_000_000), 1_000);
        assert!(object_key(0, -1).starts_with("segments/"));
    }
}
