//! The dispatcher's session half: every node (managers too) keeps one
//! session with the leader. Opening it records the node's description and
//! marks it Ready; heartbeats at the period the dispatcher hands out keep
//! it so; a leader-only loop marks a node Down when its heartbeats stop for
//! three periods, as Docker's grace period does. Sessions only live on the
//! leader: a follower answers `Unavailable` with the leader's address in
//! the `shoal-leader` metadata, and the agent moves there.
//!
//! - [`assignments`]: the node's assignment set, streamed as changes.
//! - [`status`]: task status reports, batched into few Raft entries.
//! - [`networks`]: the node's view of its overlay networks, streamed whole.
//! - [`router`]: reads each commit once and wakes the streams it concerns.
//! - [`bounds`]: the sizes a node's description and task reports are cut to.

mod assignments;
pub mod bounds;
pub mod networks;
mod router;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_proto::dispatcher::dispatcher_server::Dispatcher;
use shoal_proto::dispatcher::*;
use shoal_proto::identity::new_id;
use shoal_proto::objects::{Node, NodeStatus, node_status};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::authz::require_node;
use crate::context::ManagerContext;

/// Heartbeat period when the cluster spec sets none. Docker uses 5 s, and
/// with its grace of three periods a dead node goes unnoticed for 15 s;
/// a beat is a few hundred bytes, so Shoal beats every second.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// Missed periods before a node is Down.
const GRACE_PERIODS: u32 = 4;
/// A node whose session connection closed (its daemon died: the kernel
/// closes its sockets) and that has not come back within this is Down at
/// once, without waiting for the heartbeat grace. A network cut closes
/// nothing, so it still gets the whole grace.
const RECONNECT_GRACE: Duration = Duration::from_secs(1);

/// Serves [`Dispatcher`] sessions and heartbeats.
#[derive(Debug, Clone)]
pub struct DispatcherService {
    ctx: ManagerContext,
    last_seen: Arc<Mutex<HashMap<String, Instant>>>,
    /// Nodes whose session stream closed, and when.
    disconnected: Arc<Mutex<HashMap<String, Instant>>>,
    statuses: status::StatusBatcher,
    router: router::Router,
}

impl DispatcherService {
    /// A dispatcher for this manager.
    pub fn new(ctx: ManagerContext, shutdown: CancellationToken) -> DispatcherService {
        DispatcherService {
            statuses: status::StatusBatcher::start(ctx.clone(), shutdown.clone()),
            router: router::Router::start(ctx.store.clone(), shutdown),
            ctx,
            last_seen: Arc::default(),
            disconnected: Arc::default(),
        }
    }

