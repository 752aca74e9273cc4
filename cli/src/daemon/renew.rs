//! Certificate renewal. A node renews its certificate on its own, well
//! before it expires: at a point between 50% and 80% of its lifetime that
//! depends on the node id (so a cluster's nodes don't all renew at once,
//! as swarmkit does), or at once when the cluster's trusted roots change
//! (`swarm ca --rotate`) or its desired role does (`node promote/demote`).
//! Renewal is a new key and CSR sent over mutual TLS
//! with the current certificate; the manager's CA answers at once.

use std::sync::Weak;
use std::time::{Duration, SystemTime};

use shoal_proto::ca::node_ca_client::NodeCaClient;
use shoal_proto::ca::{IssueNodeCertificateRequest, NodeCertificateStatusRequest};
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::identity::NodeKey;
use shoal_proto::identity::NodeRole;
use shoal_proto::net::ClientTls;
use shoal_proto::objects;
use tokio_util::sync::CancellationToken;

use super::swarm::SwarmNode;

/// How often the loop looks at its certificate.
const TICK: Duration = Duration::from_secs(1);
/// How often it asks the CA for its trusted roots and its desired role.
const STATUS_EVERY: u32 = 3;

/// Where in its lifetime a node renews: 0.5–0.8, fixed per node id.
pub fn renewal_fraction(node_id: &str) -> f64 {
    let spread = node_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 1000;
    0.5 + 0.3 * f64::from(spread) / 1000.0
}

/// Whether credentials issued at `issued` and expiring at `expires` are due.
pub fn due(issued: SystemTime, expires: SystemTime, fraction: f64, now: SystemTime) -> bool {
    let life = expires.duration_since(issued).unwrap_or_default();
    now >= issued + life.mul_f64(fraction)
}

/// Runs until `stop` or the node is gone.
pub async fn run(node: Weak<SwarmNode>, stop: CancellationToken) {
    let mut tick = 0u32;
    let mut warned_expired = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        tick = tick.wrapping_add(1);
        let Some(node) = node.upgrade() else { return };
        let Some((creds, manager, tls)) = node.renewal_view().await else {
            continue;
        };
        let identity = match creds.identity() {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "own certificate unreadable; not renewing");
                continue;
            }
        };
        let Ok((issued, expires)) = creds.validity() else {
            continue;
        };
        if SystemTime::now() > expires {
            // Renewal needs a valid certificate: an expired one can't get a new one.
            if !warned_expired {
                tracing::error!(
                    expired_at = %prost_types::Timestamp::from(expires),
                    "this node's certificate has expired (was the node down longer than its lifetime, or is its clock wrong?); \
                     leave the swarm (`shoal swarm leave --force`) and join it again"
                );
                warned_expired = true;
            }
            continue;
        }
        warned_expired = false;
        let mut reason = due(
            issued,
            expires,
            renewal_fraction(&identity.node_id),
            SystemTime::now(),
        )
        .then_some("certificate due for renewal");
        if reason.is_none() && tick.is_multiple_of(STATUS_EVERY) {
            match wanted(&manager, &tls, &identity.node_id).await {
                Ok((roots, _)) if roots != creds.roots_pem => {
                    reason = Some("the cluster's root CA changed")
                }
                Ok((_, role)) if role != identity.role => reason = Some("the node's role changed"),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "could not ask the CA about this node"),
            }
        }
        let Some(reason) = reason else { continue };
        match renew(&creds, &manager, &tls).await {
            Ok(renewed) => {
                if let Err(e) = node.apply_renewed(renewed, &manager).await {
                    tracing::warn!(error = %e, "renewed certificate could not be applied");
                } else {
                    tracing::info!(node = %identity.node_id, reason, "certificate renewed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, reason, manager = %manager, "certificate renewal failed; will retry")
            }
        }
    }
}

/// The roots the cluster trusts and the role it wants this node to have.
async fn wanted(
    manager: &str,
    tls: &ClientTls,
    node_id: &str,
) -> anyhow::Result<(String, NodeRole)> {
    let mut ca = NodeCaClient::new(shoal_proto::net::channel(manager, tls.clone()));
    let reply = ca
        .node_certificate_status(NodeCertificateStatusRequest {
            node_id: node_id.to_string(),
        })
        .await?
        .into_inner();
    let role = if reply.desired_role == objects::NodeRole::Manager as i32 {
        NodeRole::Manager
    } else {
        NodeRole::Worker
    };
    Ok((String::from_utf8(reply.root_ca)?, role))
}

async fn renew(
    creds: &NodeCredentials,
    manager: &str,
    tls: &ClientTls,
) -> anyhow::Result<NodeCredentials> {
    let key = NodeKey::generate()?;
    let csr = key.csr_pem()?;
    // Signed with the current key: a manager that forwards the renewal to
    // the leader can only pass it on, not redirect it to another node.
    let proof = NodeKey::from_pem(&creds.key_pem)?.sign_renewal(csr.as_bytes())?;
    let mut ca = NodeCaClient::new(shoal_proto::net::channel(manager, tls.clone()));
    let request = IssueNodeCertificateRequest {
        csr: csr.into_bytes(),
        token: String::new(),
        availability: 0,
        proof,
    };
    let issued = tokio::time::timeout(Duration::from_secs(10), ca.issue_node_certificate(request))
        .await
        .map_err(|_| anyhow::anyhow!("the CA did not answer in time"))?
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    let renewed = NodeCredentials {
        key_pem: key.to_pem(),
        cert_pem: issued.certificate,
        roots_pem: issued.root_ca,
    };
    anyhow::ensure!(
        renewed.identity()?.node_id == creds.identity()?.node_id,
        "the CA issued a certificate for another node"
    );
    Ok(renewed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_renew_between_half_and_four_fifths_of_the_lifetime() {
        for id in ["a", "node-1", "x7k2m9q4w8e6r1t3y5u0i2o4p"] {
            let f = renewal_fraction(id);
            assert!((0.5..=0.8).contains(&f), "{id}: {f}");
        }
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = t0 + Duration::from_secs(100);
        assert!(!due(t0, end, 0.6, t0 + Duration::from_secs(59)));
        assert!(due(t0, end, 0.6, t0 + Duration::from_secs(60)));
        assert!(
            due(t0, end, 0.6, end + Duration::from_secs(1)),
            "an expired certificate is due"
        );
    }
}
