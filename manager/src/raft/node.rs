//! The Raft node: an actor ([`super::actor`]) that owns raft-rs's
//! `RawNode`, the log storage and the apply side of the store. Everything
//! reaches it through one channel, behind [`RaftHandle`]; this module is
//! its surface: configuration, errors, status, the transport seam, and
//! [`start`].
//!
//! Proposals are tracked by request id, never by order: a proposal's
//! waiter is woken when *its* entry is applied, with the store's verdict.
//! Leadership loss fails the waiters still pending (their entry may yet
//! commit; callers are told to check and retry, as etcd does).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message as _;
use raft::prelude::{Message, Snapshot};
use raft::{RawNode, SnapshotStatus};
use shoal_proto::raft::{RaftMember, SnapshotData};
use shoal_proto::store::StoreBatch;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::actor::Node;
use super::log::RaftLog;
use crate::store::{Store, StoreError};

/// Timing and snapshot policy.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// This node's Raft id (never 0).
    pub id: u64,
    /// One logical clock tick.
    pub tick: Duration,
    /// Ticks without a leader before a (pre-)vote; randomized up to twice.
    pub election_tick: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_tick: usize,
    /// Applied writes (proposals) between snapshots; a snapshot also waits
    /// until the log since the last one is twice as large as that one.
    pub snapshot_interval: u64,
    /// Entries kept behind a snapshot so a briefly slow follower catches up
    /// from the log instead of a whole snapshot.
    pub keep_entries: u64,
}

impl RaftConfig {
    /// Defaults for a node with `id`: 100 ms ticks, 1 s election timeout
    /// (randomized 1–2 s), snapshot every 10,000 entries like swarmkit.
    pub fn new(id: u64) -> RaftConfig {
        RaftConfig {
            id,
            tick: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 1,
            snapshot_interval: 10_000,
            keep_entries: 500,
        }
    }

    /// raft-rs's configuration for this node, which has applied `applied`.
    pub fn raw_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.id,
            election_tick: self.election_tick,
            heartbeat_tick: self.heartbeat_tick,
            applied,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            // Bounded work per Ready: a follower replaying thousands of entries
            // still ticks, heartbeats and answers between chunks.
            max_committed_size_per_ready: 4 * 1024 * 1024,
            ..Default::default()
        }
    }
}

/// Why a request to the Raft node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader proposes; the caller should forward.
    #[error("this manager is not the leader{}", leader_hint(*.leader))]
    NotLeader {
        /// The leader's Raft id, if known.
        leader: Option<u64>,
    },
    /// The store refused the batch when it was applied.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Leadership changed before the entry was applied.
    #[error(
        "leadership changed before the change was applied; check whether it took effect and retry"
    )]
    LeadershipLost,
    /// The node is stopping or stopped.
    #[error("the raft node is stopped")]
    Stopped,
    /// A membership change is already under way.
    #[error("another membership change is in progress; retry shortly")]
    ChangeInProgress,
    /// Raft refused the request.
    #[error("raft: {0}")]
    Raft(String),
}

fn leader_hint(leader: Option<u64>) -> String {
    leader
        .map(|id| format!(" (leader is raft member {id:x})"))
        .unwrap_or_else(|| " and no leader is known".into())
}

/// Where a committed proposal landed: its log entry and its place among
/// the proposals that entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The log index (every object it wrote has this version).
    pub index: u64,
    /// Its place in the entry.
    pub part: u32,
}

impl Applied {
    /// Whether `commit` is this proposal's echo.
    pub fn is(&self, commit: &crate::store::Commit) -> bool {
        commit.index == self.index && commit.part == self.part
    }
}

