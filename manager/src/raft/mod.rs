//! Raft for the managers: the node actor ([`node`], its loop in `actor`
//! and apply side in `apply`, its disk thread in `flusher`, its snapshot
//! thread in `snapshotter`, both on `worker`) around
//! raft-rs's `RawNode`, durable sealed storage on disk ([`storage`]: a
//! WAL, snapshot files, and sled for membership)
//! behind the storage seam ([`log`]), and the gRPC transport
//! ([`transport`], [`service`]) between peers, which admits only what a
//! member may send ([`guard`]).

mod actor;
mod apply;
mod flusher;
#[doc(hidden)]
pub(crate) mod fuzzing;
pub mod guard;
#[cfg(test)]
pub(crate) mod instant;
pub mod log;
pub mod node;
pub mod service;
mod snapshotter;
pub mod storage;
pub mod transport;
mod worker;

pub use storage::{DiskStorage, StorageError};

#[cfg(test)]
mod tests;
