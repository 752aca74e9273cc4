//! Who is calling, and may they? Three kinds of caller reach a manager:
//! the local CLI over the daemon's Unix socket (root only, by file mode),
//! nodes over mutual TLS, and nodes without a certificate yet, which may
//! only ask the CA to join. Every RPC handler starts with one of the
//! checks below.
//!
//! A certificate proves who a node is and lasts 90 days; what it may do
//! follows the store. A node has **manager authority** only while all of
//! these hold:
//!
//! - its certificate says manager (OU `swarm-manager`);
//! - it was not removed (`cluster.removed_nodes`, the TLS deny list);
//! - its node object exists, and both its desired role (`node
//!   promote/demote`) and its current role (what the CA last issued) are
//!   manager.
//!
//! So `node demote` takes a manager's control-API and Raft rights away in
//! the commit that demotes it, though its certificate still says manager
//! until it renews; a promoted node gains them only once the CA has issued
//! its manager certificate (the same commit sets its role). Each manager
//! judges by its own store, which trails the leader's by a commit at most.
//! Raft adds its own membership checks (`raft::service`).
//!
//! Checks are made per call; long-lived streams opened under an authority
//! end when it is lost ([`Revocable`], [`Authority::revoked`]). A removed
//! node's connections are closed whole (`shoal_proto::net::PeerStream`).
//! Calls a follower forwards for a node carry the node's certificate
//! ([`forward`]).

pub mod forward;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use shoal_proto::identity::{NodeIdentity, NodeRole};
use shoal_proto::objects::{self, Node};
use shoal_proto::tls::{DenyList, peer_identity};
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Status};

use crate::context::ManagerContext;
use crate::store::{Changed, Commit, Store, Tables};

pub use forward::{FORWARDED_CERT, forward_for, forwarded, peer_cert};

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

/// Identifies the caller of `request` by its certificate alone (what it
/// is, not what it may do: see [`require_manager`]).
pub fn caller<T>(request: &Request<T>) -> Caller {
    if request.extensions().get::<UdsConnectInfo>().is_some() {
        return Caller::Local;
    }
    match request.peer_certs() {
        Some(certs) => peer_identity(&certs).map_or(Caller::Anonymous, Caller::Node),
        None => Caller::Anonymous,
    }
}

/// Admits the local CLI and nodes with manager authority (see the module
/// docs): a demoted manager's certificate is refused.
pub fn require_manager<T>(ctx: &ManagerContext, request: &Request<T>) -> Result<Caller, Status> {
    match caller(request) {
        Caller::Local => Ok(Caller::Local),
        Caller::Node(id) => {
            Authority::of(ctx).manager(&id)?;
            Ok(Caller::Node(id))
        }
        Caller::Anonymous => Err(Status::unauthenticated("a manager certificate is required")),
    }
}

/// Admits any node with a certificate; returns who it is. (A removed
/// node never gets this far: its connections are refused and closed.)
pub fn require_node<T>(request: &Request<T>) -> Result<NodeIdentity, Status> {
    match caller(request) {
        Caller::Node(id) => Ok(id),
        Caller::Local => Err(Status::permission_denied(
            "this call is for nodes, not the CLI",
        )),
        Caller::Anonymous => Err(Status::unauthenticated("a node certificate is required")),
    }
}

/// Which manager right is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The control API, logs, the CA's manager calls, forwarding.
    Control,
    /// Raft between members. A manager that just joined has an empty
    /// store until its first snapshot arrives: until then its Raft peers
    /// are judged by Raft membership alone (`raft::service`).
    Raft,
}

/// Decides manager authority from the store and the deny list.
#[derive(Clone)]
pub struct Authority {
    store: Arc<Store>,
    deny: DenyList,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authority")
    }
}

impl Authority {
    /// Judges by `store` and `deny`.
    pub fn new(store: Arc<Store>, deny: DenyList) -> Authority {
        Authority { store, deny }
    }

    /// The authority of a running manager.
    pub fn of(ctx: &ManagerContext) -> Authority {
        Authority::new(ctx.store.clone(), ctx.deny.clone())
    }

    /// Whether `id` (from a verified certificate) may act as a manager.
    pub fn manager(&self, id: &NodeIdentity) -> Result<(), Status> {
        self.check(id, Scope::Control)
    }

