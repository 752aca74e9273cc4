//! The cluster object as Docker's `Swarm` (`GET /swarm`, `info`), and the
//! parts of a `SwarmSpec` that `swarm update` may change.

use bollard::models::{
    ClusterInfo, JoinTokens, Swarm, SwarmSpec, SwarmSpecCaConfig, SwarmSpecDispatcher,
    SwarmSpecEncryptionConfig, SwarmSpecOrchestration, SwarmSpecRaft, TlsInfo,
};
use shoal_proto::objects::{Cluster, ClusterSpec};

use super::{duration, nanos, times, version};

/// Docker's `Swarm`: the cluster, with its join tokens (managers only).
pub fn swarm_to_docker(cluster: &Cluster) -> Swarm {
    let info = cluster_info(cluster);
    Swarm {
        id: info.id,
        version: info.version,
        created_at: info.created_at,
        updated_at: info.updated_at,
        spec: info.spec,
        tls_info: info.tls_info,
        root_rotation_in_progress: info.root_rotation_in_progress,
        data_path_port: info.data_path_port,
        default_addr_pool: info.default_addr_pool,
        subnet_size: info.subnet_size,
        join_tokens: cluster.join_tokens.as_ref().map(|t| JoinTokens {
            worker: Some(t.worker.clone()),
            manager: Some(t.manager.clone()),
        }),
    }
}

/// Docker's `ClusterInfo` (the cluster in `GET /info`), without tokens.
pub fn cluster_info(cluster: &Cluster) -> ClusterInfo {
    let (created_at, updated_at) = times(cluster.meta.as_ref());
    let root = cluster.root_ca.as_ref();
    ClusterInfo {
        id: Some(cluster.id.clone()),
        version: version(cluster.meta.as_ref()),
        created_at,
        updated_at,
        spec: Some(spec_to_docker(cluster.spec.as_ref())),
        tls_info: root.map(|r| TlsInfo {
            trust_root: Some(String::from_utf8_lossy(&r.ca_cert).into_owned()),
            cert_issuer_subject: None,
            cert_issuer_public_key: None,
        }),
        root_rotation_in_progress: Some(root.is_some_and(|r| r.root_rotation.is_some())),
        data_path_port: Some(cluster.data_path_port),
        default_addr_pool: Some(cluster.default_addr_pool.clone()),
        subnet_size: Some(cluster.subnet_size),
    }
}

fn spec_to_docker(spec: Option<&ClusterSpec>) -> SwarmSpec {
    let spec = spec.cloned().unwrap_or_default();
    let raft = spec.raft.unwrap_or_default();
    SwarmSpec {
        name: spec.annotations.as_ref().map(|a| a.name.clone()),
        labels: spec.annotations.map(|a| a.labels.into_iter().collect()),
        orchestration: Some(SwarmSpecOrchestration {
            task_history_retention_limit: spec
                .orchestration
                .map(|o| o.task_history_retention_limit),
        }),
        raft: Some(SwarmSpecRaft {
            snapshot_interval: Some(raft.snapshot_interval),
            keep_old_snapshots: Some(raft.keep_old_snapshots),
            log_entries_for_slow_followers: Some(raft.log_entries_for_slow_followers),
            election_tick: Some(i64::from(raft.election_tick)),
            heartbeat_tick: Some(i64::from(raft.heartbeat_tick)),
        }),
        dispatcher: Some(SwarmSpecDispatcher {
            heartbeat_period: nanos(
                spec.dispatcher
                    .as_ref()
                    .and_then(|d| d.heartbeat_period.as_ref()),
            ),
        }),
        ca_config: Some(SwarmSpecCaConfig {
            node_cert_expiry: nanos(
                spec.ca_config
                    .as_ref()
                    .and_then(|c| c.node_cert_expiry.as_ref()),
            ),
            force_rotate: spec.ca_config.as_ref().map(|c| c.force_rotate),
            ..Default::default()
        }),
        encryption_config: Some(SwarmSpecEncryptionConfig {
            auto_lock_managers: Some(spec.encryption.is_some_and(|e| e.auto_lock_managers)),
        }),
        task_defaults: None,
    }
}

/// Applies what `docker swarm update` sends to the stored spec: task
/// history, heartbeat period, certificate expiry, autolock, labels.
/// Raft tunables are recorded only, as in Shoal's own `swarm update`.
pub fn apply_update(spec: &SwarmSpec, to: &mut ClusterSpec) -> Result<(), String> {
    if let Some(labels) = &spec.labels {
        let a = to.annotations.get_or_insert_with(Default::default);
        a.labels = labels.clone().into_iter().collect();
    }
    if let Some(limit) = spec
        .orchestration
        .as_ref()
        .and_then(|o| o.task_history_retention_limit)
    {
        to.orchestration
            .get_or_insert_with(Default::default)
            .task_history_retention_limit = limit;
    }
    if let Some(period) = spec.dispatcher.as_ref().and_then(|d| d.heartbeat_period) {
        to.dispatcher
            .get_or_insert_with(Default::default)
            .heartbeat_period = duration(Some(period), "HeartbeatPeriod")?;
    }
    if let Some(ca) = &spec.ca_config {
        let to_ca = to.ca_config.get_or_insert_with(Default::default);
        if let Some(expiry) = ca.node_cert_expiry {
            to_ca.node_cert_expiry = duration(Some(expiry), "NodeCertExpiry")?;
        }
        if let Some(rotate) = ca.force_rotate {
            to_ca.force_rotate = rotate;
        }
        if ca.external_cas.as_ref().is_some_and(|x| !x.is_empty())
            || ca.signing_ca_cert.as_ref().is_some_and(|x| !x.is_empty())
        {
            return Err("external and custom root CAs are not supported by Shoal".into());
        }
    }
    if let Some(lock) = spec
        .encryption_config
        .as_ref()
        .and_then(|e| e.auto_lock_managers)
    {
        to.encryption
            .get_or_insert_with(Default::default)
            .auto_lock_managers = lock;
    }
    Ok(())
}
