//! The agent's session with the managers. Exactly one session at a time,
//! to the leader: a follower answers with the leader's address and the
//! agent goes there; when a session or a heartbeat fails, the agent tries
//! the next manager it knows, with a short backoff. The manager list comes
//! from the dispatcher and is handed to the daemon to keep for restarts.
//!
//! Alongside the session the agent holds the node's assignment stream
//! (handed to the worker) and sends the task actors' status reports in
//! batches; reports made while no session is open wait, newest per task,
//! and go first when one opens.

use std::time::Duration;

use shoal_proto::dispatcher::dispatcher_client::DispatcherClient;
use std::collections::BTreeMap;

use shoal_proto::dispatcher::{
    AssignmentsRequest, HeartbeatRequest, NetworksRequest, SessionRequest, TaskStatusUpdate,
    UpdateTaskStatusRequest,
};
use shoal_proto::net::ClientTls;
use shoal_proto::objects::NodeDescription;
use shoal_proto::objects::TaskStatus;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Backoff between failed attempts, doubling up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the agent needs to reach the managers.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Manager addresses (`ip:port`) to start from.
    pub managers: Vec<String>,
    /// This node's mutual-TLS client config.
    pub tls: ClientTls,
    /// What this node is.
    pub description: NodeDescription,
    /// Where assignments go.
    pub worker: mpsc::Sender<crate::worker::Command>,
    /// Where the node's network view goes (the data plane follows it).
    pub networks: std::sync::Arc<watch::Sender<Option<crate::net::NetworkView>>>,
}

/// Status reports not yet acknowledged by a manager, newest per task.
type Pending = BTreeMap<String, TaskStatus>;

/// What the agent reports about its session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    /// The manager the session is open with, if any.
    pub manager: Option<String>,
    /// Every manager the dispatcher told of.
    pub managers: Vec<String>,
}