    /// Whether `id` may act as a manager for `scope`.
    pub fn check(&self, id: &NodeIdentity, scope: Scope) -> Result<(), Status> {
        if id.role != NodeRole::Manager {
            return Err(Status::permission_denied(format!(
                "node {} is a worker: only managers may call this",
                id.node_id
            )));
        }
        if self.deny.is_denied(&id.node_id) {
            return Err(removed(&id.node_id));
        }
        self.store.view(|t| standing(t, &id.node_id, scope))
    }

    /// Completes, with the status to end the stream with, once `id` no
    /// longer holds manager authority for `scope` (at once if it does not
    /// now). Looks again at every commit that touches a node or the
    /// cluster object.
    pub async fn revoked(self, id: NodeIdentity, scope: Scope) -> Status {
        let mut commits = self.store.watch();
        loop {
            if let Err(status) = self.check(&id, scope) {
                tracing::info!(node = %id.node_id, reason = %status.message(), "ending a stream: its caller lost manager authority");
                return status;
            }
            loop {
                match commits.recv().await {
                    Ok(commit) if !touches_authority(&commit) => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => break,
                    // The manager is stopping; its server ends the stream.
                    Err(RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        }
    }
}

fn removed(node_id: &str) -> Status {
    Status::permission_denied(format!("node {node_id} was removed from the cluster"))
}

/// Whether a commit may change anyone's authority.
fn touches_authority(commit: &Commit) -> bool {
    commit.reset
        || commit
            .events
            .iter()
            .any(|e| matches!(e.object, Changed::Node(_) | Changed::Cluster(_)))
}

/// What the store says of node `node_id`'s manager authority.
pub fn standing(tables: &Tables, node_id: &str, scope: Scope) -> Result<(), Status> {
    let Some(cluster) = tables.cluster() else {
        return match scope {
            Scope::Raft => Ok(()),
            Scope::Control => Err(Status::unavailable(
                "this manager has not caught up with the cluster yet; retry shortly",
            )),
        };
    };
    if cluster.removed_nodes.iter().any(|n| n == node_id) {
        return Err(removed(node_id));
    }
    // Raft peers are judged by the membership the log itself carries
    // (`raft::service`), not by this store: a member that is catching up
    // must accept the leader its older store may not know as a manager.
    if scope == Scope::Raft {
        return Ok(());
    }
    let node = tables.get::<Node>(node_id).ok_or_else(|| {
        Status::permission_denied(format!("node {node_id} is not part of the cluster"))
    })?;
    let desired = node
        .spec
        .as_ref()
        .map_or(objects::NodeRole::Worker, |s| s.desired_role());
    if desired != objects::NodeRole::Manager {
        return Err(Status::permission_denied(format!(
            "node {node_id} was demoted to a worker: its manager certificate no longer grants manager rights"
        )));
    }
    if node.role() != objects::NodeRole::Manager {
        return Err(Status::permission_denied(format!(
            "node {node_id} is not a manager yet: its promotion completes when it renews its certificate"
        )));
    }
    Ok(())
}

/// A response stream that ends with `PermissionDenied` once its caller
/// loses the manager authority it was opened with (the local CLI never
/// does).
pub struct Revocable<S> {
    inner: S,
    revoked: Option<Pin<Box<dyn Future<Output = Status> + Send>>>,
    ended: bool,
}

impl<S> Revocable<S> {
    /// `inner`, for `caller`, on the manager `ctx`.
    pub fn new(ctx: &ManagerContext, caller: &Caller, inner: S) -> Revocable<S> {
        let revoked = match caller {
            Caller::Node(id) => Some(Box::pin(
                Authority::of(ctx).revoked(id.clone(), Scope::Control),
            )
                as Pin<Box<dyn Future<Output = Status> + Send>>),
            Caller::Local | Caller::Anonymous => None,
        };
        Revocable {
            inner,
            revoked,
            ended: false,
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Revocable<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocable")
            .field("inner", &self.inner)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<S, T> Stream for Revocable<S>
where
    S: Stream<Item = Result<T, Status>> + Unpin,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(revoked) = self.revoked.as_mut()
            && let Poll::Ready(status) = revoked.as_mut().poll(cx)
        {
            self.ended = true;
            return Poll::Ready(Some(Err(status)));
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests;
