//! Nodes: list (with live manager status from Raft), inspect, update
//! (availability, labels), remove (workers; a removed node's certificate
//! is refused by every manager from then on).

use shoal_proto::control::*;
use shoal_proto::objects::{ManagerStatus, Node, NodeRole, manager_status, node_status};
use tonic::Status;

use super::filters::matches;
use crate::context::ManagerContext;
use crate::raft::node::RaftStatus;
use crate::store::Tables;

fn hostname(node: &Node) -> &str {
    node.description
        .as_ref()
        .map_or("", |d| d.hostname.as_str())
}

/// Resolves a node by id, hostname or unique id prefix, as Docker does.
pub fn find_node(tables: &Tables, what: &str) -> Result<Node, Status> {
    if let Some(node) = tables.get::<Node>(what) {
        return Ok(node.clone());
    }
    let by_name: Vec<&Node> = tables
        .all::<Node>()
        .filter(|n| hostname(n) == what)
        .collect();
    let candidates = if by_name.is_empty() {
        tables
            .all::<Node>()
            .filter(|n| n.id.starts_with(what))
            .collect()
    } else {
        by_name
    };
    match candidates.as_slice() {
        [one] if !what.is_empty() => Ok((*one).clone()),
        [] | [_] => Err(Status::not_found(format!("node {what} not found"))),
        _ => Err(Status::invalid_argument(format!(
            "node {what} is ambiguous ({} matches)",
            candidates.len()
        ))),
    }
}

/// Fills the manager status the way `node ls` shows it: leader from Raft,
/// reachability from the leader's view of recent contact.
fn decorate(mut node: Node, raft: &RaftStatus) -> Node {
    if let Some(ms) = node.manager_status.as_mut() {
        if !raft.members.contains_key(&ms.raft_id) {
            node.manager_status = None;
            return node;
        }
        ms.leader = ms.raft_id == raft.leader;
        let reachable = ms.leader || raft.reachable.contains(&ms.raft_id);
        ms.reachability = if reachable {
            manager_status::Reachability::Reachable
        } else {
            manager_status::Reachability::Unreachable
        } as i32;
    } else if let Some(member) = raft.members.values().find(|m| m.node_id == node.id) {
        node.manager_status = Some(ManagerStatus {
            raft_id: member.raft_id,
            addr: member.addr.clone(),
            leader: member.raft_id == raft.leader,
            reachability: manager_status::Reachability::Reachable as i32,
        });
        return decorate(node, raft);
    }
    node
}

pub async fn node_get(ctx: &ManagerContext, r: GetNodeRequest) -> Result<GetNodeResponse, Status> {
    let node = ctx.read(|t| find_node(t, &r.node_id)).await??;
    Ok(GetNodeResponse {
        node: Some(decorate(node, &ctx.raft.status())),
    })
}

