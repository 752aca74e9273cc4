//! The manager side of a Shoal node.
//!
//! # Layout (grows with the issues that build it; see shared/DESIGN.md)
//! - `store`: in-memory indexed tables, transactions, watch events.
//! - `raft`: the Raft node around raft-rs `RawNode`, its sealed storage (a
//!   WAL, snapshot files, sled for membership), transport.
//! - `ca`: root CA, node certificates, join tokens.
//! - `controlapi`: the control API, the only place errors become `Status`.
//! - `scheduler`: gives Pending tasks a node (filters, a pure planner, the
//!   leader-only loop that commits its plans).
//! - `orchestrator`: services into tasks, restarts, rolling updates, reaping.
//! - `allocator`: subnets, VXLAN ids, VIPs, task addresses, published ports.
//! - `logbroker`: log subscriptions from the CLI, relayed from workers.
//! - `events`: Docker-style cluster events, a log per manager (`Watch`).
//! - `backup`: `swarm backup` files, sealed with a passphrase's key.
//! - `leader`: starts the leader-only loops and stops them with leadership.
//! - `fuzzing`: entry points for the fuzz targets in `fuzz/` (not an API).
//! - `metrics`: Prometheus metrics, counted where things happen or read
//!   from the running manager when scraped.
//!
//! A manager never runs a task and never depends on the worker crate: all
//! it shares with workers is the protocol in `shoal-proto`.
#![deny(missing_docs)]

pub mod allocator;
pub mod authz;
pub mod autolock;
pub mod backup;
pub mod ca;
pub mod context;
pub mod controlapi;
pub mod dispatcher;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod leader;
pub mod logbroker;
pub mod membership;
pub mod metrics;
pub mod orchestrator;
pub mod passes;
pub mod raft;
pub mod runtime;
pub mod scheduler;
pub mod seal;
pub mod store;
#[cfg(test)]
mod testing;
