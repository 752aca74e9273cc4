//! Raft consensus for the managers: durable storage now; the node around
//! raft-rs `RawNode` and its transport come later.

pub mod storage;

pub use storage::{SledStorage, StorageError};