/// What the node tells the rest of the manager, continuously.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftStatus {
    /// This node's id.
    pub id: u64,
    /// The current leader (0: none known).
    pub leader: u64,
    /// The current term.
    pub term: u64,
    /// Members by Raft id.
    pub members: BTreeMap<u64, RaftMember>,
    /// Whether this node was removed from the cluster.
    pub removed: bool,
    /// Raft ids this node saw removed from the cluster (since it started:
    /// the log carries no list of them), whose messages are refused.
    pub removed_ids: std::collections::BTreeSet<u64>,
    /// Members the leader heard from within the last election timeout
    /// (known on the leader only; empty elsewhere).
    pub reachable: std::collections::BTreeSet<u64>,
}

impl RaftStatus {
    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        self.leader != 0 && self.leader == self.id
    }
}

/// How far the log has come, for metrics. Apart from [`RaftStatus`]
/// because these move with every commit, and the status's watchers (the
/// leader loops, every session) would wake as often.
#[derive(Debug, Default)]
pub struct RaftProgress {
    commit: AtomicU64,
    snapshot: AtomicU64,
}

impl RaftProgress {
    /// The highest log index this node knows committed.
    pub fn commit(&self) -> u64 {
        self.commit.load(Ordering::Relaxed)
    }

    /// The log index of the last snapshot stored.
    pub fn snapshot(&self) -> u64 {
        self.snapshot.load(Ordering::Relaxed)
    }

    pub(super) fn set_commit(&self, index: u64) {
        self.commit.store(index, Ordering::Relaxed);
    }

    pub(super) fn set_snapshot(&self, index: u64) {
        self.snapshot.store(index, Ordering::Relaxed);
    }
}

/// Where the node's outgoing messages go.
pub trait Transport: Send + 'static {
    /// Sends messages to their `to` members; failures come back through
    /// [`RaftHandle::report_unreachable`] / [`RaftHandle::report_snapshot`].
    fn send(&mut self, messages: Vec<Message>);
    /// The members changed: their addresses are here.
    fn set_members(&mut self, members: &BTreeMap<u64, RaftMember>);
}

pub(super) type Reply<T> = oneshot::Sender<Result<T, ProposeError>>;

pub(super) enum Request {
    Propose(StoreBatch, Reply<Applied>),
    Step(Message),
    AddMember(RaftMember, Reply<()>),
    RemoveMember(u64, Reply<()>),
    ReadIndex(Reply<u64>),
    TransferLeader(u64),
    Unreachable(u64),
    SnapshotReport(u64, SnapshotStatus),
}

/// The way in to the Raft node. Cheap to clone.
#[derive(Clone)]
pub struct RaftHandle {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<RaftStatus>,
    applied: watch::Receiver<u64>,
    progress: Arc<RaftProgress>,
    /// Why the node stopped, when it failed (a full disk, a damaged file):
    /// what every later request is told instead of "stopped".
    failure: Arc<std::sync::OnceLock<ProposeError>>,
}

