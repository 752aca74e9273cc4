//! What a new cluster starts with (`swarm init`): the cluster object, its
//! first manager's node object and the `ingress` network, which
//! [`Manager::start`](super::Manager::start) commits as its first batch.
//!
//! Every setting `swarm init` leaves unset takes the default the manager
//! itself applies when the cluster object says nothing (the allocator's
//! pool and subnet size, the dispatcher's heartbeat and VXLAN port, the
//! CA's certificate lifetime, Raft's timings), so the cluster records what
//! the manager actually does and no caller repeats a default.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_proto::objects::{
    self, Annotations, CaConfig, Cluster, ClusterSpec, DispatcherConfig, Driver, EncryptionConfig,
    ManagerStatus, Network, NetworkSpec, Node, NodeCertificate, NodeDescription, NodeSpec,
    NodeStatus, OrchestrationConfig, manager_status, node_certificate, node_status,
};
use shoal_proto::store::StoreSnapshot;

use super::Bootstrap;
use crate::allocator::pools::is_ingress_network;
use crate::ca::{JoinTokens, RootCa};
use crate::raft::node::RaftConfig;
use crate::seal::UnlockKey;

pub use crate::allocator::pools::{DEFAULT_POOL, DEFAULT_SUBNET_SIZE};
pub use crate::ca::DEFAULT_NODE_CERT_EXPIRY;
pub use crate::dispatcher::DEFAULT_HEARTBEAT;
pub use crate::dispatcher::networks::DEFAULT_DATA_PATH_PORT;

/// Tasks kept per slot when `--task-history-limit` is unset: the
/// orchestrator's own default (Docker's 5).
pub const DEFAULT_TASK_HISTORY: i64 = crate::orchestrator::DEFAULT_HISTORY as i64;

/// The Raft id of a new cluster's first manager.
pub const FOUNDER_RAFT_ID: u64 = 1;

/// The name of a new cluster.
const CLUSTER_NAME: &str = "default";

/// What `swarm init` may set; zero or empty means the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Seal every manager's state with an unlock key.
    pub autolock: bool,
    /// Node certificates' lifetime ([`DEFAULT_NODE_CERT_EXPIRY`] if zero).
    pub cert_expiry: Duration,
    /// Tasks kept per slot ([`DEFAULT_TASK_HISTORY`] if not positive).
    pub task_history_limit: i64,
    /// Pools overlay subnets come from ([`DEFAULT_POOL`] if empty).
    pub default_addr_pool: Vec<String>,
    /// Overlay subnets' prefix length ([`DEFAULT_SUBNET_SIZE`] if zero).
    pub subnet_size: u32,
    /// The VXLAN port ([`DEFAULT_DATA_PATH_PORT`] if zero).
    pub data_path_port: u32,
}

impl ClusterSettings {
    /// The node certificates' lifetime, defaults applied.
    pub fn node_cert_expiry(&self) -> Duration {
        match self.cert_expiry {
            Duration::ZERO => DEFAULT_NODE_CERT_EXPIRY,
            given => given,
        }
    }

    /// A restore: the backed-up cluster's settings replace these (its
    /// networks' subnets come from its pools; autolock stays on if it was,
    /// and a certificate lifetime given here wins).
    pub fn restore_from(&mut self, old: &Cluster) {
        let spec = old.spec.clone().unwrap_or_default();
        self.autolock |= spec.encryption.is_some_and(|e| e.auto_lock_managers);
        if let Some(expiry) = spec
            .ca_config
            .and_then(|c| c.node_cert_expiry)
            .and_then(|d| Duration::try_from(d).ok())
            .filter(|_| self.cert_expiry.is_zero())
        {
            self.cert_expiry = Duration::from_secs(expiry.as_secs());
        }
        if let Some(o) = spec.orchestration {
            self.task_history_limit = o.task_history_retention_limit;
        }
        self.default_addr_pool = old.default_addr_pool.clone();
        self.subnet_size = old.subnet_size;
        self.data_path_port = old.data_path_port;
    }
}

