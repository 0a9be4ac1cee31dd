//! Kafka v2 record batch headers: validation on produce and offset rewriting on fetch.
//!
//! The payload (records, possibly compressed) is never decoded or rewritten on the data path.
//! The base offset lies outside the CRC, so the fetch path rewrites it in place.

use bytes::Bytes;

/// Bytes of a v2 batch header, up to and including the record count.
pub const HEADER_BYTES: usize = 61;
/// `batchLength` counts the bytes after the length field itself.
const LENGTH_FIELD_END: usize = 12;
const MAGIC_POS: usize = 16;
const CRC_POS: usize = 17;
const ATTRIBUTES_POS: usize = 21;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// What the produce and fetch paths need from a batch header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Total bytes of the batch, header included.
    pub total_bytes: usize,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Offsets the batch takes in its partition.
    pub fn offset_count(&self) -> u32 {
        (self.last_offset_delta as u32) + 1
    }

    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record set is empty")]
    Empty,
    #[error("record batch is truncated: {have} bytes of {need}")]
    Truncated { have: usize, need: usize },
    #[error("record batch length {0} is invalid")]
    BadLength(i32),
    #[error("unsupported record batch magic {0}; only v2 batches are accepted")]
    BadMagic(i8),
    #[error("record batch CRC mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    Crc { expected: u32, actual: u32 },
    #[error("record batch declares {record_count} records but a last offset delta of {last_offset_delta}")]
    BadCount {
        record_count: i32,
        last_offset_delta: i32,
    },
    #[error("unsupported compression codec {0}")]
    BadCompression(i16),
    #[error("a produce request must carry exactly one record batch per partition, found more")]
    MultipleBatches,
    #[error("record {index} of the batch is malformed: {reason}")]
    BadRecord { index: i32, reason: &'static str },
}

fn i16_at(b: &[u8], pos: usize) -> i16 {
    i16::from_be_bytes([b[pos], b[pos + 1]])
}
fn i32_at(b: &[u8], pos: usize) -> i32 {
    i32::from_be_bytes(b[pos..pos + 4].try_into().expect("4-byte slice"))
}
fn i64_at(b: &[u8], pos: usize) -> i64 {
    i64::from_be_bytes(b[pos..pos + 8].try_into().expect("8-byte slice"))
}

/// Reads the header of the batch starting at `bytes[0]` without checking its CRC.
pub fn read_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    if bytes.len() < HEADER_BYTES {
        return Err(BatchError::Truncated {
            have: bytes.len(),
            need: HEADER_BYTES,
        });
    }
    let batch_length = i32_at(bytes, 8);
    if batch_length < (HEADER_BYTES - LENGTH_FIELD_END) as i32 {
        return Err(BatchError::BadLength(batch_length));
    }
    let total_bytes = LENGTH_FIELD_END + batch_length as usize;
    if bytes.len() < total_bytes {
        return Err(BatchError::Truncated {
            have: bytes.len(),
            need: total_bytes,
        });
    }
    let magic = bytes[MAGIC_POS] as i8;
    if magic != 2 {
        return Err(BatchError::BadMagic(magic));
    }
    Ok(BatchHeader {
        total_bytes,
        attributes: i16_at(bytes, ATTRIBUTES_POS),
        last_offset_delta: i32_at(bytes, 23),
        base_timestamp_ms: i64_at(bytes, 27),
        max_timestamp_ms: i64_at(bytes, 35),
        producer_id: i64_at(bytes, 43),
        producer_epoch: i16_at(bytes, 51),
        base_sequence: i32_at(bytes, 53),
        record_count: i32_at(bytes, 57),
    })
}

