//! The cluster harness: real `shoal daemon` processes, each in its own
//! network namespace, joined by a bridge on an underlay in 198.18.0.0/15.
//!
//! # Layout
//! - [`netns`]: namespaces, the underlay bridge, veths, and the sweep that
//!   removes what a killed test run left behind.
//! - [`cluster`]: N hosts with a daemon each; run the CLI against any of
//!   them, kill -9, restart, cut and heal links (nftables drop).
//! - [`faults`]: cut links both ways or one way, isolate a host, heal.
//! - [`node`]: a host's daemon alone: kill -9 it (tasks stay), CLI
//!   input on stdin, the node's id.
//! - [`outside`]: a host outside the cluster, linked to one node (egress).
//! - [`docker`]: the local test image and the `docker` CLI.
//! - [`registry`]: a real image registry on a host, with the demo images.
//! - [`leftovers`]: containers and mounts the dead daemons leave behind.
//! - [`managers`]: managers' stores as `shoal info` shows them (applied
//!   index, digest), waiting for agreement, clients inside a namespace, a
//!   replayable random generator (durability and chaos tests).
//! - [`browser`]: a headless Chromium on a host, driven over the DevTools
//!   protocol (the web view's tests).
//! - [`eventually`]: retry an assertion until it holds, with patience taken
//!   from `SHOAL_TEST_PATIENCE` (a multiplier, default 1).
//!
//! Everything a [`cluster::Cluster`] makes is removed when it is dropped,
//! also when the test panics; a run killed outright (SIGKILL, timeout) is
//! swept by the next one. Tests need root (namespaces, nftables); they fail
//! with a clear message otherwise rather than pretending to pass.

pub mod browser;
pub mod cluster;
pub mod docker;
pub mod docker_cli;
pub mod eventually;
pub mod faults;
pub mod leftovers;
pub mod managers;
pub mod netns;
pub mod node;
pub mod outside;
pub mod registry;
pub mod swarm;

pub use cluster::{Cluster, ClusterBuilder, Output};
pub use eventually::eventually;
