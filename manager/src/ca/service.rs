//! The CA's gRPC face on the cluster port. A joining node, holding only a
//! token, asks for a certificate: the leader checks the token against the
//! cluster's two, mints a node id, signs the CSR (whatever subject it asks
//! for, the certificate names the id and role the cluster chose), records
//! the node, and returns the certificate in the same call. A node renewing
//! presents its current certificate instead of a token, and is only ever
//! renewed as itself. Followers forward to the leader, marking the request
//! so the leader judges the original caller, not the forwarding manager: a
//! forwarded renewal carries the node's certificate and the node's
//! signature over the CSR (`proof`), so no manager can renew for a node
//! it is not forwarding for (`crate::authz::forward`).

use std::time::Duration;

use shoal_proto::ca::node_ca_client::NodeCaClient;
use shoal_proto::ca::node_ca_server::NodeCa;
use shoal_proto::ca::{
    IssueNodeCertificateRequest, IssueNodeCertificateResponse, NodeCertificateStatusRequest,
    NodeCertificateStatusResponse, ca_server,
};
use shoal_proto::identity::{NodeIdentity, NodeRole, new_node_id, verify_renewal};
use shoal_proto::objects::{
    self, Node, NodeCertificate, NodeSpec, NodeStatus, node_certificate, node_status,
};
use tonic::{Request, Response, Status};

use super::signer::{Signer, signer};
use super::{DEFAULT_NODE_CERT_EXPIRY, JoinTokens};
use crate::authz::{Authority, Caller, caller, forward_for, forwarded, peer_cert, require_node};
use crate::context::ManagerContext;

/// Metadata a follower adds when it forwards a token-bearing join. (A
/// renewal is forwarded with the node's certificate: `authz::forward`.)
const FORWARDED_JOIN: &str = "shoal-forwarded-join";

/// Serves `NodeCA` and `CA`.
#[derive(Debug, Clone)]
pub struct CaService {
    ctx: ManagerContext,
}

impl CaService {
    /// The CA service of a manager.
    pub fn new(ctx: ManagerContext) -> CaService {
        CaService { ctx }
    }

    fn signer(&self) -> Result<(Signer, objects::Cluster), Status> {
        let cluster = self
            .ctx
            .store
            .view(|t| t.cluster().cloned())
            .ok_or_else(|| Status::unavailable("the cluster is not initialized yet"))?;
        let signer = signer(&cluster)
            .map_err(|e| Status::internal(format!("the cluster root CA is unusable: {e}")))?;
        Ok((signer, cluster))
    }

    async fn issue(
        &self,
        request: IssueNodeCertificateRequest,
        renewing: Option<NodeIdentity>,
    ) -> Result<IssueNodeCertificateResponse, Status> {
        let (signer, cluster) = self.signer()?;
        let (node_id, role) = match &renewing {
            Some(who) => {
                let node = self
                    .ctx
                    .store
                    .view(|t| t.get::<Node>(&who.node_id).cloned());
                let node = node.ok_or_else(|| {
                    Status::permission_denied(format!(
                        "node {} is not part of the cluster",
                        who.node_id
                    ))
                })?;
                let role = if node
                    .spec
                    .as_ref()
                    .is_some_and(|s| s.desired_role() == objects::NodeRole::Manager)
                {
                    NodeRole::Manager
                } else {
                    NodeRole::Worker
                };
                (who.node_id.clone(), role)
            }
            None => {
                let tokens = cluster
                    .join_tokens
                    .as_ref()
                    .ok_or_else(|| Status::internal("the cluster has no join tokens"))?;
                let tokens = JoinTokens {
                    worker: parse_token(&tokens.worker)?,
                    manager: parse_token(&tokens.manager)?,
                };
                let role = tokens
                    .role_for(&request.token)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                (new_node_id(), role)
            }
        };
        let identity = NodeIdentity {
            node_id: node_id.clone(),
            role,
            cluster_id: cluster.id.clone(),
        };
        let expiry = cluster
            .spec
            .as_ref()
            .and_then(|s| s.ca_config.as_ref())
            .and_then(|c| c.node_cert_expiry)
            .and_then(|d| Duration::try_from(d).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_NODE_CERT_EXPIRY);
        let csr = String::from_utf8_lossy(&request.csr).into_owned();
        let leaf = signer
            .ca
            .issue(&csr, &identity, &[], expiry)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let cert = signer.chain(leaf);
        let proto_role = match role {
            NodeRole::Manager => objects::NodeRole::Manager,
            NodeRole::Worker => objects::NodeRole::Worker,
        };
        let certificate = NodeCertificate {
            role: proto_role as i32,
            csr: request.csr.clone(),
            certificate: cert.clone().into_bytes(),
            status: node_certificate::Status::Issued as i32,
            err: String::new(),
            issuer_digest: signer.ca.digest().to_string(),
        };
        let availability = request.availability;
        self.ctx
            .update(|tx| {
                match tx.tables().get::<Node>(&node_id).cloned() {
                    Some(mut node) => {
                        node.certificate = Some(certificate);
                        node.role = proto_role as i32;
                        tx.update(node)?;
                    }
                    None => {
                        let node = Node {
                            id: node_id.clone(),
                            spec: Some(NodeSpec {
                                desired_role: proto_role as i32,
                                availability,
                                ..Default::default()
                            }),
                            role: proto_role as i32,
                            certificate: Some(certificate),
                            status: Some(NodeStatus {
                                state: node_status::State::Unknown as i32,
                                ..Default::default()
                            }),
                            ..Default::default()
                        };
                        tx.create(node)?;
                    }
                }
                Ok::<_, Status>(())
            })
            .await?;
        tracing::info!(node = %node_id, %role, renewal = renewing.is_some(), "issued a node certificate");
        Ok(IssueNodeCertificateResponse {
            node_id,
            availability,
            certificate: cert,
            root_ca: signer.bundle.clone(),
            role: proto_role as i32,
        })
    }
}

