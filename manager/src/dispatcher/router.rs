//! One reader of the store's commits for all of the dispatcher's streams.
//! Each commit is read once, here, and what it touched goes to the streams
//! it concerns: a task to its node's assignments stream, a change on a
//! network to the nodes that see that network. A stream sleeps until its
//! inbox has something. With a thousand nodes, every stream reading every
//! commit itself was most of the leader's CPU: a thousand wakeups and a
//! thousand walks of each commit's events, nearly all for nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use shoal_proto::objects::Task;

use super::assignments::Touched;
use crate::store::{Changed, Commit, EventAction, Store};

/// Where the router leaves work for one stream, and wakes it.
#[derive(Debug, Default)]
pub struct Inbox<P> {
    pending: Mutex<P>,
    ready: Notify,
}

impl<P: Default> Inbox<P> {
    fn add(&self, f: impl FnOnce(&mut P)) {
        f(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        // Kept as a permit when the stream is busy: no wakeup is lost.
        self.ready.notify_one();
    }

    /// Waits until the router leaves something.
    pub async fn wait(&self) {
        self.ready.notified().await;
    }

    /// What was left since the last take.
    pub fn take(&self) -> P {
        std::mem::take(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What a node's network view depends on, as its stream last saw it.
#[derive(Debug, Default, Clone)]
pub struct Interest {
    /// The networks of its view.
    pub networks: HashSet<String>,
    /// The nodes its view names (their addresses are in it).
    pub nodes: HashSet<String>,
    /// It lists every node's mesh sandbox, so any node change concerns it.
    pub every_node: bool,
}

/// A network stream's inbox: whether its view may have changed, and what
/// the router must know to tell.
#[derive(Debug, Default)]
pub struct NetworkInbox {
    /// Set by the router, cleared by the stream.
    pub inbox: Inbox<bool>,
    interest: Mutex<Interest>,
}

impl NetworkInbox {
    /// What the view the stream just built depends on.
    pub fn set_interest(&self, interest: Interest) {
        *self.interest.lock().unwrap_or_else(|e| e.into_inner()) = interest;
    }
}

enum Subscription {
    Assignments(String, Arc<Inbox<Touched>>),
    Networks(String, Arc<NetworkInbox>),
}

/// The handle streams subscribe through.
#[derive(Debug, Clone)]
pub struct Router {
    subscribe: mpsc::UnboundedSender<(Subscription, oneshot::Sender<()>)>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subscription::Assignments(node, _) => write!(f, "assignments of {node}"),
            Subscription::Networks(node, _) => write!(f, "networks of {node}"),
        }
    }
}

impl Router {
    /// Starts the router over `store`'s commits, until `shutdown`.
    pub fn start(store: Arc<Store>, shutdown: CancellationToken) -> Router {
        let (subscribe, requests) = mpsc::unbounded_channel();
        tokio::spawn(route(store, requests, shutdown));
        Router { subscribe }
    }

    /// An inbox for `node_id`'s assignments stream. Every commit the
    /// store applies after this returns reaches it: read the first
    /// complete set after subscribing.
    pub async fn assignments(&self, node_id: &str) -> Option<Arc<Inbox<Touched>>> {
        let inbox = Arc::new(Inbox::default());
        self.add(Subscription::Assignments(node_id.into(), inbox.clone()))
            .await
            .then_some(inbox)
    }

    /// An inbox for `node_id`'s networks stream, as for
    /// [`Self::assignments`]. Until its stream sets an interest, it hears
    /// of changes to the node itself and to every network.
    pub async fn networks(&self, node_id: &str) -> Option<Arc<NetworkInbox>> {
        let inbox = Arc::new(NetworkInbox::default());
        inbox.set_interest(Interest {
            every_node: true,
            ..Default::default()
        });
        self.add(Subscription::Networks(node_id.into(), inbox.clone()))
            .await
            .then_some(inbox)
    }

    /// False when the router has stopped (the manager is shutting down).
    async fn add(&self, subscription: Subscription) -> bool {
        let (done, added) = oneshot::channel();
        self.subscribe.send((subscription, done)).is_ok() && added.await.is_ok()
    }
}

/// The open streams, by node.
#[derive(Default)]
pub(super) struct Streams {
    assignments: HashMap<String, Vec<Arc<Inbox<Touched>>>>,
    networks: HashMap<String, Vec<Arc<NetworkInbox>>>,
    /// Each task's node, as last routed: a task that moves (the store
    /// allows it, though the scheduler never does it) also concerns the
    /// node it left.
    placed: HashMap<String, String>,
}

impl Streams {
    /// Streams with one assignments inbox, for `node_id`, and where the
    /// store's tasks are: for tests that route commits themselves.
    #[cfg(test)]
    pub(super) fn for_assignments(node_id: &str, store: &Store) -> (Streams, Arc<Inbox<Touched>>) {
        let mut streams = Streams::default();
        let inbox = Arc::new(Inbox::default());
        streams.add(Subscription::Assignments(node_id.into(), inbox.clone()));
        streams.relearn(store);
        (streams, inbox)
    }

    fn add(&mut self, subscription: Subscription) {
        match subscription {
            Subscription::Assignments(node, inbox) => {
                self.assignments.entry(node).or_default().push(inbox)
            }
            Subscription::Networks(node, inbox) => {
                self.networks.entry(node).or_default().push(inbox)
            }
        }
    }

    /// Forgets the streams that ended (only the router holds their inbox).
    fn prune(&mut self) {
        fn open<T>(map: &mut HashMap<String, Vec<Arc<T>>>) {
            map.retain(|_, inboxes| {
                inboxes.retain(|i| Arc::strong_count(i) > 1);
                !inboxes.is_empty()
            });
        }
        open(&mut self.assignments);
        open(&mut self.networks);
    }

    /// Learns where every task is, after a restore or missed commits.
    fn relearn(&mut self, store: &Store) {
        self.placed = store.view(|t| {
            t.all::<Task>()
                .filter(|x| !x.node_id.is_empty())
                .map(|x| (x.id.clone(), x.node_id.clone()))
                .collect()
        });
    }

    /// Every stream must look at everything again.
    fn everything(&self) {
        for inbox in self.assignments.values().flatten() {
            inbox.add(Touched::everything);
        }
        for inbox in self.networks.values().flatten() {
            inbox.inbox.add(|dirty| *dirty = true);
        }
    }

    /// Records that task `id` is on `node` (no allocation when it already
    /// was); the node it was on before, if another.
    fn place(&mut self, id: &str, node: &str) -> Option<String> {
        if node.is_empty() {
            return None;
        }
        match self.placed.get_mut(id) {
            Some(was) if was == node => None,
            Some(was) => Some(std::mem::replace(was, node.to_string())),
            None => self.placed.insert(id.to_string(), node.to_string()),
        }
    }

    /// Hands what `commit` touched to the streams it concerns.
    pub(super) fn route(&mut self, commit: &Commit, store: &Store) {
        if commit.reset {
            self.relearn(store);
            return self.everything();
        }
        let mut tasks: HashMap<&str, Vec<&str>> = HashMap::new();
        // Tasks that left a node: rare (the scheduler never moves one).
        let mut left_behind: Vec<(String, &str)> = Vec::new();
        let mut files = Touched::default();
        let mut networks = NetworkChanges::default();
        for event in &commit.events {
            match &event.object {
                Changed::Task(t) => {
                    let left = match event.action {
                        EventAction::Remove => self.placed.remove(&t.id),
                        _ => self.place(&t.id, &t.node_id),
                    };
                    if let Some(left) = left.filter(|n| *n != t.node_id) {
                        left_behind.push((left, &t.id));
                    }
                    if !t.node_id.is_empty() {
                        tasks.entry(&t.node_id).or_default().push(&t.id);
                    }
                    networks.task(t);
                }
                Changed::Secret(s) => files.secret(&s.id),
                Changed::Config(c) => files.config(&c.id),
                Changed::Node(n) => networks.node(&n.id),
                Changed::Service(_) | Changed::Network(_) | Changed::Cluster(_) => {
                    networks.all = true
                }
            }
        }
        for (node, ids) in tasks {
            for inbox in self.assignments.get(node).into_iter().flatten() {
                inbox.add(|t| ids.iter().for_each(|id| t.task(id)));
            }
        }
        for (node, id) in left_behind {
            for inbox in self.assignments.get(&node).into_iter().flatten() {
                inbox.add(|t| t.task(id));
            }
        }
        if !files.is_empty() {
            for inbox in self.assignments.values().flatten() {
                inbox.add(|t| t.merge(&files));
            }
        }
        if !networks.is_empty() {
            for (node, inboxes) in &self.networks {
                for inbox in inboxes {
                    let interest = inbox.interest.lock().unwrap_or_else(|e| e.into_inner());
                    if networks.concern(node, &interest) {
                        inbox.inbox.add(|dirty| *dirty = true);
                    }
                }
            }
        }
    }
}

/// What one commit changed that network views show.
#[derive(Default)]
struct NetworkChanges<'a> {
    /// Every view may have changed (services, networks, the cluster).
    all: bool,
    /// Networks that gained, lost or changed a task.
    networks: HashSet<&'a str>,
    /// Nodes whose own tasks on networks changed (their network set may).
    task_nodes: HashSet<&'a str>,
    /// Nodes that changed (address, state, mesh sandbox).
    nodes: HashSet<&'a str>,
}

impl<'a> NetworkChanges<'a> {
    fn task(&mut self, task: &'a shoal_proto::objects::Task) {
        let mut on_any = false;
        for id in task
            .networks
            .iter()
            .filter_map(|a| a.network.as_ref())
            .map(|n| n.id.as_str())
        {
            self.networks.insert(id);
            on_any = true;
        }
        // A task on no network shows in no view.
        if on_any && !task.node_id.is_empty() {
            self.task_nodes.insert(&task.node_id);
        }
    }

