//! Raft for the managers: the node actor ([`node`]) around raft-rs's
//! `RawNode`, the storage seam ([`log`]) and the transport between peers.

pub mod log;
pub mod node;
pub mod service;
pub mod transport;