impl std::fmt::Debug for RaftHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftHandle")
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl RaftHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| self.stopped())?;
        rx.await.map_err(|_| self.stopped())?
    }

    /// What a request to a node that is gone gets: why it failed, if it did.
    fn stopped(&self) -> ProposeError {
        self.failure.get().cloned().unwrap_or(ProposeError::Stopped)
    }

    /// Commits `batch` and waits until it is applied here; returns its index.
    pub async fn propose(&self, batch: StoreBatch) -> Result<u64, ProposeError> {
        Ok(self.propose_marked(batch).await?.index)
    }

    /// [`RaftHandle::propose`], telling where the batch landed: what a
    /// watcher compares with [`crate::store::Commit`] to know its own echo.
    pub async fn propose_marked(&self, batch: StoreBatch) -> Result<Applied, ProposeError> {
        let started = std::time::Instant::now();
        let result = self.ask(|r| Request::Propose(batch, r)).await;
        let metrics = &crate::metrics::METRICS;
        match &result {
            Ok(_) => metrics
                .proposal_duration
                .observe(started.elapsed().as_secs_f64()),
            Err(_) => {
                metrics.proposals_failed.inc();
            }
        }
        result
    }

    /// Waits until this node's store reflects every write committed before
    /// the call (ReadIndex): a linearizable read barrier. Leader only.
    pub async fn read_barrier(&self) -> Result<(), ProposeError> {
        let index = self.ask(Request::ReadIndex).await?;
        self.wait_applied(index).await
    }

    /// Waits until the store has applied `index`.
    pub async fn wait_applied(&self, index: u64) -> Result<(), ProposeError> {
        let mut applied = self.applied.clone();
        applied
            .wait_for(|&a| a >= index)
            .await
            .map_err(|_| ProposeError::Stopped)?;
        Ok(())
    }

    /// Adds a voting member and waits until the change is applied here.
    pub async fn add_member(&self, member: RaftMember) -> Result<(), ProposeError> {
        self.ask(|r| Request::AddMember(member, r)).await
    }

    /// Removes a member and waits until the change is applied here.
    pub async fn remove_member(&self, raft_id: u64) -> Result<(), ProposeError> {
        self.ask(|r| Request::RemoveMember(raft_id, r)).await
    }

    /// Asks the leader to hand leadership to `to`.
    pub async fn transfer_leadership(&self, to: u64) {
        let _ = self.requests.send(Request::TransferLeader(to)).await;
    }

    /// Feeds a message from a peer.
    pub async fn step(&self, message: Message) -> Result<(), ProposeError> {
        self.requests
            .send(Request::Step(message))
            .await
            .map_err(|_| self.stopped())
    }

    /// Feeds a message without waiting; drops it when the node is
    /// overloaded (Raft retransmits what matters).
    pub fn try_step(&self, message: Message) {
        let _ = self.requests.try_send(Request::Step(message));
    }

    /// The transport could not reach `id`.
    pub fn report_unreachable(&self, id: u64) {
        let _ = self.requests.try_send(Request::Unreachable(id));
    }

    /// The transport finished (or failed) sending a snapshot to `id`.
    /// Waits for room in the node's queue: raft-rs holds the member back
    /// until it hears, so this report must not be dropped.
    pub async fn report_snapshot(&self, id: u64, ok: bool) {
        let status = if ok {
            SnapshotStatus::Finish
        } else {
            SnapshotStatus::Failure
        };
        let _ = self
            .requests
            .send(Request::SnapshotReport(id, status))
            .await;
    }

    /// The latest status.
    pub fn status(&self) -> RaftStatus {
        self.status.borrow().clone()
    }

    /// How far the log has come (commit and snapshot indexes).
    pub fn progress(&self) -> &RaftProgress {
        &self.progress
    }

    /// A receiver that sees every status change (leader elected, ...).
    pub fn watch_status(&self) -> watch::Receiver<RaftStatus> {
        self.status.clone()
    }
}

#[cfg(test)]
impl RaftHandle {
    /// A handle whose requests nobody serves yet, with the senders of
    /// its status and applied index: for [`super::instant`].
    pub(super) fn detached(
        status: RaftStatus,
    ) -> (
        RaftHandle,
        mpsc::Receiver<Request>,
        watch::Sender<RaftStatus>,
        watch::Sender<u64>,
    ) {
        let (requests, inbox) = mpsc::channel(64);
        let (status_tx, status) = watch::channel(status);
        let (applied_tx, applied) = watch::channel(0);
        let handle = RaftHandle {
            requests,
            status,
            applied,
            progress: Arc::default(),
            failure: Arc::default(),
        };
        (handle, inbox, status_tx, applied_tx)
    }
}

/// The members and empty store a brand-new cluster starts from: a
/// snapshot at index 1 whose only voter is `founder`.
pub fn bootstrap_snapshot(founder: RaftMember) -> Snapshot {
    single_member_snapshot(founder, Default::default(), 1, 1)
}