/// The cluster object of a new cluster `id`, with its CA, join tokens and
/// (with autolock) unlock key.
pub fn cluster(
    id: &str,
    settings: &ClusterSettings,
    root: &RootCa,
    tokens: &JoinTokens,
    unlock_key: Option<&UnlockKey>,
) -> Cluster {
    Cluster {
        id: id.to_string(),
        spec: Some(spec(settings)),
        root_ca: Some(objects::RootCa {
            ca_cert: root.cert_pem().as_bytes().to_vec(),
            ca_key: root.key_pem().into_bytes(),
            ca_cert_digest: root.digest().to_string(),
            ..Default::default()
        }),
        join_tokens: Some(objects::JoinTokens {
            worker: tokens.worker.to_string(),
            manager: tokens.manager.to_string(),
        }),
        default_addr_pool: match settings.default_addr_pool.is_empty() {
            true => vec![DEFAULT_POOL.into()],
            false => settings.default_addr_pool.clone(),
        },
        subnet_size: match settings.subnet_size {
            0 => u32::from(DEFAULT_SUBNET_SIZE),
            size => size,
        },
        data_path_port: match settings.data_path_port {
            0 => DEFAULT_DATA_PATH_PORT,
            port => port,
        },
        unlock_key: unlock_key.map(ToString::to_string).unwrap_or_default(),
        ..Default::default()
    }
}

fn spec(settings: &ClusterSettings) -> ClusterSpec {
    ClusterSpec {
        annotations: Some(Annotations {
            name: CLUSTER_NAME.into(),
            ..Default::default()
        }),
        orchestration: Some(OrchestrationConfig {
            task_history_retention_limit: match settings.task_history_limit {
                limit if limit > 0 => limit,
                _ => DEFAULT_TASK_HISTORY,
            },
        }),
        raft: Some(raft_spec()),
        dispatcher: Some(DispatcherConfig {
            heartbeat_period: prost_types::Duration::try_from(DEFAULT_HEARTBEAT).ok(),
        }),
        ca_config: Some(CaConfig {
            node_cert_expiry: prost_types::Duration::try_from(settings.node_cert_expiry()).ok(),
            force_rotate: 0,
        }),
        encryption: Some(EncryptionConfig {
            auto_lock_managers: settings.autolock,
        }),
    }
}

/// The cluster's record of Raft's timings: those every manager runs with
/// ([`RaftConfig::new`]); Docker's API shows them.
fn raft_spec() -> objects::RaftConfig {
    let raft = RaftConfig::new(FOUNDER_RAFT_ID);
    let tick = |ticks: usize| u32::try_from(ticks).unwrap_or(u32::MAX);
    objects::RaftConfig {
        snapshot_interval: raft.snapshot_interval,
        keep_old_snapshots: 0,
        log_entries_for_slow_followers: raft.keep_entries,
        heartbeat_tick: tick(raft.heartbeat_tick),
        election_tick: tick(raft.election_tick),
    }
}

/// A new cluster's first manager, as its node object says.
#[derive(Debug, Clone)]
pub struct Founder {
    /// Its node id.
    pub node_id: String,
    /// What it is (hostname, platform, resources, engine).
    pub description: NodeDescription,
    /// How others reach it.
    pub advertise: SocketAddr,
    /// Its manager certificate (PEM), issued by the cluster's root.
    pub certificate: String,
}