pub async fn node_list(
    ctx: &ManagerContext,
    r: ListNodesRequest,
) -> Result<ListNodesResponse, Status> {
    let raft = ctx.raft.status();
    let f = r.filters.as_ref();
    let nodes = ctx
        .read(|t| {
            t.all::<Node>()
                .filter(|n| {
                    let labels = n
                        .spec
                        .as_ref()
                        .and_then(|s| s.annotations.as_ref())
                        .map(|a| a.labels.clone())
                        .unwrap_or_default();
                    let role = if n.role() == NodeRole::Manager {
                        "manager"
                    } else {
                        "worker"
                    };
                    matches(f, &n.id, hostname(n), &labels)
                        && f.is_none_or(|f| f.roles.is_empty() || f.roles.iter().any(|r| r == role))
                })
                .cloned()
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(ListNodesResponse {
        nodes: nodes.into_iter().map(|n| decorate(n, &raft)).collect(),
    })
}

pub async fn node_update(
    ctx: &ManagerContext,
    r: UpdateNodeRequest,
) -> Result<UpdateNodeResponse, Status> {
    let spec = r
        .spec
        .clone()
        .ok_or_else(|| Status::invalid_argument("no node spec given"))?;
    let (node_id, current_role) = ctx
        .read(|t| {
            find_node(t, &r.node_id).map(|n| {
                (
                    n.id.clone(),
                    n.spec
                        .as_ref()
                        .map_or(NodeRole::Worker, |s| s.desired_role()),
                )
            })
        })
        .await??;
    if current_role == NodeRole::Manager
        && spec.desired_role() == NodeRole::Worker
        && let Some(forwarded) = leave_raft(ctx, &node_id, &r).await?
    {
        return Ok(forwarded);
    }
    ctx.update(|tx| {
        let mut node = tx
            .tables()
            .get::<Node>(&node_id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("node {node_id} not found")))?;
        if r.version != 0 {
            node.meta.get_or_insert_default().version = r.version;
        }
        node.spec = Some(spec);
        tx.update(node)?;
        Ok::<_, Status>(())
    })
    .await?;
    let node = ctx.store.view(|t| find_node(t, &node_id))?;
    Ok(UpdateNodeResponse {
        node: Some(decorate(node, &ctx.raft.status())),
    })
}

/// How long a membership check waits for followers to be heard from.
const REACHABLE_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes a manager being demoted out of Raft, first checking the managers
/// left keep a reachable quorum. Demoting the leader itself hands
/// leadership to another manager first and lets it finish the demotion
/// (the answer it gives is returned).
async fn leave_raft(
    ctx: &ManagerContext,
    node_id: &str,
    request: &UpdateNodeRequest,
) -> Result<Option<UpdateNodeResponse>, Status> {
    let status = ctx.raft.status();
    let Some(member) = status
        .members
        .values()
        .find(|m| m.node_id == node_id)
        .cloned()
    else {
        return Ok(None);
    };
    let remaining: Vec<u64> = status
        .members
        .keys()
        .copied()
        .filter(|&id| id != member.raft_id)
        .collect();
    if remaining.is_empty() {
        return Err(Status::failed_precondition(
            "attempting to demote the last manager of the swarm; promote another node first",
        ));
    }
    let quorum = remaining.len() / 2 + 1;
    let reachable_of = |s: &crate::raft::node::RaftStatus| {
        remaining
            .iter()
            .filter(|id| s.reachable.contains(id) || **id == s.leader)
            .count()
    };
    // A leader elected a moment ago (a demoted leader hands over, then
    // forwards here) has not heard every follower yet: give them a
    // heartbeat or two before counting.
    let mut watch = ctx.raft.watch_status();
    let _ = tokio::time::timeout(
        REACHABLE_SETTLE,
        watch.wait_for(|s| reachable_of(s) >= quorum),
    )
    .await;
    let status = ctx.raft.status();
    let reachable = reachable_of(&status);
    if reachable < quorum {
        return Err(Status::failed_precondition(format!(
            "demoting node {node_id} would leave the other managers without a reachable quorum ({reachable} of {} reachable); bring managers back first",
            remaining.len()
        )));
    }
    if member.raft_id == status.id {
        let Some(&heir) = remaining.iter().find(|id| status.reachable.contains(id)) else {
            return Err(Status::unavailable(
                "no other manager is reachable to take over leadership",
            ));
        };
        ctx.raft.transfer_leadership(heir).await;
        let mut watch = ctx.raft.watch_status();
        let moved = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            watch
                .wait_for(|s| !s.is_leader() && s.leader != 0)
                .await
                .is_ok()
        })
        .await;
        if moved != Ok(true) {
            return Err(Status::unavailable(
                "leadership did not move in time; retry the demotion",
            ));
        }
        let channel = ctx
            .leader_channel()?
            .ok_or_else(|| Status::unavailable("leadership did not move; retry"))?;
        let forwarded = shoal_proto::control::control_client::ControlClient::new(channel)
            .update_node(request.clone())
            .await?
            .into_inner();
        return Ok(Some(forwarded));
    }
    ctx.raft
        .remove_member(member.raft_id)
        .await
        .map_err(crate::grpc_status::propose_status)?;
    Ok(None)
}

pub async fn node_remove(
    ctx: &ManagerContext,
    r: RemoveNodeRequest,
) -> Result<RemoveNodeResponse, Status> {
    let node = ctx.read(|t| find_node(t, &r.node_id)).await??;
    let raft = ctx.raft.status();
    let member = raft
        .members
        .values()
        .find(|m| m.node_id == node.id)
        .cloned();
    if node.role() == NodeRole::Manager || member.is_some() {
        if !r.force {
            return Err(Status::failed_precondition(format!(
                "node {} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal (or use --force for a manager that is gone for good)",
                node.id
            )));
        }
        if let Some(member) = member {
            if member.raft_id == raft.id {
                return Err(Status::failed_precondition(
                    "a manager can't remove itself: run this on another manager, or use `shoal swarm leave --force` on it",
                ));
            }
            // A manager that is gone for good: only the remaining ones vote
            // on its removal, so they must still form a reachable quorum.
            let remaining: Vec<u64> = raft
                .members
                .keys()
                .copied()
                .filter(|&id| id != member.raft_id)
                .collect();
            let reachable = remaining
                .iter()
                .filter(|id| raft.reachable.contains(id) || **id == raft.leader)
                .count();
            if reachable < remaining.len() / 2 + 1 {
                return Err(Status::failed_precondition(format!(
                    "removing node {} would leave the other managers without a reachable quorum ({reachable} of {} reachable)",
                    node.id,
                    remaining.len()
                )));
            }
            ctx.raft
                .remove_member(member.raft_id)
                .await
                .map_err(crate::grpc_status::propose_status)?;
        }
    }
    let ready = node
        .status
        .as_ref()
        .is_some_and(|s| s.state() == node_status::State::Ready);
    if ready && !r.force {
        return Err(Status::failed_precondition(format!(
            "node {} is not down and can't be removed (use --force to remove it anyway)",
            node.id
        )));
    }
    ctx.update(|tx| {
        tx.remove::<Node>(&node.id)?;
        if let Some(mut cluster) = tx.tables().cluster().cloned() {
            if !cluster.removed_nodes.contains(&node.id) {
                cluster.removed_nodes.push(node.id.clone());
            }
            tx.update(cluster)?;
        }
        Ok::<_, Status>(())
    })
    .await?;
    // Refuse it here at once; other managers follow from the store.
    ctx.deny.deny(&node.id);
    Ok(RemoveNodeResponse {})
}
