//! The manager side of a Shoal node.
//!
//! # Layout (grows with the issues that build it; see shared/DESIGN.md)
//! - `store`: in-memory indexed tables, transactions, watch events.
//! - `raft`: the Raft node around raft-rs `RawNode`, its sealed storage (a
//!   WAL, snapshot files, sled for membership), transport.
//! - `ca`: root CA, node certificates, join tokens.
//! - `context`: what every service shares; writes and linearizable reads
//!   through Raft, with typed errors (`CommitError`).
//! - `controlapi`: the control API. It and the other gRPC services
//!   (`dispatcher`, `ca::service`, `logbroker`, `membership`, `raft`'s
//!   service) are the only places errors become `Status`, through
//!   `grpc_status`.
//! - `grpc_status`: the one mapping of typed errors to gRPC statuses
//!   (codes, messages, the not-leader answer).
//! - `scheduler`: gives Pending tasks a node (filters, a pure planner, the
//!   leader-only loop that commits its plans).
//! - `orchestrator`: services into tasks, restarts, rolling updates, reaping.
//! - `allocator`: subnets, VXLAN ids, VIPs, task addresses, published ports.
//! - `logbroker`: log subscriptions from the CLI, relayed from workers.
//! - `events`: Docker-style cluster events, a log per manager (`Watch`).
//! - `backup`: `swarm backup` files, sealed with a passphrase's key.
//! - `leader`: the one supervisor of leader-only components (orchestrator,
//!   allocator, scheduler, CA rotation, the dispatcher's down detector):
//!   started and stopped with leadership, restarted if they exit.
//! - `leadership`: `Term`, for streams that end with the leadership term
//!   they were opened in.
//! - `passes`: the wake/batch/backoff driver of the allocator, the
//!   scheduler and CA rotation.
//! - `dispatcher`: node sessions, heartbeats and down detection,
//!   assignments, network views, task status.
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
pub mod grpc_status;
pub mod leader;
pub mod leadership;
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