/// Runs the agent until `shutdown`; publishes session changes on `state`.
pub async fn run(
    config: AgentConfig,
    state: watch::Sender<SessionState>,
    mut reports: mpsc::UnboundedReceiver<crate::task::Report>,
    shutdown: CancellationToken,
) {
    // The node's metrics are shown while it is in a swarm: while this runs.
    let _in_swarm = crate::metrics::InSwarm::enter();
    let mut pending = Pending::new();
    let mut managers = config.managers.clone();
    managers.dedup();
    let mut next = 0usize;
    let mut hint: Option<String> = None;
    let mut backoff = BACKOFF_MIN;
    loop {
        if shutdown.is_cancelled() || managers.is_empty() {
            return;
        }
        let addr = hint.take().unwrap_or_else(|| {
            next = (next + 1) % managers.len();
            managers[next].clone()
        });
        match session(
            &config,
            &addr,
            &state,
            &mut managers,
            &mut reports,
            &mut pending,
            &shutdown,
        )
        .await
        {
            Ended::Shutdown => return,
            Ended::Redirect(leader) => {
                tracing::debug!(from = %addr, to = %leader, "following the leader");
                hint = Some(leader);
                continue;
            }
            Ended::Failed(why, was_open) => {
                tracing::info!(manager = %addr, error = %why, "session with manager ended");
                state.send_modify(|s| s.manager = None);
                if was_open {
                    backoff = BACKOFF_MIN;
                }
            }
        }
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = &mut pause => break,
                Some((id, status)) = reports.recv() => { pending.insert(id, status); }
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

enum Ended {
    Shutdown,
    Redirect(String),
    Failed(String, bool),
}

fn leader_hint(status: &tonic::Status) -> Option<String> {
    status
        .metadata()
        .get("shoal-leader")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Sends what is pending; forgets what the manager took.
async fn flush(
    client: &mut DispatcherClient<tonic::transport::Channel>,
    session_id: &str,
    pending: &mut Pending,
) -> Result<(), tonic::Status> {
    if pending.is_empty() {
        return Ok(());
    }
    let sent: Vec<TaskStatusUpdate> = pending
        .iter()
        .map(|(id, status)| TaskStatusUpdate {
            task_id: id.clone(),
            status: Some(status.clone()),
        })
        .collect();
    // In parts of about a megabyte: a node holding 100,000 tasks would
    // pass the manager's 4 MB message limit in one request.
    for part in shoal_proto::listing::groups(sent, shoal_proto::listing::CHUNK_BYTES) {
        client
            .update_task_status(UpdateTaskStatusRequest {
                session_id: session_id.to_string(),
                updates: part.clone(),
            })
            .await?;
        for u in part {
            if pending.get(&u.task_id) == u.status.as_ref() {
                pending.remove(&u.task_id);
            }
        }
    }
    Ok(())
}

/// Heartbeats on a task of their own until `stop`, so a status flush or
/// a slow worker never delays one (four late beats mark the node Down);
/// answers the error that ended them.
fn heartbeats(
    mut client: DispatcherClient<tonic::transport::Channel>,
    session_id: String,
    stop: CancellationToken,
) -> oneshot::Receiver<tonic::Status> {
    let (failed, rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut period = Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let beat = HeartbeatRequest {
                session_id: session_id.clone(),
            };
            let answer = client.heartbeat(beat).await;
            crate::metrics::METRICS.heartbeat(answer.is_err());
            match answer {
                Ok(r) => {
                    let given = r
                        .into_inner()
                        .period
                        .map(|d| shoal_proto::limits::duration(&d))
                        .filter(|d| !d.is_zero())
                        .unwrap_or(period);
                    // Beat at half the period so one late beat is not a miss.
                    period = (given / 2).max(Duration::from_millis(100));
                }
                Err(status) => {
                    let _ = failed.send(status);
                    return;
                }
            }
        }
    });
    rx
}

/// What a drained server stream yields: its messages, its end (`None`),
/// or its error.
type Drained<T> = mpsc::UnboundedReceiver<Result<Option<T>, tonic::Status>>;

/// Reads a server stream on a task of its own until `stop`. The session
/// loop awaits heartbeats and status flushes on the same HTTP/2
/// connection as its streams; a stream left unread meanwhile fills the
/// connection's flow-control window and holds back the very answer the
/// loop waits for. That deadlock stopped a node's heartbeats for good
/// while 50 tasks per node were being removed.
fn drain<T: Send + 'static>(
    mut stream: tonic::Streaming<T>,
    stop: CancellationToken,
) -> Drained<T> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = stream.message() => next,
            };
            let ended = !matches!(next, Ok(Some(_)));
            if tx.send(next).is_err() || ended {
                return;
            }
        }
    });
    rx
}

/// [`drain`] for messages that travel in parts: each is forwarded whole,
/// once its last part has arrived. `received` is told each part's
/// encoded size.
fn drain_parts<T: shoal_proto::listing::Parted + Send + 'static>(
    mut stream: tonic::Streaming<T>,
    stop: CancellationToken,
    received: fn(usize),
) -> Drained<T> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut partial: Option<T> = None;
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = stream.message() => next,
            };
            let next = match next {
                Ok(Some(part)) => {
                    received(part.encoded_len());
                    let whole = match partial.take() {
                        Some(mut head) => {
                            head.join(part);
                            head
                        }
                        None => part,
                    };
                    if whole.more() {
                        partial = Some(whole);
                        continue;
                    }
                    Ok(Some(whole))
                }
                other => other,
            };
            let ended = !matches!(next, Ok(Some(_)));
            if tx.send(next).is_err() || ended {
                return;
            }
        }
    });
    rx
}

