//! The Kafka server of one shard: the listener, the connections it accepts, request dispatch
//! and one handler per Kafka API.

pub mod connection;
pub mod dispatch;
pub mod errors;
pub mod handlers;
pub mod http;
pub mod listener;
pub mod ordering;
