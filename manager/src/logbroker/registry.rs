//! The leader's book of log subscriptions and of the nodes listening for
//! them. Plain data behind one short lock: the gRPC handlers route through
//! it and never hold it across an `.await` (sends to a node's listener are
//! `try_send` into a roomy channel; log lines are sent outside the lock).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use shoal_proto::logs::{
    LogSelector, LogSubscriptionOptions, SubscribeLogsMessage, SubscriptionMessage,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// Where a subscription's lines go: the CLI's stream.
pub type SubscriberTx = mpsc::Sender<Result<SubscribeLogsMessage, Status>>;
/// Where a node's subscription announcements go.
pub type ListenerTx = mpsc::Sender<Result<SubscriptionMessage, Status>>;

/// One selected task: where it runs and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// The task id.
    pub task_id: String,
    /// Its service.
    pub service_id: String,
    /// Its node.
    pub node_id: String,
}

struct Subscription {
    selector: LogSelector,
    options: LogSubscriptionOptions,
    /// Task ids announced to each involved node.
    nodes: HashMap<String, BTreeSet<String>>,
    /// Task id to service id, to complete what workers publish.
    services: HashMap<String, String>,
    /// Nodes that have not closed their publishing yet (without follow).
    pending: HashSet<String>,
    tx: SubscriberTx,
    /// Cancelled when the subscription ends.
    done: CancellationToken,
    last_activity: Instant,
}

impl Subscription {
    fn announcement(&self, id: &str, node: &str) -> SubscriptionMessage {
        let mut selector = self.selector.clone();
        selector.task_ids = self
            .nodes
            .get(node)
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        SubscriptionMessage {
            id: id.to_string(),
            selector: Some(selector),
            options: Some(self.options.clone()),
            close: false,
        }
    }
}

struct Listener {
    generation: u64,
    tx: ListenerTx,
}

#[derive(Default)]
struct Inner {
    subscriptions: HashMap<String, Subscription>,
    listeners: HashMap<String, Listener>,
    generation: u64,
}

/// What [`LogBroker::route`] hands the publish handler.
pub struct Route {
    /// The CLI's stream.
    pub tx: SubscriberTx,
    /// Task id to service id for the tasks this node may publish.
    pub services: HashMap<String, String>,
}

/// The leader's subscriptions and listening nodes. Cheap to clone.
#[derive(Clone, Default)]
pub struct LogBroker(Arc<Mutex<Inner>>);

impl std::fmt::Debug for LogBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBroker").finish_non_exhaustive()
    }
}

