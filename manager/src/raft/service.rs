//! The Raft gRPC service: messages from peers into the local node.
//!
//! A peer is admitted by its certificate: it must hold manager authority
//! (its certificate says manager, and this manager's store agrees it was
//! neither demoted nor removed: [`crate::authz`]). Then each message must
//! come from a Raft member that is that node (`from` is one of the raft
//! ids the membership known here maps to the certificate's node id),
//! address this member, and be of a kind members send each other
//! ([`super::guard`]). Anything else ends the stream with an error and is
//! logged; what the node's log state says is unsafe is dropped later, in
//! the node's loop. A stream ends as soon as its sender loses its
//! authority, and membership is checked again for every batch.

use protobuf::Message as _;
use raft::prelude::{Message, MessageType};
use shoal_proto::identity::NodeIdentity;
use shoal_proto::raft::raft_server::Raft;
use shoal_proto::raft::{
    RaftMessage, RaftMessageAck, RaftMessageChunk, ResolveAddressRequest, ResolveAddressResponse,
};
use shoal_proto::tls::peer_identity;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::guard;
use super::node::RaftHandle;
use crate::authz::{Authority, Scope};

/// Largest snapshot accepted from a peer.
pub(super) const MAX_SNAPSHOT: usize = 1 << 30;

/// Serves [`Raft`] for the local node.
#[derive(Clone)]
pub struct RaftService {
    handle: RaftHandle,
    authority: Authority,
    /// Ends the peers' long-lived streams, which a graceful server
    /// shutdown would otherwise wait for forever.
    stopping: CancellationToken,
}

impl RaftService {
    /// A service feeding `handle`, admitting peers `authority` allows,
    /// until `stopping` fires.
    pub fn new(
        handle: RaftHandle,
        authority: Authority,
        stopping: CancellationToken,
    ) -> RaftService {
        RaftService {
            handle,
            authority,
            stopping,
        }
    }

    /// The calling peer, if it may speak Raft at all.
    fn peer<T>(&self, request: &Request<T>) -> Result<NodeIdentity, Status> {
        let peer = request
            .peer_certs()
            .and_then(|certs| peer_identity(&certs))
            .ok_or_else(|| Status::unauthenticated("a manager certificate is required"))?;
        self.authority.check(&peer, Scope::Raft).map_err(|s| {
            Status::new(
                s.code(),
                format!("raft is for managers only: {}", s.message()),
            )
        })?;
        Ok(peer)
    }

    /// Checks `messages` from `peer` against the membership known now
    /// (see [`admit`]).
    fn admit(&self, peer: &NodeIdentity, messages: &[Message]) -> Result<(), Status> {
        admit(&self.handle.status(), peer, messages)
    }

    async fn step(&self, message: Message) -> Result<(), Status> {
        self.handle
            .step(message)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))
    }
}

/// Checks `messages` from `peer` against the membership known here
/// (`status`), before they reach the node's loop.
/// A member catching up may not know a newer member yet (one that
/// joined while it was down, now its leader): an unknown id is let
/// through, unless the certificate's node already has a known id or
/// the id was seen removed. Judging by this member's own store or
/// membership more strictly would lock a lagging member out of the
/// log that would bring it up to date.
pub fn admit(
    status: &super::node::RaftStatus,
    peer: &NodeIdentity,
    messages: &[Message],
) -> Result<(), Status> {
    let own: Vec<u64> = status
        .members
        .values()
        .filter(|m| m.node_id == peer.node_id)
        .map(|m| m.raft_id)
        .collect();
    let refuse = |status: Status| {
        tracing::warn!(node = %peer.node_id, reason = %status.message(), "refused raft messages");
        Err(status)
    };
    for m in messages {
        if status.removed_ids.contains(&m.from) {
            return refuse(Status::permission_denied(format!(
                "raft member {:x} was removed from the cluster",
                m.from
            )));
        }
        let spoofed = match status.members.get(&m.from) {
            Some(member) => member.node_id != peer.node_id,
            None => !own.is_empty(),
        };
        if spoofed {
            return refuse(Status::permission_denied(format!(
                "a message from raft member {:x} sent with node {}'s certificate",
                m.from, peer.node_id
            )));
        }
        if m.to != status.id {
            return refuse(Status::invalid_argument(format!(
                "a message for raft member {:x} sent to {:x}",
                m.to, status.id
            )));
        }
        let kind = m.get_msg_type();
        if !guard::peer_kind(kind) {
            return refuse(Status::invalid_argument(format!(
                "{kind:?} is not sent between members"
            )));
        }
        if kind == MessageType::MsgSnapshot
            && let Err(e) = guard::check_snapshot_data(m)
        {
            return refuse(Status::invalid_argument(e));
        }
    }
    Ok(())
}

