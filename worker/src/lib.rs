//! The worker side of a Shoal node: every node runs one.
//!
//! # Layout
//! - [`agent`]: the session with the leader's dispatcher, heartbeats,
//!   failover between managers.
//! - [`engine_choice`]: which local engine runs tasks (docker, embedded,
//!   process, sim) and how `auto` chooses; [`exec`] holds the engines.
//! - [`host`]: facts about the machine (kernel, CPUs, memory, cgroups).
//! - [`exec`]: engines behind one trait: docker, the embedded engine (the
//!   process engine's task dirs and shim running OCI images, `exec::oci`),
//!   process, sim.
//! - [`health`]: health checks run through any engine's `exec`.
//! - [`image`]: the node-local OCI image store (pull, load, unpacked
//!   layers for overlayfs) the embedded engine runs tasks from.
//! - [`logs`]: publishes task logs for the log broker's subscriptions.
//! - [`volume`]: the node-local named volumes (`local` driver) the
//!   embedded engine mounts into tasks.
//! - [`task`]: one actor per task; [`worker`]: the assignment set.
//! - [`net`]: overlay networks, DNS, load balancing, egress.
//! - [`metrics`]: the node's Prometheus metrics (tasks by state, engine
//!   calls, heartbeats, data-plane syncs).
//!
//! A worker never writes cluster state except through the dispatcher.
#![deny(missing_docs)]

pub mod agent;
pub mod engine_choice;
pub mod exec;
pub mod health;
pub mod host;
pub mod image;
pub mod logs;
pub mod metrics;
pub mod net;
pub mod task;
#[cfg(test)]
mod testing;
pub mod volume;
pub mod worker;
