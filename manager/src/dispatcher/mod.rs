//! The dispatcher's session half: every node (managers too) keeps one
//! session with the leader. Opening it records the node's description and
//! marks it Ready; heartbeats at the period the dispatcher hands out keep
//! it so; a leader-only component marks a node Down when its heartbeats
//! stop for four periods ([`liveness`]). Sessions only live on the
//! leader: a follower answers `Unavailable` with the leader's address in
//! the `shoal-leader` metadata, and the agent moves there. A session and
//! every stream end with the leadership term they were opened in
//! ([`crate::leadership::Term`]).
//!
//! - [`assignments`]: the node's assignment set, streamed as changes.
//! - [`status`]: task status reports, batched into few Raft entries.
//! - [`networks`]: the node's view of its overlay networks, streamed whole.
//! - [`router`]: reads each commit once and wakes the streams it concerns.
//! - [`bounds`]: the sizes a node's description and task reports are cut to.
//! - [`liveness`]: who still beats, and the down detector.

mod assignments;
pub mod bounds;
pub mod liveness;
pub mod networks;
mod router;
pub mod status;

use std::time::Duration;

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
use crate::grpc_status::{leadership_changed, not_leader};
use crate::leadership::Term;
use crate::store::Store;
use liveness::Liveness;

/// Heartbeat period when the cluster spec sets none. Docker uses 5 s, and
/// with its grace of three periods a dead node goes unnoticed for 15 s;
/// a beat is a few hundred bytes, so Shoal beats every second.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// What a follower tells a node that opens a leader-only call.
const TO_LEADER: &str = "open the session with the leader";
/// What a stream tells its node when the term it was opened in ends.
const RECONNECT: &str = "reconnect to the new leader";

/// The heartbeat period the cluster spec sets, or [`DEFAULT_HEARTBEAT`].
fn heartbeat_period(store: &Store) -> Duration {
    store
        .view(|t| {
            t.cluster()
                .and_then(|c| c.spec.as_ref()?.dispatcher.as_ref()?.heartbeat_period)
        })
        .map(|d| shoal_proto::limits::duration(&d))
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_HEARTBEAT)
}

/// Serves [`Dispatcher`] sessions and heartbeats.
#[derive(Debug, Clone)]
pub struct DispatcherService {
    ctx: ManagerContext,
    liveness: Liveness,
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
            liveness: Liveness::default(),
        }
    }

    /// The down detector, until `stop`: a leader-only component, for
    /// [`crate::leader::Supervisor::with`] (see [`liveness`]).
    pub fn run_down_detector(
        &self,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + use<> {
        liveness::run(self.ctx.clone(), self.liveness.clone(), stop)
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
        if let Some(err) = not_leader(&self.ctx, TO_LEADER) {
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
        self.liveness.touch(&node_id);
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
                Ok::<_, Status>(())
            })
            .await?;
        self.liveness.touch(&node_id);
        self.liveness.reconnected(&node_id);
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
        let mut term = Term::current(&self.ctx);
        let session_id = first_id;
        let mut known = members_of(&term.status());
        let liveness = self.liveness.clone();
        let closed_node = node_id.clone();
        let open = crate::metrics::Session::open();
        tokio::spawn(async move {
            // Counted as open for as long as this task holds it.
            let _open = open;
            loop {
                tokio::select! {
                    _ = tx.closed() => {
                        liveness.closed(&closed_node);
                        return;
                    }
                    leading = term.changed() => {
                        if !leading {
                            let _ = tx.send(Err(leadership_changed(RECONNECT))).await;
                            return;
                        }
                        let now = members_of(&term.status());
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
        if let Some(err) = not_leader(&self.ctx, TO_LEADER) {
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
        self.liveness.touch(&who.node_id);
        let period = heartbeat_period(&self.ctx.store);
        Ok(Response::new(HeartbeatResponse {
            period: prost_types::Duration::try_from(period).ok(),
        }))
    }

    async fn update_task_status(
        &self,
        request: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let who = require_node(&request)?;
        if let Some(err) = not_leader(&self.ctx, TO_LEADER) {
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
        if let Some(err) = not_leader(&self.ctx, TO_LEADER) {
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
        let mut term = Term::current(&self.ctx);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = term.lost() => {
                        let _ = tx.send(Err(leadership_changed(RECONNECT))).await;
                        return;
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
        if let Some(err) = not_leader(&self.ctx, TO_LEADER) {
            return Err(err);
        }
        let stream = networks::stream(self.ctx.clone(), &self.router, who.node_id.clone()).await?;
        Ok(Response::new(stream))
    }
}