    fn period(&self) -> Duration {
        self.ctx
            .store
            .view(|t| {
                t.cluster()
                    .and_then(|c| c.spec.as_ref()?.dispatcher.as_ref()?.heartbeat_period)
            })
            .map(|d| shoal_proto::limits::duration(&d))
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_HEARTBEAT)
    }

    fn not_leader(&self) -> Option<Status> {
        let status = self.ctx.raft.status();
        if status.is_leader() {
            return None;
        }
        let mut err =
            Status::unavailable("this manager is not the leader: open the session with the leader");
        if let Some(addr) = status
            .members
            .get(&status.leader)
            .and_then(|m| m.addr.parse().ok())
        {
            err.metadata_mut().insert("shoal-leader", addr);
        }
        Some(err)
    }

    fn touch(&self, node_id: &str) {
        self.last_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node_id.to_string(), Instant::now());
    }

    /// Marks nodes Down whose heartbeats stopped; runs while this manager
    /// leads, until `shutdown`.
    pub async fn run_down_detector(self, shutdown: CancellationToken) {
        let mut was_leader = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            let leader = self.ctx.raft.status().is_leader();
            if leader && !was_leader {
                // A new leader gives every node a fresh grace period.
                let now = Instant::now();
                let ids: Vec<String> = self
                    .ctx
                    .store
                    .view(|t| t.all::<Node>().map(|n| n.id.clone()).collect());
                let mut seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
                for id in ids {
                    seen.insert(id, now);
                }
                self.disconnected
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
            }
            was_leader = leader;
            if !leader {
                continue;
            }
            let limit = self.period().saturating_mul(GRACE_PERIODS);
            let expired: Vec<String> = {
                let seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
                let gone = self.disconnected.lock().unwrap_or_else(|e| e.into_inner());
                let left = |id: &str| {
                    gone.get(id).is_some_and(|at| {
                        at.elapsed() > RECONNECT_GRACE && seen.get(id).is_none_or(|s| s <= at)
                    })
                };
                self.ctx.store.view(|t| {
                    t.all::<Node>()
                        .filter(|n| {
                            n.status
                                .as_ref()
                                .is_some_and(|s| s.state() == node_status::State::Ready)
                        })
                        .filter(|n| {
                            left(&n.id) || seen.get(&n.id).is_none_or(|at| at.elapsed() > limit)
                        })
                        .map(|n| n.id.clone())
                        .collect()
                })
            };
            if expired.is_empty() {
                continue;
            }
            let result = self
                .ctx
                .update(|tx| {
                    for id in &expired {
                        if let Some(mut node) = tx.tables().get::<Node>(id).cloned() {
                            let status = node.status.get_or_insert_default();
                            status.set_state(node_status::State::Down);
                            status.message = "heartbeat failure".into();
                            tx.update(node)?;
                        }
                    }
                    Ok(())
                })
                .await;
            match result {
                Ok(()) => {
                    tracing::info!(nodes = ?expired, "nodes marked down after missing heartbeats")
                }
                Err(e) => {
                    tracing::debug!(error = %e.message(), "marking nodes down failed; will retry")
                }
            }
        }
    }
}

fn members_of(status: &crate::raft::node::RaftStatus) -> Vec<WeightedPeer> {
    status
        .members
        .values()
        .map(|m| WeightedPeer {
            node_id: m.node_id.clone(),
            addr: m.addr.clone(),
            weight: 1,
        })
        .collect()
}

#[tonic::async_trait]
impl Dispatcher for DispatcherService {
    type SessionStream = ReceiverStream<Result<SessionMessage, Status>>;

