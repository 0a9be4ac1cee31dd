//! Wire-level pieces written by hand because they sit on the hot path: the frame reader and the
//! record batch header parser. Message bodies are decoded and encoded with the `kafka-protocol`
//! crate.

pub mod frame;
pub mod record_batch;
pub mod request_shape;
pub mod topic_name;
