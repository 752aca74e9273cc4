//! `swarm join`: a certificate by token through a pinned-CA TLS
//! connection, then Raft membership for a manager.

use std::sync::Arc;
use std::time::Duration;

use shoal_proto::ca::IssueNodeCertificateRequest;
use shoal_proto::ca::node_ca_client::NodeCaClient;
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::identity::{NodeKey, NodeRole};
use shoal_proto::local::{SwarmJoinRequest, SwarmJoinResponse};
use shoal_proto::token::JoinToken;
use tonic::Status;

use super::{NodeTls, SwarmNode};
use crate::NodeError;
use crate::addr;
use crate::swarm_file::SwarmFile;

/// How long a join may take to get its certificate.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

impl SwarmNode {
    /// `swarm join`.
    pub async fn join(&self, request: SwarmJoinRequest) -> Result<SwarmJoinResponse, NodeError> {
        let mut running = self.transition.lock().await;
        if self.file().is_some() {
            return Err(NodeError::AlreadyInSwarm);
        }
        let token: JoinToken = request.token.trim().parse()?;
        let remote = addr::remote(&request.remote_addr);
        let listen = addr::listen(&request.listen_addr).map_err(NodeError::Address)?;
        let advertise = addr::advertise(&request.advertise_addr, listen, &addr::interfaces())
            .map_err(NodeError::Address)?;

        let bootstrap = shoal_proto::tls::bootstrap_client_config(token.root_digest())?;
        let key = NodeKey::generate()?;
        let csr = key.csr_pem()?;
        let mut ca = NodeCaClient::new(shoal_proto::net::channel(&remote, Arc::new(bootstrap)));
        let call = ca.issue_node_certificate(IssueNodeCertificateRequest {
            csr: csr.into_bytes(),
            token: request.token.trim().to_string(),
            availability: 0,
            proof: Vec::new(),
        });
        let issued = tokio::time::timeout(JOIN_TIMEOUT, call)
            .await
            .map_err(|_| NodeError::JoinTimeout {
                remote: remote.clone(),
                after: JOIN_TIMEOUT,
            })?
            .map_err(|s| join_error(&remote, s))?
            .into_inner();
        let creds = NodeCredentials {
            key_pem: key.to_pem(),
            cert_pem: issued.certificate.clone(),
            roots_pem: issued.root_ca.clone(),
        };
        let identity = creds.identity()?;
        creds.save(&self.machine.creds_dir())?;

        let mut file = SwarmFile {
            node_id: identity.node_id.clone(),
            cluster_id: identity.cluster_id.clone(),
            role: identity.role.to_string(),
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            raft_id: 0,
            managers: vec![remote.clone()],
        };
        let tls = NodeTls::new(creds)?;
        if identity.role == NodeRole::Manager {
            running.manager = Some(self.join_raft(&mut file, &tls, &remote).await?);
        }
        file.save(self.state_dir())?;
        self.start_member(&mut running, &file, tls);
        tracing::info!(node = %file.node_id, role = %file.role, via = %remote, "joined the swarm");
        let response = SwarmJoinResponse {
            node_id: file.node_id.clone(),
            role: file.role.clone(),
        };
        self.view.send_modify(|v| v.file = Some(file));
        Ok(response)
    }
}

/// A join refused or unreachable, said so a user can act on it: the
/// innermost cause, which names what failed (a refused connection, a
/// certificate the token does not pin).
pub(super) fn join_error(remote: &str, status: Status) -> NodeError {
    use std::error::Error;
    let mut detail = status.message().to_string();
    let mut source = status.source();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::DeadlineExceeded => {
            NodeError::JoinUnreachable {
                remote: remote.to_string(),
                detail,
            }
        }
        code => NodeError::JoinRefused {
            code,
            message: detail,
        },
    }
}