/// A snapshot at `index`/`term` holding `store`, whose only voter is
/// `member`: how a new cluster starts, and how `--force-new-cluster`
/// restarts a survivor with everything it knew.
pub fn single_member_snapshot(
    member: RaftMember,
    store: shoal_proto::store::StoreSnapshot,
    index: u64,
    term: u64,
) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let meta = snapshot.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.mut_conf_state().voters = vec![member.raft_id];
    let data = SnapshotData {
        store: Some(store),
        members: vec![member],
    };
    snapshot.data = data.encode_to_vec().into();
    snapshot
}

/// Starts the node on `log` (already holding whatever state it has, or a
/// bootstrap snapshot), restoring `store` from the log's snapshot first.
/// `peers` are the members a brand-new joiner starts from (ignored when
/// the log has a snapshot).
/// Returns its handle; it runs until `shutdown` fires or it is removed.
pub fn start<L: RaftLog, T: Transport>(
    config: RaftConfig,
    log: L,
    store: Arc<Store>,
    peers: Vec<RaftMember>,
    make_transport: impl FnOnce(RaftHandle) -> T + Send + 'static,
    shutdown: CancellationToken,
) -> Result<
    (
        RaftHandle,
        tokio::task::JoinHandle<Result<(), ProposeError>>,
    ),
    ProposeError,
> {
    let raft_err = |e: raft::Error| ProposeError::Raft(e.to_string());
    let snapshot = log.snapshot(0, 0).map_err(raft_err)?;
    let mut members = BTreeMap::new();
    let applied = snapshot.get_metadata().index;
    if applied > 0 {
        let data = SnapshotData::decode(snapshot.data.as_ref())
            .map_err(|e| ProposeError::Raft(format!("snapshot data is damaged: {e}")))?;
        store.restore(applied, data.store.unwrap_or_default());
        members = data.members.into_iter().map(|m| (m.raft_id, m)).collect();
    }
    if members.is_empty() {
        // A new member: it must answer the leader before its first snapshot.
        members = peers.into_iter().map(|m| (m.raft_id, m)).collect();
    }
    let raft_config = config.raw_config(applied);
    raft_config.validate().map_err(raft_err)?;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let raw = RawNode::new(&raft_config, log, &logger).map_err(raft_err)?;

    let (requests, inbox) = mpsc::channel(4096);
    let (status_tx, status) = watch::channel(RaftStatus {
        id: config.id,
        members: members.clone(),
        ..Default::default()
    });
    let (applied_tx, applied_rx) = watch::channel(applied);
    let failure = Arc::new(std::sync::OnceLock::new());
    let progress = Arc::new(RaftProgress::default());
    let handle = RaftHandle {
        requests,
        status,
        applied: applied_rx,
        progress: progress.clone(),
        failure: failure.clone(),
    };
    // The loop, and the transport's tasks and connections it spawns, run
    // on a thread and runtime of their own: on the daemon's runtime, its
    // ticks waited behind whatever held its workers (a leader's loops
    // walking 100,000 tasks), up to a second late, and the followers
    // elected another leader.
    let snapshot_bytes = snapshot.data.len() as u64;
    let for_transport = handle.clone();
    let (done, ended) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ProposeError::Raft(format!("starting the raft runtime: {e}")))?;
    std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            let result = runtime.block_on(async move {
                let transport = make_transport(for_transport);
                let (mut node, reports) = Node::new(
                    config, raw, store, transport, members, status_tx, applied_tx, progress,
                );
                // The snapshot it restarted from sets when the next one is due.
                node.snapshot_bytes = snapshot_bytes;
                node.run(inbox, reports, shutdown, failure).await
            });
            let _ = done.send(result);
        })
        .map_err(|e| ProposeError::Raft(format!("starting the raft thread: {e}")))?;
    let task = tokio::spawn(async move { ended.await.unwrap_or(Err(ProposeError::Stopped)) });
    Ok((handle, task))
}
