//! What renewal asks the CA: the roots the cluster trusts and the role it
//! wants for this node, and a new certificate. A renewal is a new key and
//! CSR sent over mutual TLS with the current certificate.

use std::time::Duration;

use shoal_proto::ca::node_ca_client::NodeCaClient;
use shoal_proto::ca::{IssueNodeCertificateRequest, NodeCertificateStatusRequest};
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::identity::{NodeKey, NodeRole};
use shoal_proto::net::ClientTls;
use shoal_proto::objects;

use crate::NodeError;

/// How long the CA may take to issue.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(10);

/// The roots the cluster trusts and the role it wants this node to have.
pub async fn wanted(
    manager: &str,
    tls: &ClientTls,
    node_id: &str,
) -> Result<(String, NodeRole), NodeError> {
    let mut ca = NodeCaClient::new(shoal_proto::net::channel(manager, tls.clone()));
    let reply = ca
        .node_certificate_status(NodeCertificateStatusRequest {
            node_id: node_id.to_string(),
        })
        .await
        .map_err(|s| NodeError::CaRefused(s.message().to_string()))?
        .into_inner();
    let role = if reply.desired_role == objects::NodeRole::Manager as i32 {
        NodeRole::Manager
    } else {
        NodeRole::Worker
    };
    Ok((String::from_utf8(reply.root_ca)?, role))
}

/// New credentials for this node from the CA at `manager`.
pub async fn renew(
    creds: &NodeCredentials,
    manager: &str,
    tls: &ClientTls,
) -> Result<NodeCredentials, NodeError> {
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
    let issued = tokio::time::timeout(ISSUE_TIMEOUT, ca.issue_node_certificate(request))
        .await
        .map_err(|_| NodeError::CaTimeout)?
        .map_err(|s| NodeError::CaRefused(s.message().to_string()))?
        .into_inner();
    let renewed = NodeCredentials {
        key_pem: key.to_pem(),
        cert_pem: issued.certificate,
        roots_pem: issued.root_ca,
    };
    if renewed.identity()?.node_id != creds.identity()?.node_id {
        return Err(NodeError::ForeignCertificate);
    }
    Ok(renewed)
}
