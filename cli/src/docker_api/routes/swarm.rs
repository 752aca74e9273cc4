//! `/swarm`: inspect, init, join, leave, update, and the unlock key.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use bollard::models::{Swarm, SwarmInitRequest, SwarmJoinRequest, SwarmSpec, SwarmUnlockRequest};
use serde::Serialize;
use shoal_proto::control::{GetClusterRequest, GetUnlockKeyRequest, UpdateClusterRequest};
use shoal_proto::local;

use super::{flag, json_body, query_u64};
use crate::docker_api::Daemon;
use crate::docker_api::convert::cluster::{apply_update, swarm_to_docker};
use crate::docker_api::error::{ApiError, ApiResult};

/// `GET /swarm`: the cluster with its join tokens (managers only).
pub async fn inspect(State(daemon): State<Daemon>) -> ApiResult<Json<Swarm>> {
    let cluster = daemon
        .control
        .clone()
        .get_cluster(GetClusterRequest {})
        .await?
        .into_inner()
        .cluster
        .ok_or_else(|| ApiError::internal("the cluster object is missing"))?;
    Ok(Json(swarm_to_docker(&cluster)))
}

/// `POST /swarm/init`: answers the new node's id as a JSON string.
pub async fn init(
    State(daemon): State<Daemon>,
    body: axum::body::Bytes,
) -> ApiResult<Json<String>> {
    let req: SwarmInitRequest = json_body(&body)?;
    let spec = req.spec.unwrap_or_default();
    let response = daemon
        .local
        .clone()
        .swarm_init(local::SwarmInitRequest {
            listen_addr: req.listen_addr.unwrap_or_default(),
            advertise_addr: req.advertise_addr.unwrap_or_default(),
            force_new_cluster: req.force_new_cluster.unwrap_or(false),
            autolock: spec
                .encryption_config
                .and_then(|e| e.auto_lock_managers)
                .unwrap_or(false),
            cert_expiry_seconds: spec
                .ca_config
                .and_then(|c| c.node_cert_expiry)
                .map_or(0, |ns| u64::try_from(ns / 1_000_000_000).unwrap_or(0)),
            task_history_limit: spec
                .orchestration
                .and_then(|o| o.task_history_retention_limit)
                .unwrap_or(-1),
            default_addr_pool: req.default_addr_pool.unwrap_or_default(),
            subnet_size: req.subnet_size.unwrap_or(0),
            data_path_port: req.data_path_port.unwrap_or(0),
        })
        .await?
        .into_inner();
    Ok(Json(response.node_id))
}

/// `POST /swarm/join`.
pub async fn join(State(daemon): State<Daemon>, body: axum::body::Bytes) -> ApiResult<()> {
    let req: SwarmJoinRequest = json_body(&body)?;
    let remote = req
        .remote_addrs
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::bad_request("RemoteAddrs must name a manager"))?;
    daemon
        .local
        .clone()
        .swarm_join(local::SwarmJoinRequest {
            remote_addr: remote,
            token: req.join_token.unwrap_or_default(),
            listen_addr: req.listen_addr.unwrap_or_default(),
            advertise_addr: req.advertise_addr.unwrap_or_default(),
        })
        .await?;
    Ok(())
}

/// `POST /swarm/leave?force=`.
pub async fn leave(
    State(daemon): State<Daemon>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<()> {
    daemon
        .local
        .clone()
        .swarm_leave(local::SwarmLeaveRequest {
            force: flag(&q, "force"),
        })
        .await?;
    Ok(())
}

/// `POST /swarm/update?version=&rotateWorkerToken=&rotateManagerToken=&rotateManagerUnlockKey=`.
pub async fn update(
    State(daemon): State<Daemon>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> ApiResult<()> {
    let spec: SwarmSpec = json_body(&body)?;
    let version = query_u64(&q, "version")?
        .ok_or_else(|| ApiError::bad_request("invalid swarm version: the version is required"))?;
    let mut control = daemon.control.clone();
    let cluster = control
        .get_cluster(GetClusterRequest {})
        .await?
        .into_inner()
        .cluster
        .ok_or_else(|| ApiError::internal("the cluster object is missing"))?;
    let mut stored = cluster.spec.unwrap_or_default();
    apply_update(&spec, &mut stored).map_err(ApiError::bad_request)?;
    control
        .update_cluster(UpdateClusterRequest {
            version,
            spec: Some(stored),
            rotate_worker_token: flag(&q, "rotateWorkerToken"),
            rotate_manager_token: flag(&q, "rotateManagerToken"),
            rotate_unlock_key: flag(&q, "rotateManagerUnlockKey"),
        })
        .await?;
    Ok(())
}

#[derive(Serialize)]
pub struct UnlockKey {
    #[serde(rename = "UnlockKey")]
    unlock_key: String,
}

/// `GET /swarm/unlockkey`.
pub async fn unlock_key(State(daemon): State<Daemon>) -> ApiResult<Json<UnlockKey>> {
    let key = daemon
        .control
        .clone()
        .get_unlock_key(GetUnlockKeyRequest {})
        .await?
        .into_inner();
    Ok(Json(UnlockKey {
        unlock_key: key.unlock_key,
    }))
}

/// `POST /swarm/unlock`.
pub async fn unlock(State(daemon): State<Daemon>, body: axum::body::Bytes) -> ApiResult<()> {
    let req: SwarmUnlockRequest = json_body(&body)?;
    daemon
        .local
        .clone()
        .swarm_unlock(local::SwarmUnlockRequest {
            unlock_key: req.unlock_key.unwrap_or_default(),
        })
        .await?;
    Ok(())
}
