//! The Raft node's loop. It owns the `RawNode` and handles each `Ready`
//! with raft-rs's asynchronous persistence:
//!
//! ```text
//!  send leader messages ─▶ (snapshot: persist durably, restore the store)
//!    ─▶ apply committed entries ─▶ write entries + hard state (not synced)
//!    ─▶ advance_append_async ─▶ hand the Ready's number to the flusher
//!  flusher: fdatasync once for every Ready queued ─▶ on_persist_ready
//!    ─▶ send the messages that promised persistence (votes, append acks)
//! ```
//!
//! The leader replicates before its own write is durable (Raft thesis
//! §10.2.1) and counts itself towards a quorum only once it is; a
//! follower acknowledges entries only once they are on its disk. The loop
//! never waits for the disk, so proposals arriving during a sync join the
//! next one: one fsync per batch of proposals, however many clients.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use prost::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, Message};
use raft::{RawNode, StateRole};
use shoal_proto::raft::RaftMember;
use shoal_proto::store::{Proposal, ProposalGroup, StoreBatch};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::flusher::{Flusher, Synced};
use super::log::RaftLog;
use super::node::{
    Applied, ProposeError, RaftConfig, RaftProgress, RaftStatus, Reply, Request, Transport,
};
use super::snapshotter::{Snapshotter, TakenReport};
use crate::store::Store;

pub(super) struct Node<L: RaftLog, T: Transport> {
    pub(super) config: RaftConfig,
    pub(super) raw: RawNode<L>,
    pub(super) store: Arc<Store>,
    pub(super) transport: T,
    pub(super) members: BTreeMap<u64, RaftMember>,
    /// Proposal id → (term proposed in, waiter).
    pub(super) pending: HashMap<u64, (u64, Reply<Applied>)>,
    /// Proposals received since the last entry was proposed: they go into
    /// the log together, as one entry (see [`ProposalGroup`]).
    group: Vec<(Proposal, Reply<Applied>)>,
    group_bytes: usize,
    pub(super) pending_change: Option<(u64, Reply<()>)>,
    reads: HashMap<u64, Reply<u64>>,
    /// When each peer was last heard from (for `RaftStatus::reachable`).
    heard: HashMap<u64, std::time::Instant>,
    /// Reads asked of a leader that has not committed an entry of its own
    /// term yet: raft-rs drops those silently, so they wait here.
    early_reads: Vec<Reply<u64>>,
    next_id: u64,
    pub(super) status_tx: watch::Sender<RaftStatus>,
    pub(super) applied_tx: watch::Sender<u64>,
    /// Commit and snapshot indexes, for metrics.
    pub(super) progress: Arc<RaftProgress>,
    pub(super) applied: u64,
    pub(super) last_snapshot: u64,
    /// A membership change was applied: snapshot now, because raft-rs
    /// refuses a snapshot whose conf state does not name the receiver, and
    /// a new member catches up from a snapshot.
    pub(super) snapshot_now: bool,
    /// Writes and bytes of entries applied since the last snapshot, and
    /// that snapshot's size: see `maybe_snapshot`.
    pub(super) log_writes: u64,
    pub(super) log_bytes: u64,
    pub(super) snapshot_bytes: u64,
    flusher: Flusher,
    pub(super) snapshotter: Snapshotter,
    /// A snapshot is being written by the snapshotter (one at a time).
    pub(super) snapshotting: bool,
    /// Readys written but not yet durable, oldest first, with the
    /// messages that may leave only once they are.
    unsynced: VecDeque<(u64, Vec<Message>)>,
}

/// Bytes of proposals that fill an entry (raft-rs sends up to 1 MiB of
/// entries per message).
const GROUP_BYTES: usize = 512 * 1024;

/// A loop iteration this long is logged (see `serve`).
const STALL: std::time::Duration = std::time::Duration::from_millis(250);

/// What the node's threads report back to its loop.
pub(super) struct Reports {
    synced: mpsc::UnboundedReceiver<Synced>,
    snapshots: mpsc::UnboundedReceiver<TakenReport>,
}

