//! `GET /info`: the node and, in a swarm, the cluster as Docker reports it.

use axum::Json;
use axum::extract::State;
use bollard::models::{LocalNodeState, PeerNode, SwarmInfo, SystemInfo};
use shoal_proto::control::{GetClusterRequest, ListNodesRequest};
use shoal_proto::listing::Joined as _;
use shoal_proto::local::InfoRequest;
use shoal_proto::objects::NodeRole;

use crate::docker_api::Daemon;
use crate::docker_api::convert::cluster::cluster_info;
use crate::docker_api::error::ApiResult;

/// `GET /info`.
pub async fn info(State(daemon): State<Daemon>) -> ApiResult<Json<SystemInfo>> {
    let info = daemon
        .local
        .clone()
        .info(InfoRequest { brief: true })
        .await?
        .into_inner();
    let swarm = swarm_info(&daemon, info.swarm.clone().unwrap_or_default()).await;
    Ok(Json(SystemInfo {
        id: info.swarm.as_ref().map(|s| s.node_id.clone()),
        containers: Some(0),
        containers_running: Some(0),
        containers_paused: Some(0),
        containers_stopped: Some(0),
        images: Some(0),
        driver: Some(info.engine.clone()),
        docker_root_dir: Some(info.state_dir.clone()),
        logging_driver: Some("json-file".into()),
        kernel_version: Some(info.kernel_version.clone()),
        operating_system: Some(info.os.clone()),
        os_type: Some("linux".into()),
        architecture: Some(info.arch.clone()),
        ncpu: Some(i64::from(info.ncpu)),
        mem_total: Some(i64::try_from(info.mem_total).unwrap_or(i64::MAX)),
        name: Some(info.hostname.clone()),
        labels: Some(Vec::new()),
        server_version: Some(info.server_version.clone()),
        swarm: Some(swarm),
        system_time: crate::docker_api::convert::rfc3339(Some(&prost_types::Timestamp::from(
            std::time::SystemTime::now(),
        ))),
        ..Default::default()
    }))
}

/// The `Swarm` part of `info`: local state always; the cluster, its
/// managers and node counts when this node is a manager.
async fn swarm_info(daemon: &Daemon, local: shoal_proto::local::SwarmInfo) -> SwarmInfo {
    let state = match local.local_node_state.as_str() {
        "active" => LocalNodeState::ACTIVE,
        "pending" => LocalNodeState::PENDING,
        "locked" => LocalNodeState::LOCKED,
        "error" => LocalNodeState::ERROR,
        _ => LocalNodeState::INACTIVE,
    };
    let mut swarm = SwarmInfo {
        node_id: Some(local.node_id.clone()),
        node_addr: Some(local.node_addr.clone()),
        local_node_state: Some(state),
        control_available: Some(local.control_available),
        error: Some(String::new()),
        remote_managers: None,
        nodes: Some(i64::from(local.nodes)),
        managers: Some(i64::from(local.managers)),
        cluster: None,
    };
    if !local.control_available {
        return swarm;
    }
    let mut control = daemon.control.clone();
    if let Ok(cluster) = control.get_cluster(GetClusterRequest {}).await {
        swarm.cluster = cluster.into_inner().cluster.as_ref().map(cluster_info);
    }
    if let Ok(nodes) = control
        .list_nodes(ListNodesRequest::default())
        .joined()
        .await
    {
        let nodes = nodes.nodes;
        let managers: Vec<PeerNode> = nodes
            .iter()
            .filter(|n| n.role() == NodeRole::Manager)
            .filter_map(|n| {
                let m = n.manager_status.as_ref()?;
                Some(PeerNode {
                    node_id: Some(n.id.clone()),
                    addr: Some(m.addr.clone()),
                })
            })
            .collect();
        swarm.nodes = Some(nodes.len() as i64);
        swarm.managers = Some(managers.len() as i64);
        swarm.remote_managers = Some(managers);
    }
    swarm
}
