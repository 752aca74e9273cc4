//! Raft for the managers: the node actor ([`node`]) around raft-rs's
//! `RawNode`, durable sealed storage on sled ([`storage`]) behind the
//! storage seam ([`log`]), and the gRPC transport ([`transport`],
//! [`service`]) between peers.

pub mod log;
pub mod node;
pub mod service;
pub mod storage;
pub mod transport;

pub use storage::{SledStorage, StorageError};

#[cfg(test)]
mod tests;
