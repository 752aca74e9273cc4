//! Log publishing: the node's half of the log broker. A loop next to the
//! agent keeps a `ListenSubscriptions` stream to the manager the agent has
//! its session with (the leader; a follower's `shoal-leader` hint is
//! followed too). Each subscription names this node's tasks; for each
//! task the engine's log is read and sent with `PublishLogs`, one stream
//! per announcement, ended by `close` once every task's log is read.
//! A subscription announced again (a followed service got new tasks here)
//! starts readers only for the new tasks. When the listen stream breaks,
//! every reader stops: its subscriptions lived on that manager.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{FutureExt as _, StreamExt as _};
use shoal_proto::logs::log_broker_client::LogBrokerClient;
use shoal_proto::logs::{
    ListenSubscriptionsRequest, LogContext, LogMessage, LogStream as WireStream,
    LogSubscriptionOptions, PublishLogsMessage, SubscriptionMessage,
};
use shoal_proto::net::ClientTls;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::agent::SessionState;
use crate::exec::{Engine, ExecError, LogLine, LogOptions, LogSource};

/// Backoff between failed attempts to listen.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Lines per published message at most.
const MAX_BATCH: usize = 128;
/// A followed task may be announced before its engine knows it (it is
/// still being prepared): look again this often, for this long.
const NOT_YET_POLL: Duration = Duration::from_millis(500);
const NOT_YET_WAIT: Duration = Duration::from_secs(60);

/// What the publishing loop needs.
#[derive(Clone)]
pub struct LogsConfig {
    /// This node's id (the context of what it publishes).
    pub node_id: String,
    /// The node's mutual-TLS client config.
    pub tls: ClientTls,
    /// The engine that holds the tasks' logs.
    pub engine: Arc<dyn Engine>,
    /// The agent's session: which manager leads, as far as it knows.
    pub session: watch::Receiver<SessionState>,
}

impl std::fmt::Debug for LogsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogsConfig")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

enum Ended {
    Shutdown,
    /// Listen there instead (the leader, by a follower's hint).
    Redirect(String),
    /// The agent moved its session: listen where it is now.
    Moved,
    Failed(String),
}

/// Runs until `shutdown`.
pub async fn run(mut config: LogsConfig, shutdown: CancellationToken) {
    let mut hint: Option<String> = None;
    let mut backoff = BACKOFF_MIN;
    loop {
        let addr = match hint.take() {
            Some(addr) => addr,
            None => {
                let current = config.session.borrow().manager.clone();
                match current {
                    Some(addr) => addr,
                    None => {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            changed = config.session.changed() => if changed.is_err() { return },
                        }
                        continue;
                    }
                }
            }
        };
        match listen(&mut config, &addr, &shutdown).await {
            Ended::Shutdown => return,
            Ended::Redirect(leader) => {
                hint = Some(leader);
                continue;
            }
            Ended::Moved => {
                backoff = BACKOFF_MIN;
                continue;
            }
            Ended::Failed(why) => {
                tracing::debug!(manager = %addr, error = %why, "log subscriptions stream ended");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn leader_hint(status: &tonic::Status, addr: &str) -> Ended {
    match status
        .metadata()
        .get("shoal-leader")
        .and_then(|v| v.to_str().ok())
    {
        Some(leader) if leader != addr => Ended::Redirect(leader.to_string()),
        _ => Ended::Failed(status.message().to_string()),
    }
}

/// One listen stream, with the readers of its subscriptions.
async fn listen(config: &mut LogsConfig, addr: &str, shutdown: &CancellationToken) -> Ended {
    let mut client = LogBrokerClient::new(shoal_proto::net::channel(addr, config.tls.clone()));
    let mut stream = match client
        .listen_subscriptions(ListenSubscriptionsRequest {})
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return leader_hint(&status, addr),
    };
    tracing::debug!(manager = %addr, "listening for log subscriptions");
    // Every reader of this stream's subscriptions stops with it.
    let scope = shutdown.child_token();
    let _stop_readers = scope.clone().drop_guard();
    let mut subs: HashMap<String, (CancellationToken, HashSet<String>)> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ended::Shutdown,
            changed = config.session.changed() => {
                if changed.is_err() {
                    return Ended::Shutdown;
                }
                let now = config.session.borrow().manager.clone();
                if now.as_deref().is_some_and(|m| m != addr) {
                    return Ended::Moved;
                }
            }
            message = stream.message() => match message {
                Ok(Some(m)) => announce(config, &client, &scope, &mut subs, m),
                Ok(None) => return Ended::Failed("the manager closed the stream".into()),
                Err(status) => return leader_hint(&status, addr),
            },
        }
    }
}