/// Validates the single batch of a produce request's partition: framing, magic, CRC-32C,
/// record count and codec. The record set must hold exactly one batch, as Kafka requires from
/// Produce v3 on.
pub fn validate_produce_batch(records: &Bytes) -> Result<BatchHeader, BatchError> {
    if records.is_empty() {
        return Err(BatchError::Empty);
    }
    let header = read_header(records)?;
    if header.total_bytes != records.len() {
        return Err(BatchError::MultipleBatches);
    }
    let expected = u32::from_be_bytes(
        records[CRC_POS..CRC_POS + 4]
            .try_into()
            .expect("4-byte slice"),
    );
    let actual = crc32c::crc32c(&records[ATTRIBUTES_POS..header.total_bytes]);
    if expected != actual {
        return Err(BatchError::Crc { expected, actual });
    }
    if header.record_count <= 0
        || header.last_offset_delta < 0
        || header.last_offset_delta != header.record_count - 1
    {
        return Err(BatchError::BadCount {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    // 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    if header.compression() > 4 {
        return Err(BatchError::BadCompression(header.compression()));
    }
    // Uncompressed records are checked one by one, as Kafka does, so that no consumer is ever
    // handed a batch it cannot read. Compressed payloads are never opened on the data path.
    if header.compression() == 0 {
        let mut count = 0;
        for r in records_of(records, &header) {
            r?;
            count += 1;
        }
        if count != header.record_count {
            return Err(BatchError::BadRecord {
                index: count,
                reason: "fewer records than the batch declares",
            });
        }
    }
    Ok(header)
}

/// The fields of one record of an uncompressed batch that lookups need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    pub offset_delta: i32,
    pub timestamp_ms: i64,
}

/// Walks the records of an uncompressed batch (`batch` starts at the batch header), checking
/// each record's framing: lengths, key, value and headers all inside the record.
pub fn records_of<'a>(batch: &'a [u8], header: &BatchHeader) -> RecordIter<'a> {
    RecordIter {
        buf: &batch[HEADER_BYTES..header.total_bytes],
        pos: 0,
        index: 0,
        count: header.record_count,
        base_timestamp_ms: header.base_timestamp_ms,
    }
}

pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    index: i32,
    count: i32,
    base_timestamp_ms: i64,
}

/// Reads a zig-zag varint (at most 10 bytes) at `*pos`.
fn varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

impl RecordIter<'_> {
    fn record(&mut self, index: i32) -> Result<RecordInfo, &'static str> {
        let len = varint(self.buf, &mut self.pos).ok_or("bad length")?;
        if len < 0 || len as usize > self.buf.len() - self.pos {
            return Err("length past the end of the batch");
        }
        let rec = &self.buf[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        let mut p = 1; // attributes
        if rec.is_empty() {
            return Err("empty record");
        }
        let timestamp_delta = varint(rec, &mut p).ok_or("bad timestamp delta")?;
        let offset_delta = varint(rec, &mut p).ok_or("bad offset delta")?;
        if offset_delta != i64::from(index) {
            return Err("offset delta out of sequence");
        }
        fn field(rec: &[u8], p: &mut usize, nullable: bool) -> Result<(), &'static str> {
            let n = varint(rec, p).ok_or("bad field length")?;
            if n == -1 && nullable {
                return Ok(());
            }
            if n < 0 || n as usize > rec.len() - *p {
                return Err("field past the end of the record");
            }
            *p += n as usize;
            Ok(())
        }
        field(rec, &mut p, true)?; // key
        field(rec, &mut p, true)?; // value
        let headers = varint(rec, &mut p).ok_or("bad header count")?;
        if headers < 0 || headers as usize > rec.len() {
            return Err("bad header count");
        }
        for _ in 0..headers {
            field(rec, &mut p, false)?; // header key
            field(rec, &mut p, true)?; // header value
        }
        if p != rec.len() {
            return Err("trailing bytes in record");
        }
        Ok(RecordInfo {
            offset_delta: offset_delta as i32,
            timestamp_ms: self.base_timestamp_ms.wrapping_add(timestamp_delta),
        })
    }
}

impl Iterator for RecordIter<'_> {
    type Item = Result<RecordInfo, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return (self.pos < self.buf.len()).then(|| {
                self.pos = self.buf.len();
                Err(BatchError::BadRecord {
                    index: self.index,
                    reason: "bytes after the last record",
                })
            });
        }
        if self.pos >= self.buf.len() {
            return None;
        }
        let index = self.index;
        self.index += 1;
        Some(self.record(index).map_err(|reason| {
            self.index = self.count;
            self.pos = self.buf.len();
            BatchError::BadRecord { index, reason }
        }))
    }
}

/// Walks the batches of a committed chunk. Each item is the batch's byte range and header.
pub fn batches(chunk: &[u8]) -> BatchIter<'_> {
    BatchIter { chunk, pos: 0 }
}

pub struct BatchIter<'a> {
    chunk: &'a [u8],
    pos: usize,
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(std::ops::Range<usize>, BatchHeader), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.chunk.len() {
            return None;
        }
        match read_header(&self.chunk[self.pos..]) {
            Ok(h) => {
                let range = self.pos..self.pos + h.total_bytes;
                self.pos = range.end;
                Some(Ok((range, h)))
            }
            Err(e) => {
                self.pos = self.chunk.len();
                Some(Err(e))
            }
        }
    }
}