impl LogBroker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a subscription over `tasks` and announces it to the nodes
    /// that listen. Returns the token cancelled when it ends, and the
    /// nodes that could not be told (not connected).
    pub fn subscribe(
        &self,
        id: &str,
        selector: LogSelector,
        options: LogSubscriptionOptions,
        tasks: &[Selected],
        tx: SubscriberTx,
    ) -> (CancellationToken, Vec<String>) {
        let follow = options.follow;
        let mut sub = Subscription {
            selector,
            options,
            nodes: HashMap::new(),
            services: HashMap::new(),
            pending: HashSet::new(),
            tx,
            done: CancellationToken::new(),
            last_activity: Instant::now(),
        };
        for t in tasks {
            sub.nodes
                .entry(t.node_id.clone())
                .or_default()
                .insert(t.task_id.clone());
            sub.services.insert(t.task_id.clone(), t.service_id.clone());
        }
        let mut inner = self.lock();
        let mut unreachable = Vec::new();
        let nodes: Vec<String> = sub.nodes.keys().cloned().collect();
        for node in nodes {
            let told = inner
                .listeners
                .get(&node)
                .is_some_and(|l| l.tx.try_send(Ok(sub.announcement(id, &node))).is_ok());
            if told {
                sub.pending.insert(node);
            } else {
                // A follower waits for the node to come back; a one-shot
                // read goes without it.
                if !follow {
                    sub.nodes.remove(&node);
                }
                unreachable.push(node);
            }
        }
        let done = sub.done.clone();
        if !follow && sub.pending.is_empty() {
            done.cancel();
        } else {
            inner.subscriptions.insert(id.to_string(), sub);
        }
        (done, unreachable)
    }

    /// Adds newly selected tasks to a followed subscription and announces
    /// them to their (listening) nodes.
    pub fn extend(&self, id: &str, tasks: &[Selected]) {
        let mut inner = self.lock();
        let Inner {
            subscriptions,
            listeners,
            ..
        } = &mut *inner;
        let Some(sub) = subscriptions.get_mut(id) else {
            return;
        };
        let mut changed = BTreeSet::new();
        for t in tasks {
            if sub
                .nodes
                .entry(t.node_id.clone())
                .or_default()
                .insert(t.task_id.clone())
            {
                sub.services.insert(t.task_id.clone(), t.service_id.clone());
                changed.insert(t.node_id.clone());
            }
        }
        for node in changed {
            if let Some(l) = listeners.get(&node) {
                let _ = l.tx.try_send(Ok(sub.announcement(id, &node)));
            }
        }
    }

    /// Ends a subscription: tells its nodes to stop, drops the CLI's
    /// stream. Returns the nodes that never closed (without follow).
    pub fn end(&self, id: &str) -> Vec<String> {
        let mut inner = self.lock();
        let Some(sub) = inner.subscriptions.remove(id) else {
            return Vec::new();
        };
        sub.done.cancel();
        for node in sub.nodes.keys() {
            if let Some(l) = inner.listeners.get(node) {
                let _ = l.tx.try_send(Ok(SubscriptionMessage {
                    id: id.to_string(),
                    close: true,
                    ..Default::default()
                }));
            }
        }
        let mut missing: Vec<String> = sub.pending.into_iter().collect();
        missing.sort();
        missing
    }

    /// Since when the subscription has been quiet.
    pub fn last_activity(&self, id: &str) -> Option<Instant> {
        self.lock().subscriptions.get(id).map(|s| s.last_activity)
    }

    /// Records `node` as the listener for its subscriptions; returns its
    /// generation (for [`LogBroker::unlisten`]) and announces what is
    /// already active for it.
    pub fn listen(&self, node: &str, tx: ListenerTx) -> u64 {
        let mut inner = self.lock();
        inner.generation += 1;
        let generation = inner.generation;
        for (id, sub) in &inner.subscriptions {
            if sub.nodes.contains_key(node) {
                let _ = tx.try_send(Ok(sub.announcement(id, node)));
            }
        }
        inner
            .listeners
            .insert(node.to_string(), Listener { generation, tx });
        generation
    }

    /// Forgets `node`'s listener if it is still the one of `generation`.
    pub fn unlisten(&self, node: &str, generation: u64) {
        let mut inner = self.lock();
        if inner
            .listeners
            .get(node)
            .is_some_and(|l| l.generation == generation)
        {
            inner.listeners.remove(node);
        }
    }

    /// Where `node` publishes for subscription `id`.
    pub fn route(&self, id: &str, node: &str) -> Result<Route, Status> {
        let mut inner = self.lock();
        let sub = inner.subscriptions.get_mut(id).ok_or_else(|| {
            Status::not_found(format!("log subscription {id} is over (or unknown)"))
        })?;
        let tasks = sub.nodes.get(node).ok_or_else(|| {
            Status::permission_denied(format!("node {node} is not part of log subscription {id}"))
        })?;
        sub.last_activity = Instant::now();
        Ok(Route {
            tx: sub.tx.clone(),
            services: tasks
                .iter()
                .filter_map(|t| Some((t.clone(), sub.services.get(t)?.clone())))
                .collect(),
        })
    }

    /// `node` sent everything it had; ends a one-shot subscription once
    /// every node has.
    pub fn close(&self, id: &str, node: &str) {
        let finished = {
            let mut inner = self.lock();
            match inner.subscriptions.get_mut(id) {
                Some(sub) => {
                    sub.pending.remove(node);
                    sub.last_activity = Instant::now();
                    !sub.options.follow && sub.pending.is_empty()
                }
                None => false,
            }
        };
        if finished {
            self.end(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, node: &str) -> Selected {
        Selected {
            task_id: id.into(),
            service_id: "svc".into(),
            node_id: node.into(),
        }
    }

    fn options(follow: bool) -> LogSubscriptionOptions {
        LogSubscriptionOptions {
            follow,
            tail: -1,
            ..Default::default()
        }
    }

    #[test]
    fn one_shot_ends_when_every_listening_node_closed() {
        let broker = LogBroker::default();
        let (ltx, mut lrx) = mpsc::channel(8);
        broker.listen("n1", ltx);
        let (tx, _rx) = mpsc::channel(8);
        let tasks = [task("t1", "n1"), task("t2", "n2")];
        let (done, unreachable) =
            broker.subscribe("s", LogSelector::default(), options(false), &tasks, tx);
        assert_eq!(unreachable, vec!["n2".to_string()]);
        let told = lrx.try_recv().ok().and_then(Result::ok).unwrap_or_default();
        assert_eq!(told.selector.unwrap_or_default().task_ids, vec!["t1"]);
        let route = broker.route("s", "n1").map_err(|s| s.to_string());
        assert_eq!(
            route.map(|r| r.services.get("t1").cloned()),
            Ok(Some("svc".to_string()))
        );
        assert!(broker.route("s", "n2").is_err(), "n2 was never told");
        assert!(!done.is_cancelled());
        broker.close("s", "n1");
        assert!(done.is_cancelled());
        let close = lrx.try_recv().ok().and_then(Result::ok).unwrap_or_default();
        assert!(close.close);
    }

    #[test]
    fn a_follower_waits_for_nodes_and_learns_new_tasks() {
        let broker = LogBroker::default();
        let (tx, _rx) = mpsc::channel(8);
        let (done, _) = broker.subscribe(
            "s",
            LogSelector::default(),
            options(true),
            &[task("t1", "n1")],
            tx,
        );
        // n1 connects later and is told at once.
        let (ltx, mut lrx) = mpsc::channel(8);
        let generation = broker.listen("n1", ltx);
        assert!(lrx.try_recv().is_ok());
        broker.extend("s", &[task("t1", "n1"), task("t3", "n1")]);
        let again = lrx.try_recv().ok().and_then(Result::ok).unwrap_or_default();
        assert_eq!(
            again.selector.unwrap_or_default().task_ids,
            vec!["t1", "t3"]
        );
        broker.close("s", "n1");
        assert!(!done.is_cancelled(), "follow lasts until the CLI goes");
        broker.unlisten("n1", generation);
        broker.end("s");
        assert!(done.is_cancelled());
    }
}
