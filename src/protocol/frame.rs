//! Kafka request framing: a 4-byte big-endian size followed by that many bytes.
//!
//! Sans-IO: the connection task appends bytes read from the socket to a [`FrameReader`] and takes
//! whole frames out. The size is checked against the limit before any buffer grows for it.

use bytes::{Buf, Bytes, BytesMut};

/// Smallest valid request: api key, api version, correlation id and client id length.
const REQUEST_HEADER_BYTES_MIN: usize = 2 + 2 + 4 + 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("request of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: i64, limit: usize },
    #[error("request size {0} is too small to hold a request header")]
    TooSmall(i64),
}

/// Accumulates socket bytes and splits them into frames.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    request_bytes_max: usize,
}

impl FrameReader {
    /// Bytes asked of each socket read when nothing tells us a larger frame is coming.
    pub const READ_CHUNK_BYTES: usize = 64 * 1024;

    pub fn new(request_bytes_max: usize) -> FrameReader {
        FrameReader {
            buf: BytesMut::with_capacity(Self::READ_CHUNK_BYTES),
            request_bytes_max,
        }
    }

    /// Takes the next complete frame (without its size prefix), if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(size) = self.pending_size()? else {
            return Ok(None);
        };
        if self.buf.len() < 4 + size {
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(size).freeze()))
    }

    /// The size of the frame at the head of the buffer, validated, once its prefix has arrived.
    fn pending_size(&self) -> Result<Option<usize>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let size = i64::from(i32::from_be_bytes([
            self.buf[0],
            self.buf[1],
            self.buf[2],
            self.buf[3],
        ]));
        if size < REQUEST_HEADER_BYTES_MIN as i64 {
            return Err(FrameError::TooSmall(size));
        }
        if size > self.request_bytes_max as i64 {
            return Err(FrameError::TooLarge {
                size,
                limit: self.request_bytes_max,
            });
        }
        Ok(Some(size as usize))
    }

    /// A zeroed region at the end of the buffer for the next socket read, sized for the frame
    /// in progress when its size is known. Call [`FrameReader::filled`] with the bytes read.
    pub fn read_space(&mut self) -> Result<&mut [u8], FrameError> {
        let want = match self.pending_size()? {
            Some(size) if self.buf.len() < 4 + size => (4 + size - self.buf.len()).max(1),
            _ => Self::READ_CHUNK_BYTES,
        }
        .min(Self::READ_CHUNK_BYTES.max(self.request_bytes_max + 4));
        let start = self.buf.len();
        self.buf.resize(start + want, 0);
        Ok(&mut self.buf[start..])
    }

    /// Records how many bytes of the last [`FrameReader::read_space`] region were filled.
    pub fn filled(&mut self, space_len: usize, read: usize) {
        let keep = self.buf.len() - space_len + read;
        self.buf.truncate(keep);
    }

    /// Bytes buffered but not yet taken as a frame.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(reader: &mut FrameReader, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let space = reader.read_space().expect("valid size");
            let n = space.len().min(rest.len());
            space[..n].copy_from_slice(&rest[..n]);
            let len = space.len();
            reader.filled(len, n);
            rest = &rest[n..];
        }
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn splits_pipelined_frames() {
        let mut r = FrameReader::new(1024);
        let mut bytes = frame(&[1; 10]);
        bytes.extend(frame(&[2; 20]));
        bytes.extend(&frame(&[3; 12])[..7]);
        feed(&mut r, &bytes);
        assert_eq!(r.next_frame().unwrap().unwrap(), Bytes::from(vec![1; 10]));
        assert_eq!(r.next_frame().unwrap().unwrap(), Bytes::from(vec![2; 20]));
        assert_eq!(r.next_frame().unwrap(), None);
        feed(&mut r, &frame(&[3; 12])[7..]);
        assert_eq!(r.next_frame().unwrap().unwrap(), Bytes::from(vec![3; 12]));
        assert_eq!(r.buffered_len(), 0);
    }

    #[test]
    fn rejects_oversized_before_allocating() {
        let mut r = FrameReader::new(1024);
        feed(&mut r, &(1025i32).to_be_bytes());
        assert_eq!(
            r.next_frame(),
            Err(FrameError::TooLarge {
                size: 1025,
                limit: 1024
            })
        );
        assert!(r.read_space().is_err());
    }

    #[test]
    fn rejects_negative_and_tiny_sizes() {
        for size in [-1i32, 0, 3, i32::MIN] {
            let mut r = FrameReader::new(1024);
            feed(&mut r, &size.to_be_bytes());
            assert!(matches!(r.next_frame(), Err(FrameError::TooSmall(_))));
        }
    }

    #[test]
    fn read_space_grows_for_a_large_frame() {
        let mut r = FrameReader::new(1 << 20);
        feed(&mut r, &(200_000i32).to_be_bytes());
        let space = r.read_space().unwrap().len();
        assert!(space >= FrameReader::READ_CHUNK_BYTES);
        let len = space;
        r.filled(len, 0);
    }
}
