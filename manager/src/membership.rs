//! Raft membership over gRPC: a node that joined with a manager token (and
//! so holds a manager certificate) asks the leader to add it as a voter.
//! The leader picks its Raft id, commits the conf change (its context
//! carries the member's address, so every manager learns where to reach
//! it from the log itself), and answers
//! with the members the newcomer starts from. Followers forward, passing
//! the joiner's certificate (`crate::authz::forward`): the member is
//! recorded under the joiner's node id, never the forwarder's. `Leave`
//! removes only the caller's own member.

use ring::rand::{SecureRandom, SystemRandom};
use shoal_proto::identity::{NodeIdentity, NodeRole};
use shoal_proto::raft::raft_membership_client::RaftMembershipClient;
use shoal_proto::raft::raft_membership_server::RaftMembership;
use shoal_proto::raft::{JoinRequest, JoinResponse, LeaveRequest, LeaveResponse, RaftMember};
use tonic::{Request, Response, Status};

use crate::authz::{Authority, Caller, caller, forward_for, forwarded, peer_cert};
use crate::context::ManagerContext;
use crate::grpc_status::propose_status;

/// Serves `RaftMembership`.
#[derive(Debug, Clone)]
pub struct MembershipService {
    ctx: ManagerContext,
}

impl MembershipService {
    /// The membership service of a manager.
    pub fn new(ctx: ManagerContext) -> MembershipService {
        MembershipService { ctx }
    }
}

/// A fresh Raft id: random, non-zero, not in use.
fn new_raft_id(taken: impl Fn(u64) -> bool) -> Result<u64, Status> {
    let rng = SystemRandom::new();
    loop {
        let mut bytes = [0u8; 8];
        rng.fill(&mut bytes)
            .map_err(|_| Status::internal("no randomness for a raft id"))?;
        let id = u64::from_be_bytes(bytes) >> 1;
        if id != 0 && !taken(id) {
            return Ok(id);
        }
    }
}

impl MembershipService {
    /// The node a membership call is for: the caller, or the node a
    /// forwarding manager vouches for with its certificate (never a node
    /// named in the body). Only a manager certificate may join or leave.
    fn subject<T>(&self, request: &Request<T>) -> Result<(NodeIdentity, Vec<u8>), Status> {
        let (who, cert) = match forwarded(&self.ctx, request)? {
            Some(forwarded) => forwarded,
            None => match caller(request) {
                Caller::Node(id) => (id, peer_cert(request).unwrap_or_default()),
                Caller::Local => {
                    return Err(Status::permission_denied(
                        "raft membership is for nodes, not the CLI",
                    ));
                }
                Caller::Anonymous => {
                    return Err(Status::unauthenticated("a manager certificate is required"));
                }
            },
        };
        if who.role != NodeRole::Manager {
            return Err(Status::permission_denied(
                "only a node holding a manager certificate may join or leave raft",
            ));
        }
        Ok((who, cert))
    }
}

#[tonic::async_trait]
impl RaftMembership for MembershipService {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let (who, cert) = self.subject(&request)?;
        if let Some(channel) = self.ctx.leader_channel()? {
            // The leader judges the joiner against its own store (this
            // follower's may not have the joiner's new role yet).
            let mut forward = Request::new(request.into_inner());
            forward_for(&mut forward, &cert);
            return RaftMembershipClient::new(channel).join(forward).await;
        }
        Authority::of(&self.ctx).manager(&who)?;
        let addr = request.into_inner().addr;
        let status = self.ctx.raft.status();
        let existing = status
            .members
            .values()
            .find(|m| m.node_id == who.node_id)
            .cloned();
        let raft_id = match existing {
            Some(member) if member.addr == addr => member.raft_id,
            _ => {
                let raft_id = new_raft_id(|id| status.members.contains_key(&id))?;
                let member = RaftMember {
                    raft_id,
                    node_id: who.node_id.clone(),
                    addr: addr.clone(),
                };
                self.ctx
                    .raft
                    .add_member(member)
                    .await
                    .map_err(propose_status)?;
                raft_id
            }
        };
        // No store write here: with the new voter counted but not yet
        // running, nothing more can commit until it starts. `node ls`
        // reads manager status from Raft membership itself.
        tracing::info!(node = %who.node_id, raft_id = format_args!("{raft_id:x}"), %addr, "manager joined raft");
        let members = self.ctx.raft.status().members.into_values().collect();
        Ok(Response::new(JoinResponse {
            raft_id,
            members,
            removed_members: Vec::new(),
        }))
    }

    /// Removes the caller's own Raft member (as `swarm leave` of a manager
    /// would): the body may name which of its members, never another
    /// node's. Removing other managers is `node demote` / `node rm`.
    async fn leave(
        &self,
        request: Request<LeaveRequest>,
    ) -> Result<Response<LeaveResponse>, Status> {
        let (who, cert) = self.subject(&request)?;
        if let Some(channel) = self.ctx.leader_channel()? {
            let mut forward = Request::new(request.into_inner());
            forward_for(&mut forward, &cert);
            return RaftMembershipClient::new(channel).leave(forward).await;
        }
        let asked = request
            .into_inner()
            .node
            .map(|m| m.raft_id)
            .filter(|&id| id != 0);
        let status = self.ctx.raft.status();
        let own: Vec<u64> = status
            .members
            .values()
            .filter(|m| m.node_id == who.node_id)
            .map(|m| m.raft_id)
            .collect();
        let raft_id = match asked {
            Some(id) if own.contains(&id) => id,
            Some(id) => {
                tracing::warn!(node = %who.node_id, raft_id = format_args!("{id:x}"), "refused a leave for another node's raft member");
                return Err(Status::permission_denied(format!(
                    "raft member {id:x} is not node {}'s: a manager may only remove itself this way",
                    who.node_id
                )));
            }
            None => *own.first().ok_or_else(|| {
                Status::not_found(format!("node {} is not a raft member", who.node_id))
            })?,
        };
        self.ctx
            .raft
            .remove_member(raft_id)
            .await
            .map_err(propose_status)?;
        Ok(Response::new(LeaveResponse {}))
    }
}
