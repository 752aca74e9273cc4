//! The cluster object: read (never with the CA key), and updated for
//! `swarm update` and `swarm join-token --rotate`.

use shoal_proto::control::{
    GetClusterRequest, GetClusterResponse, GetUnlockKeyRequest, GetUnlockKeyResponse,
    UpdateClusterRequest, UpdateClusterResponse,
};
use shoal_proto::identity::NodeRole;
use shoal_proto::objects::{Cluster, JoinTokens as ProtoTokens};
use shoal_proto::token::JoinToken;
use tonic::Status;

use crate::ca::JoinTokens;
use crate::context::ManagerContext;
use crate::seal::UnlockKey;

/// The cluster as the API shows it: the root CA key is never sent.
pub fn redact(mut cluster: Cluster) -> Cluster {
    cluster.unlock_key.clear();
    if let Some(root) = cluster.root_ca.as_mut() {
        root.ca_key.clear();
        if let Some(rotation) = root.root_rotation.as_mut() {
            rotation.ca_key.clear();
        }
    }
    cluster
}

fn the_cluster(ctx: &ManagerContext) -> Result<Cluster, Status> {
    ctx.store
        .view(|t| t.cluster().cloned())
        .ok_or_else(|| Status::unavailable("the cluster is not initialized yet"))
}

pub async fn cluster_get(
    ctx: &ManagerContext,
    _: GetClusterRequest,
) -> Result<GetClusterResponse, Status> {
    ctx.raft
        .read_barrier()
        .await
        .map_err(crate::context::propose_status)?;
    Ok(GetClusterResponse {
        cluster: Some(redact(the_cluster(ctx)?)),
    })
}

pub async fn cluster_update(
    ctx: &ManagerContext,
    request: UpdateClusterRequest,
) -> Result<UpdateClusterResponse, Status> {
    let updated = ctx
        .update(|tx| {
            let mut cluster = tx.tables().cluster().cloned().ok_or_else(|| Status::unavailable("the cluster is not initialized yet"))?;
            if request.version != 0 && request.version != cluster.meta.as_ref().map_or(0, |m| m.version) {
                return Err(Status::aborted("update out of sequence: the cluster changed since it was read; read it again and retry"));
            }
            if let Some(spec) = request.spec.clone() {
                cluster.spec = Some(spec);
            }
            // Autolock on: the cluster needs a key; off: it keeps none.
            let autolock = cluster.spec.as_ref().and_then(|s| s.encryption.as_ref()).is_some_and(|e| e.auto_lock_managers);
            if !autolock {
                cluster.unlock_key.clear();
            } else if cluster.unlock_key.is_empty() || request.rotate_unlock_key {
                cluster.unlock_key = UnlockKey::generate().to_string();
            }
            if request.rotate_worker_token || request.rotate_manager_token {
                let stored = cluster.join_tokens.clone().unwrap_or_default();
                let parse = |t: &str| t.parse::<JoinToken>().map_err(|e| Status::internal(format!("stored join token unusable: {e}")));
                let mut tokens = JoinTokens { worker: parse(&stored.worker)?, manager: parse(&stored.manager)? };
                if request.rotate_worker_token {
                    tokens.rotate(NodeRole::Worker);
                }
                if request.rotate_manager_token {
                    tokens.rotate(NodeRole::Manager);
                }
                cluster.join_tokens = Some(ProtoTokens { worker: tokens.worker.to_string(), manager: tokens.manager.to_string() });
            }
            tx.update(cluster)?;
            Ok(())
        })
        .await;
    updated?;
    Ok(UpdateClusterResponse {
        cluster: Some(redact(the_cluster(ctx)?)),
    })
}

pub async fn cluster_unlock_key(
    ctx: &ManagerContext,
    _: GetUnlockKeyRequest,
) -> Result<GetUnlockKeyResponse, Status> {
    let cluster = ctx
        .read(|t| t.cluster().cloned())
        .await?
        .ok_or_else(|| Status::unavailable("the cluster is not initialized yet"))?;
    Ok(GetUnlockKeyResponse {
        unlock_key: cluster.unlock_key,
    })
}