/// The node object of `founder`: a ready manager, the Raft leader.
pub fn founder_node(founder: Founder, root: &RootCa) -> Node {
    let manager = objects::NodeRole::Manager as i32;
    Node {
        id: founder.node_id,
        spec: Some(NodeSpec {
            desired_role: manager,
            ..Default::default()
        }),
        description: Some(founder.description),
        status: Some(NodeStatus {
            state: node_status::State::Ready as i32,
            message: String::new(),
            addr: founder.advertise.ip().to_string(),
        }),
        manager_status: Some(ManagerStatus {
            raft_id: FOUNDER_RAFT_ID,
            addr: founder.advertise.to_string(),
            leader: true,
            reachability: manager_status::Reachability::Reachable as i32,
        }),
        role: manager,
        certificate: Some(NodeCertificate {
            role: manager,
            certificate: founder.certificate.into_bytes(),
            status: node_certificate::Status::Issued as i32,
            issuer_digest: root.digest().to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `ingress` network every new cluster starts with: the routing
/// mesh's overlay (its subnet and VXLAN id come from the allocator).
pub fn ingress_network() -> Network {
    let overlay = || Driver {
        name: "overlay".into(),
        ..Default::default()
    };
    Network {
        id: shoal_proto::identity::new_id(),
        spec: Some(NetworkSpec {
            annotations: Some(Annotations {
                name: "ingress".into(),
                labels: Default::default(),
            }),
            driver_config: Some(overlay()),
            ingress: true,
            ..Default::default()
        }),
        driver_state: Some(overlay()),
        ..Default::default()
    }
}

impl Bootstrap {
    /// A new cluster: `cluster`, founded by `node`, holding what a backup
    /// brings back (`restored`, empty for a plain `swarm init`). The
    /// backup's cluster lends its name, labels, Raft and dispatcher
    /// settings (its CA, tokens and lock are the new one's), and its
    /// ingress network is kept: its subnet and the published ports'
    /// allocations belong to it.
    pub fn new_cluster(mut cluster: Cluster, node: Node, mut restored: StoreSnapshot) -> Bootstrap {
        if let Some(old) = restored.clusters.pop() {
            restore_spec(&mut cluster, old);
        }
        let ingress = match restored.networks.iter().position(is_ingress_network) {
            Some(at) => restored.networks.swap_remove(at),
            None => ingress_network(),
        };
        Bootstrap::New {
            cluster: Box::new(cluster),
            node: Box::new(node),
            ingress: Box::new(ingress),
            restored: Box::new(restored),
        }
    }
}

fn restore_spec(cluster: &mut Cluster, old: Cluster) {
    let (Some(spec), Some(old)) = (cluster.spec.as_mut(), old.spec) else {
        return;
    };
    spec.annotations = old.annotations;
    if old.raft.is_some() {
        spec.raft = old.raft;
    }
    if old.dispatcher.is_some() {
        spec.dispatcher = old.dispatcher;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki() -> (RootCa, JoinTokens) {
        let root = RootCa::generate("c1").unwrap();
        let tokens = JoinTokens::generate(root.digest());
        (root, tokens)
    }

    #[test]
    fn unset_settings_take_the_managers_defaults() {
        let (root, tokens) = pki();
        let c = cluster("c1", &ClusterSettings::default(), &root, &tokens, None);
        assert_eq!(c.default_addr_pool, vec![DEFAULT_POOL.to_string()]);
        assert_eq!(c.subnet_size, u32::from(DEFAULT_SUBNET_SIZE));
        assert_eq!(c.data_path_port, DEFAULT_DATA_PATH_PORT);
        assert!(c.unlock_key.is_empty());
        let spec = c.spec.unwrap();
        assert_eq!(
            spec.orchestration.unwrap().task_history_retention_limit,
            DEFAULT_TASK_HISTORY
        );
        let raft = spec.raft.unwrap();
        assert_eq!((raft.snapshot_interval, raft.election_tick), (10_000, 10));
        let expiry = spec.ca_config.unwrap().node_cert_expiry.unwrap();
        assert_eq!(
            Duration::try_from(expiry).unwrap(),
            DEFAULT_NODE_CERT_EXPIRY
        );
    }

    #[test]
    fn a_restore_takes_the_backups_settings_and_ingress() {
        let (root, tokens) = pki();
        let mut old = cluster(
            "old",
            &ClusterSettings {
                autolock: true,
                task_history_limit: 9,
                default_addr_pool: vec!["10.20.0.0/16".into()],
                subnet_size: 26,
                data_path_port: 7789,
                cert_expiry: Duration::from_secs(48 * 3600),
            },
            &root,
            &tokens,
            None,
        );
        old.spec
            .as_mut()
            .unwrap()
            .annotations
            .as_mut()
            .unwrap()
            .name = "old".into();
        let mut settings = ClusterSettings::default();
        settings.restore_from(&old);
        assert!(settings.autolock);
        assert_eq!(settings.cert_expiry, Duration::from_secs(48 * 3600));
        assert_eq!((settings.subnet_size, settings.data_path_port), (26, 7789));

        let ingress = ingress_network();
        let restored = StoreSnapshot {
            clusters: vec![old],
            networks: vec![ingress.clone()],
            ..Default::default()
        };
        let new = cluster("new", &settings, &root, &tokens, None);
        let Bootstrap::New {
            cluster,
            ingress: kept,
            restored,
            ..
        } = Bootstrap::new_cluster(new, Node::default(), restored)
        else {
            panic!("not a new cluster");
        };
        assert_eq!(cluster.id, "new");
        assert_eq!(cluster.spec.unwrap().annotations.unwrap().name, "old");
        assert_eq!(kept.id, ingress.id);
        assert!(restored.clusters.is_empty() && restored.networks.is_empty());
    }
}