fn fatal(e: super::storage::StorageError) -> ProposeError {
    tracing::error!(
        error = %e,
        "raft storage failed; this manager stops: fix the cause (free space, \
         restore the file named) and restart the daemon"
    );
    ProposeError::Raft(e.to_string())
}

impl<L: RaftLog, T: Transport> Node<L, T> {
    // Each is a part the node owns or a channel it publishes on.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        config: RaftConfig,
        raw: RawNode<L>,
        store: Arc<Store>,
        transport: T,
        members: BTreeMap<u64, RaftMember>,
        status_tx: watch::Sender<RaftStatus>,
        applied_tx: watch::Sender<u64>,
        progress: Arc<RaftProgress>,
    ) -> (Self, Reports) {
        let applied = *applied_tx.borrow();
        let (flusher, synced) = Flusher::start(raw.store().syncer());
        let (snapshotter, snapshots) = Snapshotter::start(raw.store().snapshot_writer());
        let mut node = Node {
            config,
            raw,
            store,
            transport,
            members,
            pending: HashMap::new(),
            group: Vec::new(),
            group_bytes: 0,
            pending_change: None,
            reads: HashMap::new(),
            heard: HashMap::new(),
            early_reads: Vec::new(),
            next_id: 1,
            status_tx,
            applied_tx,
            progress,
            applied,
            last_snapshot: applied,
            snapshot_now: false,
            log_writes: 0,
            log_bytes: 0,
            snapshot_bytes: 0,
            flusher,
            snapshotter,
            snapshotting: false,
            unsynced: VecDeque::new(),
        };
        node.transport.set_members(&node.members);
        // The snapshot the log starts from is stored.
        node.progress.set_snapshot(node.last_snapshot);
        node.publish_status();
        (node, Reports { synced, snapshots })
    }

    /// Runs until `shutdown`, removal or a storage failure; `reports` are
    /// the threads' report channels from [`Node::new`]; a failure is also
    /// left in `failure`.
    pub(super) async fn run(
        mut self,
        inbox: mpsc::Receiver<Request>,
        reports: Reports,
        shutdown: CancellationToken,
        failure: Arc<std::sync::OnceLock<ProposeError>>,
    ) -> Result<(), ProposeError> {
        let result = self.serve(inbox, reports, shutdown).await;
        // A storage failure fails what it carried, and what comes later
        // (`failure`, which the handle reports), with its own error (a full
        // disk names the file and says so), not a bare "stopped".
        if let Err(e) = &result {
            let _ = failure.set(e.clone());
        }
        self.fail_pending(result.clone().err().unwrap_or(ProposeError::Stopped));
        self.flusher.stop().await;
        self.snapshotter.stop().await;
        result
    }

    async fn serve(
        &mut self,
        mut inbox: mpsc::Receiver<Request>,
        reports: Reports,
        shutdown: CancellationToken,
    ) -> Result<(), ProposeError> {
        let Reports {
            mut synced,
            mut snapshots,
        } = reports;
        let mut ticker = tokio::time::interval(self.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A lone voter need not wait an election timeout to lead.
        if self.raw.raft.prs().conf().voters().ids().len() == 1
            && self.raw.raft.prs().conf().voters().contains(self.config.id)
        {
            let _ = self.raw.campaign();
        }
        let mut last_tick = None;
        loop {
            let mut busy = None;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                report = synced.recv() => match report {
                    Some(Ok(number)) => self.on_synced(number),
                    Some(Err(e)) => return Err(fatal(e)),
                    None => return Err(ProposeError::Raft("the raft flusher stopped".into())),
                },
                report = snapshots.recv() => match report {
                    Some(Ok(taken)) => self.on_snapshot_taken(taken),
                    Some(Err(e)) => return Err(fatal(e)),
                    None => return Err(ProposeError::Raft("the raft snapshot thread stopped".into())),
                },
                _ = ticker.tick() => {
                    let now = std::time::Instant::now();
                    let gap = now - last_tick.unwrap_or(now);
                    if gap >= STALL + self.config.tick {
                        // The loop was not run (a busy runtime or loop):
                        // no heartbeat left meanwhile.
                        tracing::warn!(ms = gap.as_millis() as u64, "raft ticks were late");
                    }
                    last_tick = Some(now);
                    self.raw.tick();
                }
                request = inbox.recv() => match request {
                    Some(request) => {
                        busy = Some(std::time::Instant::now());
                        self.handle(request);
                        // Drain what else is queued: one Ready for many requests.
                        while let Ok(more) = inbox.try_recv() {
                            self.handle(more);
                        }
                        self.propose_group();
                    }
                    None => break,
                },
            }
            busy.get_or_insert_with(std::time::Instant::now);
            self.start_reads();
            self.on_ready()?;
            self.publish_status();
            if let Some(started) = busy
                && started.elapsed() >= STALL
            {
                // No tick, heartbeat or vote is handled meanwhile: past an
                // election timeout, followers elect another leader.
                tracing::warn!(
                    ms = started.elapsed().as_millis() as u64,
                    "the raft loop was busy"
                );
            }
            if self.status_tx.borrow().removed {
                tracing::info!("removed from the raft cluster; stopping the raft node");
                break;
            }
        }
        Ok(())
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Propose(batch, reply) => self.propose(batch, reply),
            Request::Step(message) => {
                // raft-rs panics on some malformed input: never let it see any.
                if let Err(reason) = super::guard::check(&self.raw.raft, &message) {
                    tracing::warn!(
                        from = format_args!("{:x}", message.from),
                        kind = ?message.get_msg_type(),
                        %reason,
                        "refused a raft message"
                    );
                    return;
                }
                self.heard.insert(message.from, std::time::Instant::now());
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
                self.early_reads.push(reply);
                self.start_reads();
            }
            // On a follower raft-rs would forward it to the leader, which
            // takes no such message from peers (see `guard`).
            Request::TransferLeader(to) if self.is_leader() => self.raw.transfer_leader(to),
            Request::TransferLeader(_) => {}
            Request::Unreachable(id) => self.raw.report_unreachable(id),
            Request::SnapshotReport(id, status) => self.raw.report_snapshot(id, status),
        }
    }

    pub(super) fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// Starts the reads waiting for this leader's first commit, once it is.
    /// A follower never starts one: raft-rs would forward it to the leader
    /// (which takes no `MsgReadIndex` from peers).
    fn start_reads(&mut self) {
        if self.early_reads.is_empty() {
            return;
        }
        if !self.is_leader() {
            let error = self.not_leader();
            for reply in self.early_reads.drain(..) {
                let _ = reply.send(Err(error.clone()));
            }
            return;
        }
        if !self.raw.raft.commit_to_current_term() {
            return;
        }
        for reply in std::mem::take(&mut self.early_reads) {
            let id = self.take_id();
            self.raw.read_index(id.to_be_bytes().to_vec());
            self.reads.insert(id, reply);
        }
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

    /// Queues a proposal for the next entry. Everything that arrives
    /// while the loop is busy becomes one entry: one append, one seal, one
    /// message per follower and one apply step for many clients.
    fn propose(&mut self, batch: StoreBatch, reply: Reply<Applied>) {
        if !self.is_leader() {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        let id = self.take_id();
        let proposal = Proposal {
            id,
            batch: Some(batch),
        };
        self.group_bytes += proposal.encoded_len();
        self.group.push((proposal, reply));
        if self.group_bytes >= GROUP_BYTES {
            self.propose_group();
        }
    }

    /// Proposes the queued proposals as one entry.
    fn propose_group(&mut self) {
        if self.group.is_empty() {
            return;
        }
        self.group_bytes = 0;
        let (proposals, replies): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.group).into_iter().unzip();
        let waiters: Vec<_> = proposals.iter().map(|p| p.id).zip(replies).collect();
        if !self.is_leader() {
            // Lost the lead while these were queued (a message stepped).
            for (_, reply) in waiters {
                let _ = reply.send(Err(self.not_leader()));
            }
            return;
        }
        let data = ProposalGroup { proposals }.encode_to_vec();
        match self.raw.propose(Vec::new(), data) {
            Ok(()) => {
                let term = self.raw.raft.term;
                for (id, reply) in waiters {
                    self.pending.insert(id, (term, reply));
                }
            }
            Err(e) => {
                for (_, reply) in waiters {
                    let _ = reply.send(Err(ProposeError::Raft(e.to_string())));
                }
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
        // Before applying: whoever sees an index applied sees it committed.
        self.progress.set_commit(self.raw.raft.raft_log.committed);
        let mut ready = self.raw.ready();
        if let Some(ss) = ready.ss()
            && ss.raft_state != StateRole::Leader
        {
            self.fail_pending(ProposeError::LeadershipLost);
        }
        if !ready.messages().is_empty() {
            self.transport.send(ready.take_messages());
        }
        let number = ready.number();
        let must_sync = ready.must_sync();
        let durable = !ready.snapshot().is_empty();
        if durable {
            // Rare (a follower far behind): written durably in place, with
            // the Ready's entries and hard state, before the store follows.
            let snapshot = ready.snapshot().clone();
            self.raw
                .store()
                .persist(Some(&snapshot), ready.entries(), ready.hs())
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
        self.apply(ready.take_committed_entries())?;
        if !durable {
            self.raw
                .store()
                .write(ready.entries(), ready.hs())
                .map_err(fatal)?;
        }
        let persisted = ready.take_persisted_messages();
        self.raw.advance_append_async(ready);
        if durable {
            // The persist flushed every earlier write too; raft-rs must
            // know before the restored store counts as applied.
            self.unsynced.push_back((number, persisted));
            self.on_synced(number);
        } else if !must_sync && self.unsynced.is_empty() {
            // Nothing to wait for: no earlier Ready is still on its way.
            self.raw.on_persist_ready(number);
            if !persisted.is_empty() {
                self.transport.send(persisted);
            }
        } else {
            self.unsynced.push_back((number, persisted));
            self.flusher.submit(number, must_sync);
        }
        self.raw.advance_apply();
        self.maybe_snapshot().map_err(fatal)?;
        Ok(())
    }

    /// Readys up to `number` are durable.
    fn on_synced(&mut self, number: u64) {
        self.raw.on_persist_ready(number);
        while self.unsynced.front().is_some_and(|(n, _)| *n <= number) {
            let (_, messages) = self.unsynced.pop_front().expect("checked");
            if !messages.is_empty() {
                self.transport.send(messages);
            }
        }
    }

    pub(super) fn fail_pending(&mut self, error: ProposeError) {
        for (_, reply) in self.group.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
        self.group_bytes = 0;
        for (_, (_, reply)) in self.pending.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, reply) in self.reads.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        for reply in self.early_reads.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
        if let Some((_, reply)) = self.pending_change.take() {
            let _ = reply.send(Err(error));
        }
    }

    pub(super) fn publish_status(&mut self) {
        self.progress.set_commit(self.raw.raft.raft_log.committed);
        let leader = self.raw.raft.leader_id;
        if leader != 0 && leader != self.status_tx.borrow().leader {
            crate::metrics::METRICS.leader_changes.inc();
        }
        let status = RaftStatus {
            id: self.config.id,
            leader: self.raw.raft.leader_id,
            term: self.raw.raft.term,
            members: self.members.clone(),
            removed: self.status_tx.borrow().removed,
            removed_ids: self.status_tx.borrow().removed_ids.clone(),
            // raft-rs's `recent_active` is cleared for every peer at each
            // quorum check and set again by its next answer: a peer heard
            // within an election timeout counts too, so a check never
            // reads a healthy member as unreachable in between.
            reachable: if self.is_leader() {
                let window = self.config.tick * self.config.election_tick as u32;
                self.raw
                    .raft
                    .prs()
                    .iter()
                    .filter(|(id, p)| {
                        p.recent_active || self.heard.get(id).is_some_and(|t| t.elapsed() < window)
                    })
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