/// Writes `base_offset` into a batch's first 8 bytes. The field lies outside the CRC.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Builders of valid batches, for tests and benchmarks.
pub mod build {
    /// Builds an uncompressed v2 batch holding `count` records with the given values.
    pub fn uncompressed(count: i32, value: &[u8], timestamp_ms: i64) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..count {
            let mut rec = Vec::new();
            rec.push(0u8); // attributes
            put_varint(&mut rec, 0); // timestamp delta
            put_varint(&mut rec, i as i64); // offset delta
            put_varint(&mut rec, -1); // key: null
            put_varint(&mut rec, value.len() as i64);
            rec.extend_from_slice(value);
            put_varint(&mut rec, 0); // headers
            put_varint(&mut records, rec.len() as i64);
            records.extend(rec);
        }
        let mut b = Vec::new();
        b.extend(0i64.to_be_bytes());
        b.extend(0i32.to_be_bytes()); // length, patched below
        b.extend((-1i32).to_be_bytes()); // partition leader epoch
        b.push(2); // magic
        b.extend(0u32.to_be_bytes()); // crc, patched below
        b.extend(0i16.to_be_bytes());
        b.extend((count - 1).to_be_bytes());
        b.extend(timestamp_ms.to_be_bytes());
        b.extend(timestamp_ms.to_be_bytes());
        b.extend((-1i64).to_be_bytes());
        b.extend((-1i16).to_be_bytes());
        b.extend((-1i32).to_be_bytes());
        b.extend(count.to_be_bytes());
        b.extend(records);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }
}

#[cfg(test)]
pub mod tests {
    pub use super::build::uncompressed as batch;
    use super::*;

    #[test]
    fn accepts_a_valid_batch() {
        let b = Bytes::from(batch(3, b"abc", 1000));
        let h = validate_produce_batch(&b).unwrap();
        assert_eq!(h.record_count, 3);
        assert_eq!(h.offset_count(), 3);
        assert_eq!(h.max_timestamp_ms, 1000);
        assert_eq!(h.total_bytes, b.len());
    }

    #[test]
    fn rejects_flipped_bytes_after_the_crc() {
        let good = batch(2, b"hello", 5);
        for pos in ATTRIBUTES_POS..good.len() {
            let mut bad = good.clone();
            bad[pos] ^= 0x40;
            assert!(
                validate_produce_batch(&Bytes::from(bad)).is_err(),
                "flip at {pos} accepted"
            );
        }
    }

    #[test]
    fn rejects_truncation_and_trailing_batches() {
        let good = batch(2, b"hello", 5);
        for len in 0..good.len() {
            assert!(validate_produce_batch(&Bytes::copy_from_slice(&good[..len])).is_err());
        }
        let mut two = good.clone();
        two.extend(&good);
        assert_eq!(
            validate_produce_batch(&Bytes::from(two)),
            Err(BatchError::MultipleBatches)
        );
    }

    #[test]
    fn rejects_old_magic_and_bad_lengths() {
        let mut b = batch(1, b"x", 0);
        b[MAGIC_POS] = 1;
        assert_eq!(
            validate_produce_batch(&Bytes::from(b)),
            Err(BatchError::BadMagic(1))
        );
        let mut b = batch(1, b"x", 0);
        b[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            validate_produce_batch(&Bytes::from(b)),
            Err(BatchError::BadLength(-5))
        );
    }

    #[test]
    fn rejects_records_that_do_not_parse() {
        let mut b = batch(2, b"hello", 5);
        // Corrupt the first record's length, then fix the CRC so only the records are wrong.
        b[HEADER_BYTES] = 0x7f;
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_produce_batch(&Bytes::from(b)),
            Err(BatchError::BadRecord { .. })
        ));
    }

    #[test]
    fn reads_record_timestamps() {
        let b = batch(3, b"v", 1000);
        let h = read_header(&b).unwrap();
        let recs: Vec<_> = records_of(&b, &h).map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2].offset_delta, 2);
        assert_eq!(recs[2].timestamp_ms, 1000);
    }

    #[test]
    fn walks_and_rewrites_a_chunk() {
        let mut chunk = batch(2, b"a", 1);
        chunk.extend(batch(3, b"b", 2));
        let found: Vec<_> = batches(&chunk).map(|r| r.unwrap()).collect();
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].1.offset_count(), 3);
        let r = found[1].0.clone();
        set_base_offset(&mut chunk[r.clone()], 42);
        assert_eq!(i64_at(&chunk[r], 0), 42);
        // The CRC still holds after the rewrite.
        let b = Bytes::copy_from_slice(&chunk[found[1].0.clone()]);
        assert!(validate_produce_batch(&b).is_ok());
    }
}
