//! The Raft node: an actor that owns raft-rs's `RawNode`, the log storage
//! and the apply side of the store. Everything reaches it through one
//! channel ([`RaftHandle`]); it ticks, steps peer messages, proposes, and
//! handles each `Ready` in the order raft-rs documents:
//!
//! ```text
//!  send leader messages ─▶ apply snapshot ─▶ apply committed entries
//!        ─▶ persist entries + hard state (durable) ─▶ send persisted messages
//!        ─▶ advance ─▶ light ready: commit index, messages, more entries
//! ```
//!
//! Proposals are tracked by request id, never by order: a proposal's
//! waiter is woken when *its* entry is applied, with the store's verdict.
//! Leadership loss fails the waiters still pending (their entry may yet
//! commit; callers are told to check and retry, as etcd does).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, Message, Snapshot};
use raft::{RawNode, SnapshotStatus, StateRole};
use shoal_proto::raft::{RaftMember, SnapshotData};
use shoal_proto::store::{Proposal, StoreBatch};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

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
    /// Applied entries between snapshots.
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

/// Where the node's outgoing messages go.
pub trait Transport: Send + 'static {
    /// Sends messages to their `to` members; failures come back through
    /// [`RaftHandle::report_unreachable`] / [`RaftHandle::report_snapshot`].
    fn send(&mut self, messages: Vec<Message>);
    /// The members changed: their addresses are here.
    fn set_members(&mut self, members: &BTreeMap<u64, RaftMember>);
}

type Reply<T> = oneshot::Sender<Result<T, ProposeError>>;

