//! Wire-level pieces written by hand because they sit on the hot path: the frame reader, the
//! record batch header parser, the request shape walker, the Metadata answer writer and the
//! client.id hint parser. Other message bodies are decoded and encoded with the
//! `kafka-protocol` crate.

pub mod client_id;
pub mod frame;
pub mod metadata_writer;
pub mod record_batch;
pub mod request_shape;
pub mod topic_name;
