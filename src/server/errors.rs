//! Subsystem errors mapped to Kafka error codes, once, at the handler boundary.

use kafka_protocol::ResponseError;

use crate::metadata::MetadataError;
use crate::produce::ProduceError;
use crate::protocol::record_batch::BatchError;

pub fn metadata_error_code(e: &MetadataError) -> i16 {
    match e {
        MetadataError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        MetadataError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        MetadataError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        // Retriable: the client backs off and tries again.
        MetadataError::Unavailable(_) => ResponseError::RequestTimedOut,
        MetadataError::Backend(_) => ResponseError::UnknownServerError,
    }
    .code()
}

pub fn produce_error_code(e: &ProduceError) -> i16 {
    match e {
        // Retriable, so producers keep their records and try again.
        ProduceError::Storage(_) => ResponseError::KafkaStorageError.code(),
        ProduceError::Metadata(MetadataError::Backend(_)) => {
            ResponseError::KafkaStorageError.code()
        }
        ProduceError::Metadata(m) => metadata_error_code(m),
        ProduceError::ShuttingDown => ResponseError::NotLeaderOrFollower.code(),
    }
}

/// As Kafka's produce validation answers: a CRC mismatch may be damage in transit, so it is
/// the retriable CORRUPT_MESSAGE; a batch that can never be valid is INVALID_RECORD.
pub fn batch_error_code(e: &BatchError) -> i16 {
    match e {
        BatchError::Crc { .. } => ResponseError::CorruptMessage,
        BatchError::BadCompression(_) => ResponseError::UnsupportedCompressionType,
        BatchError::MultipleBatches
        | BatchError::BadCount { .. }
        | BatchError::Empty
        | BatchError::BadMagic(_)
        | BatchError::Truncated { .. }
        | BatchError::BadLength(_)
        | BatchError::BadRecord { .. } => ResponseError::InvalidRecord,
    }
    .code()
}
