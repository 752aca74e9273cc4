//! `swarm join`: a certificate by token through a pinned-CA TLS
//! connection, then Raft membership for a manager.

use super::*;

impl SwarmNode {
    /// `swarm join`.
    pub async fn join(&self, request: SwarmJoinRequest) -> Result<SwarmJoinResponse, Status> {
        let mut inner = self.inner.lock().await;
        if inner.file.is_some() {
            return Err(Status::failed_precondition(ALREADY_IN_SWARM));
        }
        let token: JoinToken = request
            .token
            .trim()
            .parse()
            .map_err(|e: shoal_proto::token::TokenError| Status::invalid_argument(e.to_string()))?;
        let remote = addr::remote(&request.remote_addr);
        let listen = addr::listen(&request.listen_addr).map_err(Status::invalid_argument)?;
        let advertise = addr::advertise(&request.advertise_addr, listen, &addr::interfaces())
            .map_err(Status::invalid_argument)?;

        let bootstrap =
            shoal_proto::tls::bootstrap_client_config(token.root_digest()).map_err(internal)?;
        let key = NodeKey::generate().map_err(internal)?;
        let csr = key.csr_pem().map_err(internal)?;
        let mut ca = NodeCaClient::new(shoal_proto::net::channel(&remote, Arc::new(bootstrap)));
        let call = ca.issue_node_certificate(IssueNodeCertificateRequest {
            csr: csr.into_bytes(),
            token: request.token.trim().to_string(),
            availability: 0,
            proof: Vec::new(),
        });
        let issued = tokio::time::timeout(JOIN_TIMEOUT, call)
            .await
            .map_err(|_| Status::deadline_exceeded(format!("timed out after {JOIN_TIMEOUT:?} joining through {remote}: is a manager listening there?")))?
            .map_err(|s| join_error(&remote, s))?
            .into_inner();
        let creds = NodeCredentials {
            key_pem: key.to_pem(),
            cert_pem: issued.certificate.clone(),
            roots_pem: issued.root_ca.clone(),
        };
        let identity = creds.identity().map_err(internal)?;
        creds.save(&self.creds_dir()).map_err(internal)?;

        let mut file = SwarmFile {
            node_id: identity.node_id.clone(),
            cluster_id: identity.cluster_id.clone(),
            role: identity.role.to_string(),
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            raft_id: 0,
            managers: vec![remote.clone()],
        };
        let tls = NodeTls {
            client: ClientTls::new(creds.client_config().map_err(internal)?),
            creds,
        };
        if identity.role == NodeRole::Manager {
            inner.manager = Some(self.join_raft(&mut file, &tls, &remote).await?);
        }
        file.save(&self.state_dir).map_err(internal)?;
        self.start_agent(&mut inner, &file, tls).map_err(internal)?;
        tracing::info!(node = %file.node_id, role = %file.role, via = %remote, "joined the swarm");
        let response = SwarmJoinResponse {
            node_id: file.node_id.clone(),
            role: file.role.clone(),
        };
        inner.file = Some(file);
        Ok(response)
    }
}

/// A join refused or unreachable, said so a user can act on it.
pub(super) fn join_error(remote: &str, status: Status) -> Status {
    use std::error::Error;
    let mut detail = status.message().to_string();
    let mut source = status.source();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::DeadlineExceeded => {
            Status::unavailable(format!(
                "could not join through the manager at {remote}: {detail}"
            ))
        }
        _ => Status::new(status.code(), detail),
    }
}
