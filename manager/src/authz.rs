//! Who is calling, and may they? Three kinds of caller reach a manager:
//! the local CLI over the daemon's Unix socket (root only, by file mode),
//! nodes over mutual TLS (role from the certificate's OU), and nodes
//! without a certificate yet, which may only ask the CA to join. Every RPC
//! handler starts with one of the checks below.

use shoal_proto::identity::{NodeIdentity, NodeRole};
use shoal_proto::tls::peer_identity;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Status};

/// The caller of an RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The CLI on this machine, through the Unix socket.
    Local,
    /// A node of the cluster, by its certificate.
    Node(NodeIdentity),
    /// Someone with no certificate (a node about to join).
    Anonymous,
}

/// Docker's message for cluster commands sent to a non-manager.
pub const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"shoal swarm init\" or \"shoal swarm join\" to connect this node to swarm and try again.";

/// Identifies the caller of `request`.
pub fn caller<T>(request: &Request<T>) -> Caller {
    if request.extensions().get::<UdsConnectInfo>().is_some() {
        return Caller::Local;
    }
    match request.peer_certs() {
        Some(certs) => peer_identity(&certs).map_or(Caller::Anonymous, Caller::Node),
        None => Caller::Anonymous,
    }
}

/// Admits the local CLI and managers.
pub fn require_manager<T>(request: &Request<T>) -> Result<Caller, Status> {
    match caller(request) {
        c @ (Caller::Local
        | Caller::Node(NodeIdentity {
            role: NodeRole::Manager,
            ..
        })) => Ok(c),
        Caller::Node(id) => Err(Status::permission_denied(format!(
            "node {} is a worker: only managers may call this",
            id.node_id
        ))),
        Caller::Anonymous => Err(Status::unauthenticated("a manager certificate is required")),
    }
}

/// Admits any node with a certificate; returns who it is.
pub fn require_node<T>(request: &Request<T>) -> Result<NodeIdentity, Status> {
    match caller(request) {
        Caller::Node(id) => Ok(id),
        Caller::Local => Err(Status::permission_denied(
            "this call is for nodes, not the CLI",
        )),
        Caller::Anonymous => Err(Status::unauthenticated("a node certificate is required")),
    }
}
