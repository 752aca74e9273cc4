//! The log broker (swarmkit's, simplified). Logs never pass through Raft:
//! they flow CLI ← leader ← workers, live.
//!
//! 1. The CLI calls `SubscribeLogs` on its daemon ([`LogsApi`]); a
//!    follower forwards the call to the leader.
//! 2. The leader selects the tasks (of the services, or named), records a
//!    subscription ([`LogBroker`]) and announces it on the
//!    `ListenSubscriptions` stream of every node that runs one of them,
//!    with the node's own task ids in the selector.
//! 3. Each worker reads its engine's logs for those tasks and sends them
//!    with `PublishLogs`; the leader relays them to the CLI's stream.
//! 4. Without `follow` the subscription ends when every node closed its
//!    publishing (nodes that are not connected are named in a warning, and
//!    nodes that go quiet for [`IDLE_TIMEOUT`] too). With `follow` it lasts
//!    until the CLI goes away, picks up new tasks of the services as they
//!    are scheduled, and its nodes are told `close` at the end.
//!
//! The broker has no loop of its own: only the leader serves it, and each
//! listener and subscription ends with the leadership term it was opened
//! in ([`crate::leadership::Term`]).

mod api;
mod registry;
mod service;

use std::time::Duration;

use shoal_proto::identity::new_id;
use shoal_proto::logs::{SubscribeLogsMessage, SubscribeLogsRequest};
use shoal_proto::objects::{Node, Task};
use tokio::sync::mpsc;
use tonic::Status;

use crate::context::ManagerContext;
use crate::leadership::Term;
use crate::store::{Changed, Tables};

pub use api::LogsApi;
pub use registry::{LogBroker, Selected};
pub use service::LogBrokerService;

/// A one-shot read gives up on nodes that sent nothing for this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines buffered towards one CLI before publishers wait.
const SUBSCRIBER_BUFFER: usize = 256;

/// What a follower tells a worker that listens or publishes there.
const TO_LEADER: &str = "listen on the leader";

/// The tasks a selector names that have a node (any state: a finished
/// task may still have logs there).
pub fn select(t: &Tables, selector: &shoal_proto::logs::LogSelector) -> Vec<Selected> {
    let by_service = selector
        .service_ids
        .iter()
        .flat_map(|s| t.tasks_of_service(s));
    let by_id = selector.task_ids.iter().filter_map(|id| t.get::<Task>(id));
    let mut seen = std::collections::HashSet::new();
    by_service
        .chain(by_id)
        .filter(|task| !task.node_id.is_empty())
        .filter(|task| selector.node_ids.is_empty() || selector.node_ids.contains(&task.node_id))
        .filter(|task| seen.insert(task.id.clone()))
        .map(|task| Selected {
            task_id: task.id.clone(),
            service_id: task.service_id.clone(),
            node_id: task.node_id.clone(),
        })
        .collect()
}

/// Names nodes for a warning: hostname when known, else the id.
fn node_names(t: &Tables, ids: &[String]) -> String {
    ids.iter()
        .map(|id| {
            t.get::<Node>(id)
                .and_then(|n| n.description.as_ref())
                .map(|d| d.hostname.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| id.clone())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Serves a subscription on the leader: registers it and returns the
/// stream of its lines; a task watches over its end.
pub(crate) fn subscribe(
    ctx: &ManagerContext,
    request: SubscribeLogsRequest,
) -> Result<mpsc::Receiver<Result<SubscribeLogsMessage, Status>>, Status> {
    let selector = request.selector.unwrap_or_default();
    if selector.service_ids.is_empty() && selector.task_ids.is_empty() {
        return Err(Status::invalid_argument(
            "a log subscription needs at least one service or task",
        ));
    }
    let options = request.options.unwrap_or_default();
    let follow = options.follow;
    let (tasks, commits) = ctx.store.view_and_watch(|t| {
        for id in &selector.service_ids {
            if t.get::<shoal_proto::objects::Service>(id).is_none() {
                return Err(Status::not_found(format!("No such service: {id}")));
            }
        }
        Ok(select(t, &selector))
    });
    let tasks = tasks?;
    let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
    let id = new_id();
    let (done, unreachable) =
        ctx.logs
            .subscribe(&id, selector.clone(), options, &tasks, tx.clone());
    if !unreachable.is_empty() {
        let names = ctx.store.view(|t| node_names(t, &unreachable));
        let warning = if follow {
            format!("node(s) {names} not connected: their logs will follow when they are back")
        } else {
            format!("node(s) {names} not connected: the logs of their tasks are missing")
        };
        let _ = tx.try_send(Ok(SubscribeLogsMessage {
            warnings: vec![warning],
            ..Default::default()
        }));
    }
    tracing::debug!(subscription = %id, tasks = tasks.len(), follow, "log subscription");
    let ctx = ctx.clone();
    tokio::spawn(async move {
        watch_over(&ctx, &id, selector, follow, done, commits, tx).await;
    });
    Ok(rx)
}

/// Ends a subscription when it is over: the CLI went away, the leader
/// stepped down, or (one-shot) every node closed or went quiet. While it
/// follows, new tasks of its services are announced as they appear.
async fn watch_over(
    ctx: &ManagerContext,
    id: &str,
    selector: shoal_proto::logs::LogSelector,
    follow: bool,
    done: tokio_util::sync::CancellationToken,
    mut commits: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::store::Commit>>,
    tx: registry::SubscriberTx,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut term = Term::current(ctx);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tx.closed() => break,
            _ = term.lost() => {
                let _ = tx.try_send(Err(Status::unavailable(
                    "the leader stepped down while streaming logs: run the command again",
                )));
                break;
            }
            commit = commits.recv(), if follow => {
                let relevant = match commit {
                    Ok(c) => c.reset || c.events.iter().any(|e| matches!(&e.object, Changed::Task(_))),
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => break,
                };
                if relevant {
                    let tasks = ctx.store.view(|t| select(t, &selector));
                    ctx.logs.extend(id, &tasks);
                }
            }
            _ = tick.tick(), if !follow => {
                let idle = ctx.logs.last_activity(id).is_none_or(|at| at.elapsed() > IDLE_TIMEOUT);
                if idle {
                    break;
                }
            }
        }
    }
    let missing = ctx.logs.end(id);
    if !missing.is_empty() && !tx.is_closed() {
        let names = ctx.store.view(|t| node_names(t, &missing));
        let _ = tx
            .send(Ok(SubscribeLogsMessage {
                warnings: vec![format!(
                    "node(s) {names} sent no logs for {}s: their logs may be incomplete",
                    IDLE_TIMEOUT.as_secs()
                )],
                ..Default::default()
            }))
            .await;
    }
    tracing::debug!(subscription = %id, "log subscription over");
}