    fn node(&mut self, id: &'a str) {
        self.nodes.insert(id);
    }

    fn is_empty(&self) -> bool {
        !self.all && self.networks.is_empty() && self.nodes.is_empty()
    }

    /// Whether `node`'s view, with this interest, may have changed.
    fn concern(&self, node: &str, interest: &Interest) -> bool {
        self.all
            || self.task_nodes.contains(node)
            || self.nodes.contains(node)
            || (!self.nodes.is_empty() && interest.every_node)
            || self.nodes.iter().any(|n| interest.nodes.contains(*n))
            || self.networks.iter().any(|n| interest.networks.contains(*n))
    }
}

async fn route(
    store: Arc<Store>,
    mut requests: mpsc::UnboundedReceiver<(Subscription, oneshot::Sender<()>)>,
    shutdown: CancellationToken,
) {
    let mut commits = store.watch();
    let mut streams = Streams::default();
    streams.relearn(&store);
    let mut routed = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            request = requests.recv() => {
                let Some((subscription, done)) = request else { return };
                streams.add(subscription);
                let _ = done.send(());
            }
            commit = commits.recv() => match commit {
                Ok(commit) => streams.route(&commit, &store),
                // Missed commits: nobody knows what they touched.
                Err(RecvError::Lagged(_)) => {
                    streams.relearn(&store);
                    streams.everything();
                }
                Err(RecvError::Closed) => return,
            },
        }
        routed += 1;
        if routed.is_multiple_of(256) {
            streams.prune();
        }
    }
}

#[cfg(test)]
mod tests;