enum Request {
    Propose(StoreBatch, Reply<u64>),
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
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }

    /// Commits `batch` and waits until it is applied here; returns its index.
    pub async fn propose(&self, batch: StoreBatch) -> Result<u64, ProposeError> {
        self.ask(|r| Request::Propose(batch, r)).await
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
            .map_err(|_| ProposeError::Stopped)
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
    pub fn report_snapshot(&self, id: u64, ok: bool) {
        let status = if ok {
            SnapshotStatus::Finish
        } else {
            SnapshotStatus::Failure
        };
        let _ = self.requests.try_send(Request::SnapshotReport(id, status));
    }

    /// The latest status.
    pub fn status(&self) -> RaftStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change (leader elected, ...).
    pub fn watch_status(&self) -> watch::Receiver<RaftStatus> {
        self.status.clone()
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
    make_transport: impl FnOnce(RaftHandle) -> T,
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
    let raft_config = raft::Config {
        id: config.id,
        election_tick: config.election_tick,
        heartbeat_tick: config.heartbeat_tick,
        applied,
        pre_vote: true,
        check_quorum: true,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        // Bounded work per Ready: a follower replaying thousands of entries
        // still ticks, heartbeats and answers between chunks.
        max_committed_size_per_ready: 4 * 1024 * 1024,
        ..Default::default()
    };
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
    let handle = RaftHandle {
        requests,
        status,
        applied: applied_rx,
    };
    let transport = make_transport(handle.clone());
    let mut node = Node {
        config,
        raw,
        store,
        transport,
        members,
        pending: HashMap::new(),
        pending_change: None,
        reads: HashMap::new(),
        next_id: 1,
        status_tx,
        applied_tx,
        applied,
        last_snapshot: applied,
        snapshot_now: false,
    };
    node.transport.set_members(&node.members);
    node.publish_status();
    let task = tokio::spawn(async move { node.run(inbox, shutdown).await });
    Ok((handle, task))
}

struct Node<L: RaftLog, T: Transport> {
    config: RaftConfig,
    raw: RawNode<L>,
    store: Arc<Store>,
    transport: T,
    members: BTreeMap<u64, RaftMember>,
    /// Proposal id → (term proposed in, waiter).
    pending: HashMap<u64, (u64, Reply<u64>)>,
    pending_change: Option<(u64, Reply<()>)>,
    reads: HashMap<u64, Reply<u64>>,
    next_id: u64,
    status_tx: watch::Sender<RaftStatus>,
    applied_tx: watch::Sender<u64>,
    applied: u64,
    last_snapshot: u64,
    /// A membership change was applied: snapshot now, because raft-rs
    /// refuses a snapshot whose conf state does not name the receiver, and
    /// a new member catches up from a snapshot.
    snapshot_now: bool,
}

impl<L: RaftLog, T: Transport> Node<L, T> {
    async fn run(
        &mut self,
        mut inbox: mpsc::Receiver<Request>,
        shutdown: CancellationToken,
    ) -> Result<(), ProposeError> {
        let mut ticker = tokio::time::interval(self.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A lone voter need not wait an election timeout to lead.
        if self.raw.raft.prs().conf().voters().ids().len() == 1
            && self.raw.raft.prs().conf().voters().contains(self.config.id)
        {
            let _ = self.raw.campaign();
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => { self.raw.tick(); }
                request = inbox.recv() => match request {
                    Some(request) => {
                        self.handle(request);
                        // Drain what else is queued: one Ready for many requests.
                        while let Ok(more) = inbox.try_recv() {
                            self.handle(more);
                        }
                    }
                    None => break,
                },
            }
            self.on_ready()?;
            if self.status_tx.borrow().removed {
                tracing::info!("removed from the raft cluster; stopping the raft node");
                break;
            }
        }
        self.fail_pending(ProposeError::Stopped);
        Ok(())
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Propose(batch, reply) => self.propose(batch, reply),
            Request::Step(message) => {
                if let Err(e) = self.raw.step(message) {
                    tracing::debug!(error = %e, "dropped a raft message");
                }
            }
            Request::AddMember(member, reply) => {
                let mut cc = ConfChange::default();
                cc.set_change_type(ConfChangeType::AddNode);
                cc.node_id = member.raft_id;
                let context = member.encode_to_vec();
                self.change(cc, context, reply);
            }
            Request::RemoveMember(id, reply) => {
                let mut cc = ConfChange::default();
                cc.set_change_type(ConfChangeType::RemoveNode);
                cc.node_id = id;
                self.change(cc, Vec::new(), reply);
            }
            Request::ReadIndex(reply) => {
                if !self.is_leader() {
                    let _ = reply.send(Err(self.not_leader()));
                    return;
                }
                let id = self.take_id();
                self.raw.read_index(id.to_be_bytes().to_vec());
                self.reads.insert(id, reply);
            }
            Request::TransferLeader(to) => self.raw.transfer_leader(to),
            Request::Unreachable(id) => self.raw.report_unreachable(id),
            Request::SnapshotReport(id, status) => self.raw.report_snapshot(id, status),
        }
    }

    fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    fn not_leader(&self) -> ProposeError {
        let leader = self.raw.raft.leader_id;
        ProposeError::NotLeader {
            leader: (leader != 0).then_some(leader),
        }
    }

    fn take_id(&mut self) -> u64 {
        // Unique across restarts of this member: raft id in the high bits
        // would not be, so mix in the term.
        self.next_id += 1;
        (self.raw.raft.term << 40) | self.next_id
    }

    fn propose(&mut self, batch: StoreBatch, reply: Reply<u64>) {
        if !self.is_leader() {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        let id = self.take_id();
        let data = Proposal {
            id,
            batch: Some(batch),
        }
        .encode_to_vec();
        match self.raw.propose(Vec::new(), data) {
            Ok(()) => {
                self.pending.insert(id, (self.raw.raft.term, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(ProposeError::Raft(e.to_string())));
            }
        }
    }

    fn change(&mut self, mut cc: ConfChange, context: Vec<u8>, reply: Reply<()>) {
        if !self.is_leader() {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        if self.pending_change.is_some() {
            let _ = reply.send(Err(ProposeError::ChangeInProgress));
            return;
        }
        let id = self.take_id();
        cc.id = id;
        match self.raw.propose_conf_change(context, cc) {
            Ok(()) => self.pending_change = Some((id, reply)),
            Err(e) => {
                let _ = reply.send(Err(ProposeError::Raft(e.to_string())));
            }
        }
    }

    fn on_ready(&mut self) -> Result<(), ProposeError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let fatal = |e: super::storage::StorageError| {
            tracing::error!(error = %e, "raft storage failed; stopping");
            ProposeError::Raft(e.to_string())
        };
        let mut ready = self.raw.ready();
        if let Some(ss) = ready.ss()
            && ss.raft_state != StateRole::Leader
        {
            self.fail_pending(ProposeError::LeadershipLost);
        }
        if !ready.messages().is_empty() {
            self.transport.send(ready.take_messages());
        }
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.raw
                .store()
                .persist(Some(&snapshot), &[], None)
                .map_err(fatal)?;
            self.restore(&snapshot)?;
        }
        for state in ready.take_read_states() {
            let id = state
                .request_ctx
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if let Some(reply) = self.reads.remove(&id) {
                let _ = reply.send(Ok(state.index));
            }
        }
        let committed = ready.take_committed_entries();
        self.apply(committed)?;
        self.raw
            .store()
            .persist(None, ready.entries(), ready.hs())
            .map_err(fatal)?;
        if !ready.persisted_messages().is_empty() {
            self.transport.send(ready.take_persisted_messages());
        }
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.store().set_commit(commit).map_err(fatal)?;
        }
        if !light.messages().is_empty() {
            self.transport.send(light.take_messages());
        }
        self.apply(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.maybe_snapshot().map_err(fatal)?;
        self.publish_status();
        Ok(())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), ProposeError> {
        let data = SnapshotData::decode(snapshot.data.as_ref())
            .map_err(|e| ProposeError::Raft(format!("snapshot data is damaged: {e}")))?;
        let index = snapshot.get_metadata().index;
        self.store.restore(index, data.store.unwrap_or_default());
        tracing::info!(index, "restored store from raft snapshot");
        self.members = data.members.into_iter().map(|m| (m.raft_id, m)).collect();
        self.transport.set_members(&self.members);
        self.applied = index;
        self.last_snapshot = index;
        let _ = self.applied_tx.send(index);
        Ok(())
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), ProposeError> {
        for entry in entries {
            let index = entry.index;
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => self.store.skip(index),
                EntryType::EntryNormal => self.apply_proposal(index, &entry.data),
                EntryType::EntryConfChange => self.apply_change(index, &entry)?,
                EntryType::EntryConfChangeV2 => self.store.skip(index),
            }
            self.applied = index;
            let _ = self.applied_tx.send(index);
        }
        Ok(())
    }

    fn apply_proposal(&mut self, index: u64, data: &[u8]) {
        let proposal = match Proposal::decode(data) {
            Ok(p) => p,
            Err(e) => {
                // Every manager skips it alike, so stores stay identical.
                tracing::error!(index, error = %e, "undecodable log entry skipped");
                self.store.skip(index);
                return;
            }
        };
        let result = self.store.apply(index, &proposal.batch.unwrap_or_default());
        if let Some((_, reply)) = self.pending.remove(&proposal.id) {
            let _ = reply.send(result.map(|()| index).map_err(ProposeError::from));
        }
    }

    fn apply_change(&mut self, index: u64, entry: &Entry) -> Result<(), ProposeError> {
        let cc = ConfChange::parse_from_bytes(&entry.data)
            .map_err(|e| ProposeError::Raft(e.to_string()))?;
        let conf_state = self
            .raw
            .apply_conf_change(&cc)
            .map_err(|e| ProposeError::Raft(e.to_string()))?;
        self.raw
            .store()
            .set_conf_state(conf_state)
            .map_err(|e| ProposeError::Raft(e.to_string()))?;
        match cc.get_change_type() {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                if let Ok(member) = RaftMember::decode(entry.context.as_ref()) {
                    self.members.insert(cc.node_id, member);
                }
            }
            ConfChangeType::RemoveNode => {
                self.members.remove(&cc.node_id);
                if cc.node_id == self.config.id {
                    self.status_tx.send_modify(|s| s.removed = true);
                }
            }
        }
        self.transport.set_members(&self.members);
        self.store.skip(index);
        self.snapshot_now = true;
        if let Some((id, reply)) = self.pending_change.take() {
            if id == cc.id {
                let _ = reply.send(Ok(()));
            } else {
                self.pending_change = Some((id, reply));
            }
        }
        Ok(())
    }

    fn maybe_snapshot(&mut self) -> Result<(), super::storage::StorageError> {
        let due = self.applied >= self.last_snapshot + self.config.snapshot_interval;
        if !(due || self.snapshot_now) || self.applied <= self.last_snapshot {
            return Ok(());
        }
        self.snapshot_now = false;
        let (index, store) = self.store.snapshot();
        let data = SnapshotData {
            store: Some(store),
            members: self.members.values().cloned().collect(),
        };
        let conf_state: ConfState = self.raw.raft.prs().conf().to_conf_state();
        self.raw
            .store()
            .create_snapshot(index, conf_state, data.encode_to_vec())?;
        let keep_from = index.saturating_sub(self.config.keep_entries);
        if keep_from > 1 {
            self.raw.store().compact(keep_from)?;
        }
        self.last_snapshot = index;
        tracing::debug!(index, "raft snapshot taken");
        Ok(())
    }

    fn fail_pending(&mut self, error: ProposeError) {
        for (_, (_, reply)) in self.pending.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, reply) in self.reads.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        if let Some((_, reply)) = self.pending_change.take() {
            let _ = reply.send(Err(error));
        }
    }

    fn publish_status(&mut self) {
        let status = RaftStatus {
            id: self.config.id,
            leader: self.raw.raft.leader_id,
            term: self.raw.raft.term,
            members: self.members.clone(),
            removed: self.status_tx.borrow().removed,
            reachable: if self.is_leader() {
                self.raw
                    .raft
                    .prs()
                    .iter()
                    .filter(|(_, p)| p.recent_active)
                    .map(|(id, _)| *id)
                    .collect()
            } else {
                Default::default()
            },
        };
        self.status_tx.send_if_modified(|s| {
            if *s == status {
                false
            } else {
                *s = status;
                true
            }
        });
    }
}