fn parse_token(text: &str) -> Result<shoal_proto::token::JoinToken, Status> {
    text.parse()
        .map_err(|e| Status::internal(format!("stored join token unusable: {e}")))
}

/// Whom an `IssueNodeCertificate` call is for.
enum Subject {
    /// A node joining with a token (it has no certificate yet).
    Join,
    /// A node renewing: the node its certificate names, and that
    /// certificate (DER), which a follower passes to the leader.
    Renew(NodeIdentity, Vec<u8>),
}

impl CaService {
    /// Decides whom a request is for. A renewal is always for the node
    /// whose certificate asks (over TLS here, or forwarded by a manager
    /// with the node's certificate and its signature over the CSR).
    fn subject(&self, request: &Request<IssueNodeCertificateRequest>) -> Result<Subject, Status> {
        if request.metadata().contains_key(FORWARDED_JOIN) {
            // Only a manager relays a join; the token is judged as ever.
            return match caller(request) {
                Caller::Node(forwarder) => {
                    Authority::of(&self.ctx).manager(&forwarder)?;
                    Ok(Subject::Join)
                }
                _ => Err(Status::permission_denied(
                    "only a manager may forward a join",
                )),
            };
        }
        if let Some((node, cert)) = forwarded(&self.ctx, request)? {
            let body = request.get_ref();
            verify_renewal(&cert, &body.csr, &body.proof).map_err(|_| {
                tracing::warn!(node = %node.node_id, "refused a forwarded renewal without the node's proof");
                Status::permission_denied(format!(
                    "the renewal forwarded for node {} is not signed by that node's key",
                    node.node_id
                ))
            })?;
            return Ok(Subject::Renew(node, cert));
        }
        match caller(request) {
            Caller::Anonymous => Ok(Subject::Join),
            Caller::Node(id) => Ok(Subject::Renew(id, peer_cert(request).unwrap_or_default())),
            Caller::Local => Err(Status::permission_denied(
                "certificates are requested by nodes, not the CLI",
            )),
        }
    }
}

#[tonic::async_trait]
impl NodeCa for CaService {
    async fn issue_node_certificate(
        &self,
        request: Request<IssueNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        let subject = self.subject(&request)?;
        if let Some(channel) = self.ctx.leader_channel()? {
            let mut forward = Request::new(request.into_inner());
            match &subject {
                Subject::Join => {
                    forward.metadata_mut().insert(
                        FORWARDED_JOIN,
                        tonic::metadata::MetadataValue::from_static("1"),
                    );
                }
                Subject::Renew(_, cert) => forward_for(&mut forward, cert),
            }
            return NodeCaClient::new(channel)
                .issue_node_certificate(forward)
                .await;
        }
        let renewing = match subject {
            Subject::Join => None,
            Subject::Renew(node, _) => Some(node),
        };
        self.issue(request.into_inner(), renewing)
            .await
            .map(Response::new)
    }

    async fn node_certificate_status(
        &self,
        request: Request<NodeCertificateStatusRequest>,
    ) -> Result<Response<NodeCertificateStatusResponse>, Status> {
        let who = require_node(&request)?;
        let node_id = request.into_inner().node_id;
        if who.node_id != node_id {
            Authority::of(&self.ctx)
                .manager(&who)
                .map_err(|_| Status::permission_denied("a node may only ask about itself"))?;
        }
        let (signer, _) = self.signer()?;
        let node = self.ctx.store.view(|t| t.get::<Node>(&node_id).cloned());
        let node = node.ok_or_else(|| Status::not_found(format!("node {node_id} not found")))?;
        Ok(Response::new(NodeCertificateStatusResponse {
            desired_role: node.spec.as_ref().map_or(0, |s| s.desired_role),
            certificate: node.certificate,
            root_ca: signer.bundle.into_bytes(),
        }))
    }
}

#[tonic::async_trait]
impl ca_server::Ca for CaService {
    async fn get_root_ca_certificate(
        &self,
        _: Request<shoal_proto::ca::GetRootCaCertificateRequest>,
    ) -> Result<Response<shoal_proto::ca::GetRootCaCertificateResponse>, Status> {
        let (signer, _) = self.signer()?;
        Ok(Response::new(
            shoal_proto::ca::GetRootCaCertificateResponse {
                certificate: signer.bundle.into_bytes(),
            },
        ))
    }

    async fn get_unlock_key(
        &self,
        request: Request<shoal_proto::ca::GetUnlockKeyRequest>,
    ) -> Result<Response<shoal_proto::ca::GetUnlockKeyResponse>, Status> {
        crate::authz::require_manager(&self.ctx, &request)?;
        Err(Status::failed_precondition(
            "autolock is not enabled on this cluster",
        ))
    }
}