    async fn session(
        &self,
        request: Request<SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let who = require_node(&request)?;
        if let Some(err) = self.not_leader() {
            return Err(err);
        }
        let peer_ip = request
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let mut description = request.into_inner().description;
        let node_id = who.node_id.clone();
        if let Some(d) = description.as_mut() {
            let cut = bounds::description(d);
            if !cut.is_empty() {
                tracing::warn!(node = %node_id, fields = ?cut, "node description over its bounds; cut before it is stored");
            }
        }
        // Seen now, before it is Ready: else the down detector may find a
        // Ready node it never heard from and mark it down again.
        self.touch(&node_id);
        self.ctx
            .update_retrying(|tx| {
                let mut node = tx.tables().get::<Node>(&node_id).cloned().ok_or_else(|| {
                    Status::permission_denied(format!(
                        "node {node_id} is not part of the cluster (was it removed?)"
                    ))
                })?;
                node.description = description.clone();
                node.status = Some(NodeStatus {
                    state: node_status::State::Ready as i32,
                    message: String::new(),
                    addr: peer_ip.clone(),
                });
                tx.update(node)?;
                Ok(())
            })
            .await?;
        self.touch(&node_id);
        self.disconnected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&node_id);
        let node = self.ctx.store.view(|t| t.get::<Node>(&node_id).cloned());
        let managers = members_of(&self.ctx.raft.status());
        let (tx, rx) = mpsc::channel(4);
        let first_id = new_id();
        let first = SessionMessage {
            session_id: first_id.clone(),
            node,
            managers,
            ..Default::default()
        };
        tx.send(Ok(first))
            .await
            .map_err(|_| Status::cancelled("session closed"))?;
        // The session lasts while this manager leads and the node listens;
        // it carries the manager list again whenever membership changes.
        let mut leadership = self.ctx.raft.watch_status();
        let session_id = first_id;
        let mut known = members_of(&leadership.borrow());
        let disconnected = self.disconnected.clone();
        let closed_node = node_id.clone();
        let open = crate::metrics::Session::open();
        tokio::spawn(async move {
            // Counted as open for as long as this task holds it.
            let _open = open;
            loop {
                tokio::select! {
                    _ = tx.closed() => {
                        disconnected
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(closed_node, Instant::now());
                        return;
                    }
                    changed = leadership.changed() => {
                        if changed.is_err() || !leadership.borrow().is_leader() {
                            let _ = tx.send(Err(Status::unavailable("leadership changed: reconnect to the new leader"))).await;
                            return;
                        }
                        let now = members_of(&leadership.borrow());
                        if now != known {
                            known = now.clone();
                            let update = SessionMessage { session_id: session_id.clone(), managers: now, ..Default::default() };
                            if tx.send(Ok(update)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        tracing::info!(node = %who.node_id, "node session opened");
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let who = require_node(&request)?;
        if let Some(err) = self.not_leader() {
            return Err(err);
        }
        // A removed node's open connection outlives its certificate check.
        let state = self.ctx.store.view(|t| {
            t.get::<Node>(&who.node_id)
                .map(|n| n.status.as_ref().map(|s| s.state()))
        });
        let Some(state) = state else {
            return Err(Status::permission_denied(format!(
                "node {} was removed from the cluster",
                who.node_id
            )));
        };
        // Marked Down while its session stayed open (its beats were late):
        // it registers again, which makes it Ready, as swarmkit's
        // "node not registered" does. A beat alone never revives a node.
        if state == Some(node_status::State::Down) {
            return Err(Status::not_found(format!(
                "node {} was marked down; open a new session",
                who.node_id
            )));
        }
        self.touch(&who.node_id);
        let period = self.period();
        Ok(Response::new(HeartbeatResponse {
            period: prost_types::Duration::try_from(period).ok(),
        }))
    }

    async fn update_task_status(
        &self,
        request: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let who = require_node(&request)?;
        if let Some(err) = self.not_leader() {
            return Err(err);
        }
        let updates = request.into_inner().updates;
        if !updates.is_empty() {
            self.statuses.report(who.node_id.clone(), updates).await?;
        }
        Ok(Response::new(UpdateTaskStatusResponse {}))
    }

    type AssignmentsStream = ReceiverStream<Result<AssignmentsMessage, Status>>;

    async fn assignments(
        &self,
        request: Request<AssignmentsRequest>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        let who = require_node(&request)?;
        if let Some(err) = self.not_leader() {
            return Err(err);
        }
        let node_id = who.node_id.clone();
        // Subscribed first: every commit after the complete set reaches it.
        let inbox = self
            .router
            .assignments(&node_id)
            .await
            .ok_or_else(|| Status::unavailable("this manager is shutting down"))?;
        let mut set = assignments::AssignmentSet::new(&node_id);
        let first = self.ctx.store.view(|t| set.complete(t));
        let (tx, rx) = mpsc::channel(16);
        if !networks::send_parts(&tx, first).await {
            return Err(Status::cancelled("assignments stream closed"));
        }
        let ctx = self.ctx.clone();
        let mut leadership = self.ctx.raft.watch_status();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    changed = leadership.changed() => {
                        if changed.is_err() || !leadership.borrow().is_leader() {
                            let _ = tx.send(Err(Status::unavailable("leadership changed: reconnect to the new leader"))).await;
                            return;
                        }
                        continue;
                    }
                    _ = inbox.wait() => {}
                }
                // Whatever arrived meanwhile is folded into one message.
                let touched = inbox.take();
                if touched.is_empty() {
                    continue;
                }
                if let Some(message) = ctx.store.view(|t| set.incremental(t, touched))
                    && !networks::send_parts(&tx, message).await
                {
                    return;
                }
            }
        });
        tracing::debug!(node = %node_id, "assignments stream opened");
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type NetworksStream = ReceiverStream<Result<NetworkView, Status>>;

    async fn networks(
        &self,
        request: Request<NetworksRequest>,
    ) -> Result<Response<Self::NetworksStream>, Status> {
        let who = require_node(&request)?;
        if let Some(err) = self.not_leader() {
            return Err(err);
        }
        let stream = networks::stream(self.ctx.clone(), &self.router, who.node_id.clone()).await?;
        Ok(Response::new(stream))
    }
}
