//! The cluster object: read (never with the CA key), and updated for
//! `swarm update` and `swarm join-token --rotate`.

use shoal_proto::control::{
    GetClusterRequest, GetClusterResponse, GetUnlockKeyRequest, GetUnlockKeyResponse,
    UpdateClusterRequest, UpdateClusterResponse,
};
use shoal_proto::identity::NodeRole;
use shoal_proto::limits::{MAX_DURATION, MIN_CERT_EXPIRY, check_duration, human};
use shoal_proto::objects::{Cluster, ClusterSpec, JoinTokens as ProtoTokens};
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
        .map_err(crate::grpc_status::propose_status)?;
    Ok(GetClusterResponse {
        cluster: Some(redact(the_cluster(ctx)?)),
    })
}

/// Checks the durations of a cluster spec as swarmkit does (a heartbeat
/// period is not negative, a certificate expiry has a minimum, though
/// Shoal's is [`MIN_CERT_EXPIRY`], not an hour), and bounds both
/// ([`MAX_DURATION`]). Zero keeps meaning "the default".
fn check_spec(spec: &ClusterSpec) -> Result<(), Status> {
    let invalid = |m: String| Err(Status::invalid_argument(m));
    let period = spec.dispatcher.as_ref().and_then(|d| d.heartbeat_period);
    if let Some(Err(e)) = period.map(|d| check_duration(&d, MAX_DURATION)) {
        return invalid(format!("dispatcher heartbeat period {e}"));
    }
    let expiry = spec.ca_config.as_ref().and_then(|c| c.node_cert_expiry);
    match expiry.map(|d| check_duration(&d, MAX_DURATION)) {
        Some(Err(e)) => invalid(format!("certificate expiry {e}")),
        Some(Ok(d)) if !d.is_zero() && d < MIN_CERT_EXPIRY => invalid(format!(
            "minimum certificate expiry time is: {}",
            human(MIN_CERT_EXPIRY)
        )),
        _ => Ok(()),
    }
}

pub async fn cluster_update(
    ctx: &ManagerContext,
    request: UpdateClusterRequest,
) -> Result<UpdateClusterResponse, Status> {
    if let Some(spec) = request.spec.as_ref() {
        check_spec(spec)?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::objects::{CaConfig, DispatcherConfig};

    fn spec(heartbeat: Option<i64>, expiry: Option<i64>) -> ClusterSpec {
        let d = |seconds| prost_types::Duration { seconds, nanos: 0 };
        ClusterSpec {
            dispatcher: Some(DispatcherConfig {
                heartbeat_period: heartbeat.map(d),
            }),
            ca_config: Some(CaConfig {
                node_cert_expiry: expiry.map(d),
                force_rotate: 0,
            }),
            ..Default::default()
        }
    }

    fn refused(s: &ClusterSpec) -> String {
        let e = check_spec(s).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        e.message().to_string()
    }

    #[test]
    fn durations_are_checked_as_swarmkit_does() {
        assert!(check_spec(&spec(Some(5), Some(90 * 24 * 3600))).is_ok());
        assert!(
            check_spec(&spec(Some(0), Some(0))).is_ok(),
            "zero: the default"
        );
        assert!(check_spec(&ClusterSpec::default()).is_ok());
        assert_eq!(
            refused(&spec(Some(-1), None)),
            "dispatcher heartbeat period cannot be negative"
        );
        assert!(refused(&spec(Some(i64::MAX), None)).contains("cannot be longer"));
        assert_eq!(
            refused(&spec(None, Some(5))),
            "minimum certificate expiry time is: 10s"
        );
        assert_eq!(
            refused(&spec(None, Some(i64::MIN))),
            "certificate expiry cannot be negative"
        );
        assert!(refused(&spec(None, Some(i64::MAX))).contains("cannot be longer"));
    }
}