/// Starts (or stops) the readers a subscription message asks for.
fn announce(
    config: &LogsConfig,
    client: &LogBrokerClient<Channel>,
    scope: &CancellationToken,
    subs: &mut HashMap<String, (CancellationToken, HashSet<String>)>,
    message: SubscriptionMessage,
) {
    if message.close {
        if let Some((cancel, _)) = subs.remove(&message.id) {
            cancel.cancel();
        }
        return;
    }
    let first = !subs.contains_key(&message.id);
    let (cancel, started) = subs
        .entry(message.id.clone())
        .or_insert_with(|| (scope.child_token(), HashSet::new()));
    let tasks: Vec<String> = message
        .selector
        .unwrap_or_default()
        .task_ids
        .into_iter()
        .filter(|t| started.insert(t.clone()))
        .collect();
    if tasks.is_empty() && !first {
        return;
    }
    let job = Job {
        subscription: message.id,
        node_id: config.node_id.clone(),
        options: message.options.unwrap_or_default(),
        engine: config.engine.clone(),
    };
    tokio::spawn(publish(job, tasks, client.clone(), cancel.clone()));
}

/// What one publishing stream serves.
#[derive(Clone)]
struct Job {
    subscription: String,
    node_id: String,
    options: LogSubscriptionOptions,
    engine: Arc<dyn Engine>,
}

impl Job {
    fn engine_options(&self) -> LogOptions {
        LogOptions {
            follow: self.options.follow,
            tail: usize::try_from(self.options.tail).ok(),
            since: self
                .options
                .since
                .and_then(|t| SystemTime::try_from(t).ok()),
        }
    }

    /// Whether the subscription wants lines of this stream.
    fn wants(&self, source: LogSource) -> bool {
        let wire = wire_stream(source) as i32;
        self.options.streams.is_empty() || self.options.streams.contains(&wire)
    }

    fn message(&self, task_id: &str, line: LogLine) -> LogMessage {
        LogMessage {
            context: Some(LogContext {
                service_id: String::new(),
                node_id: self.node_id.clone(),
                task_id: task_id.to_string(),
            }),
            timestamp: Some(line.timestamp.into()),
            stream: wire_stream(line.source) as i32,
            data: line.data,
        }
    }
}

fn wire_stream(source: LogSource) -> WireStream {
    match source {
        LogSource::Stdout => WireStream::Stdout,
        LogSource::Stderr => WireStream::Stderr,
    }
}

/// Reads `tasks` and publishes their lines on one stream, then `close`.
async fn publish(
    job: Job,
    tasks: Vec<String>,
    mut client: LogBrokerClient<Channel>,
    cancel: CancellationToken,
) {
    let (tx, rx) = mpsc::channel::<PublishLogsMessage>(64);
    let mut readers = JoinSet::new();
    for task in tasks {
        readers.spawn(read_task(job.clone(), task, tx.clone()));
    }
    let mut tx = Some(tx);
    let call = client.publish_logs(tokio_stream::wrappers::ReceiverStream::new(rx));
    tokio::pin!(call);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            result = &mut call => {
                if let Err(status) = result {
                    tracing::debug!(subscription = %job.subscription, error = %status.message(), "publishing logs ended");
                }
                return;
            }
            next = readers.join_next(), if tx.is_some() => {
                if next.is_none() {
                    // Every reader is done: say so and end the stream.
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(PublishLogsMessage {
                            subscription_id: job.subscription.clone(),
                            messages: Vec::new(),
                            close: true,
                        }).await;
                    }
                }
            }
        }
    }
}

/// Sends one task's lines, a batch at a time.
async fn read_task(job: Job, task_id: String, tx: mpsc::Sender<PublishLogsMessage>) {
    let started = tokio::time::Instant::now();
    let mut lines = loop {
        match job.engine.logs(&task_id, job.engine_options()).await {
            Ok(lines) => break lines,
            Err(ExecError::NotFound(_))
                if job.options.follow && started.elapsed() < NOT_YET_WAIT =>
            {
                tokio::time::sleep(NOT_YET_POLL).await;
            }
            // Removed from the engine: nothing left to read.
            Err(ExecError::NotFound(_)) => return,
            Err(e) => {
                tracing::warn!(task = %task_id, error = %e, "cannot read the task's logs");
                return;
            }
        }
    };
    while let Some(first) = lines.next().await {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(line) = next.take() {
            match line {
                Ok(line) if job.wants(line.source) => batch.push(job.message(&task_id, line)),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(task = %task_id, error = %e, "reading the task's logs failed");
                    break;
                }
            }
            // Whatever else is ready goes in the same message.
            if batch.len() < MAX_BATCH {
                next = lines.next().now_or_never().flatten();
            }
        }
        if !batch.is_empty() {
            let message = PublishLogsMessage {
                subscription_id: job.subscription.clone(),
                messages: batch,
                close: false,
            };
            if tx.send(message).await.is_err() {
                return;
            }
        }
    }
}