/// The next network view, if the stream is open (`None` once it closed).
async fn next_view(
    networks: &mut Option<Drained<crate::net::NetworkView>>,
) -> Option<Result<crate::net::NetworkView, tonic::Status>> {
    match networks.as_mut()?.recv().await {
        Some(next) => next.transpose(),
        None => None,
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    config: &AgentConfig,
    addr: &str,
    state: &watch::Sender<SessionState>,
    managers: &mut Vec<String>,
    reports: &mut mpsc::UnboundedReceiver<crate::task::Report>,
    pending: &mut Pending,
    shutdown: &CancellationToken,
) -> Ended {
    let mut client = DispatcherClient::new(shoal_proto::net::channel(addr, config.tls.clone()));
    let opened = client
        .session(SessionRequest {
            description: Some(config.description.clone()),
            session_id: String::new(),
        })
        .await;
    let mut stream = match opened {
        Ok(r) => r.into_inner(),
        Err(status) => {
            return match leader_hint(&status) {
                Some(leader) if leader != addr => Ended::Redirect(leader),
                _ => Ended::Failed(status.message().to_string(), false),
            };
        }
    };
    let first = match stream.message().await {
        Ok(Some(m)) => m,
        Ok(None) => return Ended::Failed("session closed at once".into(), false),
        Err(status) => return Ended::Failed(status.message().to_string(), false),
    };
    let known: Vec<String> = first.managers.iter().map(|m| m.addr.clone()).collect();
    if !known.is_empty() {
        *managers = known.clone();
    }
    state.send_replace(SessionState {
        manager: Some(addr.to_string()),
        managers: known,
    });
    tracing::info!(manager = %addr, "session open");
    // The session's stream readers stop when it ends, however it ends.
    let readers = shutdown.child_token();
    let _stop_readers = readers.clone().drop_guard();

    let mut assignments = match client
        .assignments(AssignmentsRequest {
            session_id: first.session_id.clone(),
        })
        .await
    {
        Ok(r) => drain_parts(r.into_inner(), readers.clone(), |n| {
            crate::metrics::METRICS.assignment_bytes(n)
        }),
        Err(status) => return Ended::Failed(status.message().to_string(), true),
    };
    if let Err(status) = flush(&mut client, &first.session_id, pending).await {
        return Ended::Failed(status.message().to_string(), true);
    }
    // Managers without an allocator answer Unimplemented: no data plane.
    let mut networks = match client
        .networks(NetworksRequest {
            session_id: first.session_id.clone(),
        })
        .await
    {
        Ok(r) => Some(drain_parts(r.into_inner(), readers.clone(), |_| {})),
        Err(status) if status.code() == tonic::Code::Unimplemented => None,
        Err(status) => return Ended::Failed(status.message().to_string(), true),
    };

    let mut stream = drain(stream, readers.clone());
    let mut beats = heartbeats(client.clone(), first.session_id.clone(), readers.clone());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ended::Shutdown,
            message = assignments.recv() => match message.unwrap_or(Ok(None)) {
                Ok(Some(m)) => {
                    if config.worker.send(crate::worker::Command::Assignments(m)).await.is_err() {
                        return Ended::Shutdown;
                    }
                }
                Ok(None) => return Ended::Failed("the manager closed the assignment stream".into(), true),
                Err(status) => return Ended::Failed(status.message().to_string(), true),
            },
            view = next_view(&mut networks), if networks.is_some() => match view {
                Some(Ok(view)) => {
                    config.networks.send_replace(Some(view));
                }
                Some(Err(status)) if status.code() == tonic::Code::Unimplemented => networks = None,
                Some(Err(status)) => return Ended::Failed(status.message().to_string(), true),
                None => return Ended::Failed("the manager closed the network stream".into(), true),
            },
            Some((id, status)) = reports.recv() => {
                pending.insert(id, status);
                // Gather what the other actors report at the same moment.
                while let Ok((id, status)) = reports.try_recv() {
                    pending.insert(id, status);
                }
                if let Err(status) = flush(&mut client, &first.session_id, pending).await {
                    return Ended::Failed(status.message().to_string(), true);
                }
            }
            message = stream.recv() => match message.unwrap_or(Ok(None)) {
                Ok(Some(update)) => {
                    let known: Vec<String> = update.managers.iter().map(|m| m.addr.clone()).collect();
                    if !known.is_empty() && known != *managers {
                        *managers = known.clone();
                        state.send_modify(|s| s.managers = known);
                    }
                }
                Ok(None) => return Ended::Failed("the manager closed the session".into(), true),
                Err(status) => return Ended::Failed(status.message().to_string(), true),
            },
            failed = &mut beats => {
                let status = failed.unwrap_or_else(|_| tonic::Status::cancelled("heartbeats stopped"));
                return match leader_hint(&status) {
                    Some(leader) if leader != addr => Ended::Redirect(leader),
                    _ => Ended::Failed(status.message().to_string(), true),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests;
