//! Raft membership over gRPC: a node that joined with a manager token (and
//! so holds a manager certificate) asks the leader to add it as a voter.
//! The leader picks its Raft id, commits the conf change (its context
//! carries the member's address, so every manager learns where to reach
//! it from the log itself), and answers
//! with the members the newcomer starts from. Followers forward.

use ring::rand::{SecureRandom, SystemRandom};
use shoal_proto::identity::NodeRole;
use shoal_proto::raft::raft_membership_client::RaftMembershipClient;
use shoal_proto::raft::raft_membership_server::RaftMembership;
use shoal_proto::raft::{JoinRequest, JoinResponse, LeaveRequest, LeaveResponse, RaftMember};
use tonic::{Request, Response, Status};

use crate::authz::{Caller, caller, require_manager};
use crate::context::{ManagerContext, propose_status};

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

#[tonic::async_trait]
impl RaftMembership for MembershipService {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let who = match caller(&request) {
            Caller::Node(id) if id.role == NodeRole::Manager => id,
            _ => {
                return Err(Status::permission_denied(
                    "only a node holding a manager certificate may join raft",
                ));
            }
        };
        if let Some(channel) = self.ctx.leader_channel()? {
            return RaftMembershipClient::new(channel)
                .join(request.into_inner())
                .await;
        }
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

    async fn leave(
        &self,
        request: Request<LeaveRequest>,
    ) -> Result<Response<LeaveResponse>, Status> {
        let who = require_manager(&request)?;
        if let Some(channel) = self.ctx.leader_channel()? {
            return RaftMembershipClient::new(channel)
                .leave(request.into_inner())
                .await;
        }
        let member = request
            .into_inner()
            .node
            .ok_or_else(|| Status::invalid_argument("no member named"))?;
        if let Caller::Node(id) = &who
            && id.node_id != member.node_id
        {
            return Err(Status::permission_denied(
                "a manager may only remove itself this way",
            ));
        }
        self.ctx
            .raft
            .remove_member(member.raft_id)
            .await
            .map_err(propose_status)?;
        Ok(Response::new(LeaveResponse {}))
    }
}