/// Completes once a raft member of node `node_id` known now is removed
/// (its demotion or removal): its open stream ends at once.
async fn left_raft(
    mut status: tokio::sync::watch::Receiver<super::node::RaftStatus>,
    node_id: String,
) -> Status {
    let ids: Vec<u64> = status
        .borrow()
        .members
        .values()
        .filter(|m| m.node_id == node_id)
        .map(|m| m.raft_id)
        .collect();
    loop {
        if ids
            .iter()
            .any(|id| status.borrow().removed_ids.contains(id))
        {
            return Status::permission_denied(format!(
                "node {node_id} left the raft cluster (demoted or removed)"
            ));
        }
        if status.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// A peer's message as it arrives: one of a `RaftMessage`'s `messages`,
/// or a whole `StreamRaftMessage` transfer.
pub fn decode(bytes: &[u8]) -> Result<Message, Status> {
    Message::parse_from_bytes(bytes)
        .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn pipe_raft_messages(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<RaftMessageAck>, Status> {
        let peer = self.peer(&request)?;
        let mut revoked = Box::pin(self.authority.clone().revoked(peer.clone(), Scope::Raft));
        let mut left = Box::pin(left_raft(self.handle.watch_status(), peer.node_id.clone()));
        let mut stream = request.into_inner();
        loop {
            let batch = tokio::select! {
                _ = self.stopping.cancelled() => {
                    return Err(Status::unavailable("this manager is stopping"));
                }
                status = &mut revoked => return Err(status),
                status = &mut left => return Err(status),
                batch = stream.message() => batch?,
            };
            let Some(batch) = batch else { break };
            let messages = batch
                .messages
                .iter()
                .map(|bytes| decode(bytes))
                .collect::<Result<Vec<_>, _>>()?;
            self.admit(&peer, &messages)?;
            for message in messages {
                self.step(message).await?;
            }
        }
        Ok(Response::new(RaftMessageAck {}))
    }

    async fn stream_raft_message(
        &self,
        request: Request<Streaming<RaftMessageChunk>>,
    ) -> Result<Response<RaftMessageAck>, Status> {
        let peer = self.peer(&request)?;
        let mut stream = request.into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if bytes.len() + chunk.data.len() > MAX_SNAPSHOT {
                return Err(Status::resource_exhausted("snapshot larger than 1 GiB"));
            }
            bytes.extend_from_slice(&chunk.data);
            if chunk.last {
                let message = decode(&bytes)?;
                // Judged again now: the transfer may have taken a while.
                self.authority.check(&peer, Scope::Raft)?;
                self.admit(&peer, std::slice::from_ref(&message))?;
                self.step(message).await?;
                return Ok(Response::new(RaftMessageAck {}));
            }
        }
        Err(Status::invalid_argument(
            "snapshot stream ended before its last chunk",
        ))
    }

    async fn resolve_address(
        &self,
        request: Request<ResolveAddressRequest>,
    ) -> Result<Response<ResolveAddressResponse>, Status> {
        self.peer(&request)?;
        let id = request.into_inner().raft_id;
        let member = self.handle.status().members.get(&id).cloned();
        member
            .map(|m| Response::new(ResolveAddressResponse { addr: m.addr }))
            .ok_or_else(|| Status::not_found(format!("raft member {id:x} is not in the cluster")))
    }
}
