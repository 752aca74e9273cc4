//! Shoal's protocol and the few pieces both sides of the wire share.
//!
//! # Layout
//! - The generated modules ([`objects`], [`control`], [`dispatcher`],
//!   [`raft`], [`ca`], [`logs`], [`local`]) come from `proto/shoal/*.proto`.
//! - [`build_info`]: versions shown by `shoal version`.
//! - [`credentials`]: a node's key, certificate and roots on disk.
//! - [`net`]: gRPC over mutual TLS: dialling and accepting.
//! - [`telemetry`]: one way to set up `tracing` for every binary.
//! - [`shutdown`]: the cancellation tree every long-lived loop listens to.
//! - [`listing`]: lists streamed in chunks, and joined again.
//! - [`identity`]: node ids, roles and identities read from certificates;
//!   node keys and CSRs.
//! - [`limits`]: bounds both sides apply (secret and config sizes, replica
//!   counts, durations) and total conversions of spec durations.
//! - [`token`]: the root CA digest and join tokens (both sides parse them).
//! - [`task_state`]: task states in order, terminal or not, Docker's names.
//! - [`tls`]: the rustls configs for every connection between nodes.
//!
//! `manager` and `worker` never depend on each other: this crate is all
//! they share.
#![deny(missing_docs)]

pub mod build_info;
pub mod credentials;
pub mod identity;
pub mod limits;
pub mod listing;
pub mod net;
pub mod shutdown;
pub mod task_state;
pub mod telemetry;
pub mod tls;
pub mod token;

macro_rules! generated {
    ($(#[$doc:meta] $name:ident => $pkg:literal),* $(,)?) => {
        $(
            #[$doc]
            #[allow(missing_docs, clippy::all, clippy::pedantic)]
            pub mod $name {
                tonic::include_proto!($pkg);
            }
        )*
    };
}

generated! {
    /// Cluster objects: Cluster, Node, Service, Task, Network, Secret, Config.
    objects => "shoal.objects",
    /// The control API the CLI calls and managers forward to the leader.
    control => "shoal.control",
    /// Worker sessions, heartbeats, assignments and task status.
    dispatcher => "shoal.dispatcher",
    /// Raft transport and membership between managers.
    raft => "shoal.raft",
    /// The node CA: root certificate, node certificates, unlock key.
    ca => "shoal.ca",
    /// Log broker: subscriptions and publishing.
    logs => "shoal.logs",
    /// The local daemon API on the Unix socket.
    local => "shoal.local",
    /// Raft log entries: batches of store actions, and store snapshots.
    store => "shoal.store",
}

/// Registry credentials print their server and user, never the password.
impl std::fmt::Debug for objects::RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_passwords_never_print() {
        let auth = super::objects::RegistryAuth {
            server: "r:5000".into(),
            username: "alice".into(),
            password: "s3cr3t".into(),
        };
        let shown = format!("{auth:?}");
        assert!(
            shown.contains("alice") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }
}
