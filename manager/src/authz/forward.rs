//! Calls a follower forwards to the leader on a node's behalf: a
//! certificate renewal, a Raft join or leave. The follower saw the node's
//! TLS handshake; the leader sees only the follower's. So the follower
//! passes the node's certificate along ([`forward_for`]), and the leader
//! ([`forwarded`]):
//!
//! - takes it only from a caller that holds manager authority now (a
//!   demoted or removed manager forwards nothing),
//! - verifies it as the handshake would have (it chains to the cluster's
//!   roots and is valid now), and
//! - acts for the node that certificate names, never for a node id the
//!   forwarder wrote.
//!
//! A certificate is not a secret, so where the call mints credentials (a
//! renewal) the node's own signature is required as well (the request's
//! `proof`, checked in `ca::service`): a manager cannot renew for a node it
//! is not forwarding for. (swarmkit trusts a manager's forwarded
//! CN/OU/O headers outright: `AuthorizeForwardedRoleAndOrg`.)

use rustls::pki_types::CertificateDer;
use shoal_proto::identity::NodeIdentity;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use super::{Authority, Caller, caller};
use crate::context::ManagerContext;

/// Metadata naming the node a forwarded call is for: its certificate (DER).
pub const FORWARDED_CERT: &str = "shoal-forwarded-cert-bin";

/// The leaf certificate (DER) the direct caller presented, if any.
pub fn peer_cert<T>(request: &Request<T>) -> Option<Vec<u8>> {
    request
        .peer_certs()
        .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()))
}

/// Marks `request` as forwarded for the node whose certificate is `cert`.
pub fn forward_for<T>(request: &mut Request<T>, cert: &[u8]) {
    request
        .metadata_mut()
        .insert_bin(FORWARDED_CERT, MetadataValue::from_bytes(cert));
}

/// The node a forwarded `request` is for, with its certificate (DER), or
/// `None` when the request was not forwarded. Refused unless the direct
/// caller holds manager authority and the certificate verifies against
/// the cluster's roots.
pub fn forwarded<T>(
    ctx: &ManagerContext,
    request: &Request<T>,
) -> Result<Option<(NodeIdentity, Vec<u8>)>, Status> {
    let Some(value) = request.metadata().get_bin(FORWARDED_CERT) else {
        return Ok(None);
    };
    let forwarder = match caller(request) {
        Caller::Node(id) => id,
        _ => {
            return Err(Status::permission_denied(
                "only a manager may forward a node's call",
            ));
        }
    };
    Authority::of(ctx).manager(&forwarder).map_err(|s| {
        tracing::warn!(forwarder = %forwarder.node_id, reason = %s.message(), "refused a forwarded call");
        Status::permission_denied(format!(
            "refusing a call forwarded by node {}: {}",
            forwarder.node_id,
            s.message()
        ))
    })?;
    let cert = value
        .to_bytes()
        .map_err(|_| Status::invalid_argument("the forwarded certificate is not valid metadata"))?
        .to_vec();
    let roots = ctx
        .store
        .view(|t| t.cluster().map(crate::ca::signer::trust_bundle))
        .ok_or_else(|| Status::unavailable("the cluster is not initialized yet"))?;
    let roots = shoal_proto::tls::certs_from_pem(&roots)
        .map_err(|e| Status::internal(format!("the cluster's roots are unusable: {e}")))?;
    let node = shoal_proto::tls::verify_node_certificate(
        &roots,
        &CertificateDer::from(cert.as_slice()),
    )
    .map_err(|e| Status::permission_denied(format!("the forwarded node certificate: {e}")))?;
    if node.cluster_id != forwarder.cluster_id {
        return Err(Status::permission_denied(
            "the forwarded node certificate is for another cluster",
        ));
    }
    Ok(Some((node, cert)))
}
