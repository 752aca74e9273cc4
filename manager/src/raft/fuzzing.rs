//! The `raft_peer_message` fuzz target's harness (`fuzz/`): what a member
//! does with its peers' messages, against a real raft-rs `RawNode`. Not an
//! API: see `crate::fuzzing`.
//!
//! Each message goes the way one from the network goes: decoded as the
//! Raft service decodes it ([`super::service::decode`], inside a
//! `RaftMessage` batch or alone), admitted by the service's checks for the
//! certificate it came with ([`super::service::admit`]), checked against
//! the node's state by [`super::guard::check`] and only then stepped. Each
//! `Ready` is then handled as the node's loop handles it (raft-rs's
//! `MemStorage` for the disk): a snapshot is stored and restored into a
//! [`Store`], committed entries are applied (proposals into the store,
//! membership changes through the guard's check into raft-rs), entries
//! and the hard state are stored.
//!
//! Anything that panics here would stop a manager: raft-rs panics on
//! input it cannot make sense of, and `MemStorage` panics where the real
//! storage returns an error the node's loop treats as fatal. The guard is
//! meant to let none of them through.
//!
//! Input: a scenario byte (the member is a follower with a log, the
//! leader, a candidate, or a follower restored from a snapshot), then
//! operations, each a byte and what it takes:
//! - `0`: certificate byte, u16 LE length, one raft `Message` (protobuf);
//! - `1`: certificate byte, u16 LE length, a `RaftMessage` batch (prost);
//! - `2`: a byte: that many ticks (mod 32);
//! - `3`: u16 LE length, data this member proposes (when it leads);
//! - `4`: certificate byte, then a message spelled out field by field
//!   (see [`spelled`]): byte-sized indexes and terms, entries and
//!   snapshots made of the data members really send. Mutating protobuf
//!   bytes rarely lands on the few values that matter (an index equal to
//!   the commit, a term one above); this reaches them.
//!
//! The certificate byte picks whose certificate the connection shows:
//! node `n1` (raft id 1), `n3` (raft id 3), or `n9` (no member yet).

use prost::Message as _;
use protobuf::Message as _;
use raft::prelude::{ConfChange, Entry, EntryType, Message, MessageType, Snapshot};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};
use shoal_proto::identity::{NodeIdentity, NodeRole};
use shoal_proto::raft::{RaftMember, RaftMessage, SnapshotData};
use shoal_proto::store::{Proposal, ProposalGroup, StoreAction, StoreBatch, StoreSnapshot};

use super::node::{RaftConfig, RaftStatus};
use crate::store::Store;

/// This member's raft id.
const ME: u64 = 2;

fn member(raft_id: u64) -> RaftMember {
    RaftMember {
        raft_id,
        node_id: format!("n{raft_id}"),
        addr: format!("10.0.0.{raft_id}:2377"),
    }
}

/// The member under test, its store and what its status says.
struct Member {
    raw: RawNode<MemStorage>,
    store: Store,
    status: RaftStatus,
}

impl Member {
    fn new(storage: MemStorage, applied: u64) -> Member {
        let config = RaftConfig::new(ME).raw_config(applied);
        config.validate().expect("a valid raft config");
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&config, storage, &logger).expect("a raft node");
        Member {
            raw,
            store: Store::new(),
            status: RaftStatus {
                id: ME,
                members: (1..=3).map(|id| (id, member(id))).collect(),
                ..RaftStatus::default()
            },
        }
    }

    /// A message from a peer, by the way the node's loop takes one.
    fn step(&mut self, m: Message) {
        if super::guard::check(&self.raw.raft, &m).is_ok() {
            let _ = self.raw.step(m);
        }
    }

    /// Handles every `Ready` as the node's loop does.
    fn ready(&mut self) {
        while self.raw.has_ready() && !self.status.removed {
            let mut ready = self.raw.ready();
            drop(ready.take_messages());
            if !ready.snapshot().is_empty() {
                let snapshot = ready.snapshot().clone();
                self.raw
                    .mut_store()
                    .wl()
                    .apply_snapshot(snapshot.clone())
                    .unwrap_or_else(|e| panic!("storing a snapshot failed (fatal): {e}"));
                self.restore(&snapshot);
            }
            self.apply(ready.take_committed_entries());
            if !ready.entries().is_empty() {
                self.raw.mut_store().wl().append(ready.entries()).unwrap();
            }
            if let Some(hs) = ready.hs() {
                self.raw.mut_store().wl().set_hardstate(hs.clone());
            }
            drop(ready.take_persisted_messages());
            let mut light = self.raw.advance(ready);
            if let Some(commit) = light.commit_index() {
                self.raw.mut_store().wl().mut_hard_state().commit = commit;
            }
            drop(light.take_messages());
            self.apply(light.take_committed_entries());
            self.raw.advance_apply();
        }
    }

    /// As the node's apply side restores a snapshot from the leader.
    fn restore(&mut self, snapshot: &Snapshot) {
        let data = SnapshotData::decode(snapshot.data.as_ref())
            .unwrap_or_else(|e| panic!("a snapshot with damaged data (fatal): {e}"));
        self.store.restore(
            snapshot.get_metadata().index,
            data.store.unwrap_or_default(),
        );
        self.status.members = data.members.into_iter().map(|m| (m.raft_id, m)).collect();
    }

    /// As the node's apply side applies committed entries.
    fn apply(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            let index = entry.index;
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => self.store.skip(index),
                EntryType::EntryNormal => apply_entry(&self.store, index, &entry.data),
                EntryType::EntryConfChange => self.apply_change(&entry),
                EntryType::EntryConfChangeV2 => self.store.skip(index),
            }
        }
    }

    fn apply_change(&mut self, entry: &Entry) {
        self.store.skip(entry.index);
        let Ok(cc) = ConfChange::parse_from_bytes(&entry.data) else {
            return;
        };
        let applied = super::guard::check_conf_change(&entry.data, &entry.context)
            .and_then(|()| self.raw.apply_conf_change(&cc).map_err(|e| e.to_string()));
        let Ok(conf_state) = applied else { return };
        self.raw.mut_store().wl().set_conf_state(conf_state);
        match cc.get_change_type() {
            raft::prelude::ConfChangeType::RemoveNode => {
                self.status.members.remove(&cc.node_id);
                self.status.removed_ids.insert(cc.node_id);
                self.status.removed |= cc.node_id == ME;
            }
            _ => {
                if let Ok(m) = RaftMember::decode(entry.context.as_ref()) {
                    self.status.members.insert(cc.node_id, m);
                }
            }
        }
    }
}

/// Entry data creating a service named `name`, as a leader proposes it.
pub(crate) fn create_service(id: u64, name: &str) -> Vec<u8> {
    let service = shoal_proto::objects::Service {
        id: format!("svc{id}"),
        spec: Some(shoal_proto::objects::ServiceSpec {
            annotations: Some(shoal_proto::objects::Annotations {
                name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    ProposalGroup {
        proposals: vec![Proposal {
            id,
            batch: Some(StoreBatch {
                actions: vec![StoreAction {
                    kind: 0,
                    target: Some(shoal_proto::store::store_action::Target::Service(Box::new(
                        service,
                    ))),
                }],
            }),
        }],
    }
    .encode_to_vec()
}

fn entry(index: u64, term: u64, data: Vec<u8>) -> Entry {
    Entry {
        index,
        term,
        data: data.into(),
        ..Default::default()
    }
}

fn message(kind: MessageType, from: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(kind);
    m.from = from;
    m.to = ME;
    m.term = term;
    m
}

/// Member 2 of {1, 2, 3} following leader 1 in term 5, entries 1..=3
/// (the first two committed).
fn follower() -> Member {
    let storage = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
    let mut member = Member::new(storage, 0);
    let mut append = message(MessageType::MsgAppend, 1, 5);
    append.entries = vec![
        entry(1, 5, Vec::new()),
        entry(2, 5, create_service(1, "web")),
        entry(3, 5, create_service(2, "db")),
    ]
    .into();
    append.commit = 2;
    member.step(append);
    member.ready();
    member
}

/// The follower after it won an election: leader of term 6.
fn leader() -> Member {
    let mut member = follower();
    member.raw.raft.become_candidate();
    member.raw.raft.become_leader();
    member.ready();
    member
}

/// The follower after its election timeout: a pre-candidate.
fn candidate() -> Member {
    let mut member = follower();
    for _ in 0..40 {
        member.raw.tick();
        member.ready();
    }
    member
}

/// Member 2 restored from the leader's snapshot at index 10, term 4,
/// then given entries 11 and 12 in term 5, not committed yet (what a
/// member holds right after a snapshot, or restarted from one).
fn restored() -> Member {
    let mut snapshot = Snapshot::default();
    let meta = snapshot.mut_metadata();
    meta.index = 10;
    meta.term = 4;
    meta.mut_conf_state().voters = vec![1, 2, 3];
    snapshot.data = snapshot_data().into();
    let storage = MemStorage::new();
    storage.wl().apply_snapshot(snapshot.clone()).unwrap();
    let mut member = Member::new(storage, 10);
    member.restore(&snapshot);
    let mut append = message(MessageType::MsgAppend, 1, 5);
    append.index = 10;
    append.log_term = 4;
    append.entries = vec![
        entry(11, 5, Vec::new()),
        entry(12, 5, create_service(3, "api")),
    ]
    .into();
    append.commit = 10;
    member.step(append);
    member.ready();
    member
}

/// A snapshot's data: a small store and the three members.
pub(crate) fn snapshot_data() -> Vec<u8> {
    let store = Store::new();
    let batch = ProposalGroup::decode(&create_service(1, "web")[..])
        .expect("a group")
        .proposals
        .remove(0)
        .batch
        .unwrap_or_default();
    store.apply(1, batch).expect("a new service applies");
    let (_, objects): (u64, StoreSnapshot) = store.snapshot();
    SnapshotData {
        store: Some(objects),
        members: (1..=3).map(member).collect(),
    }
    .encode_to_vec()
}

/// Runs the operations in `data` against a member; panics where the
/// member would stop.
pub fn peer_messages(data: &[u8]) {
    let Some((&scenario, mut data)) = data.split_first() else {
        return;
    };
    let mut m = match scenario % 4 {
        0 => follower(),
        1 => leader(),
        2 => candidate(),
        _ => restored(),
    };
    let mut next = || -> Option<u8> {
        let (&b, rest) = data.split_first()?;
        data = rest;
        Some(b)
    };
    // `next` cannot lend slices; bodies are read through this helper.
    let mut ops: Vec<(u8, u8, Vec<u8>)> = Vec::new();
    while let Some(op) = next() {
        match op % 5 {
            2 => ops.push((2, next().unwrap_or(1), Vec::new())),
            4 => {
                let cert = next().unwrap_or(0);
                let body: Vec<u8> = (0..SPELLED_LEN).map_while(|_| next()).collect();
                ops.push((4, cert, body));
            }
            kind => {
                let cert = if kind == 3 { 0 } else { next().unwrap_or(0) };
                let len = u16::from_le_bytes([next().unwrap_or(0), next().unwrap_or(0)]);
                let body: Vec<u8> = (0..len).map_while(|_| next()).collect();
                ops.push((kind, cert, body));
            }
        }
    }
    for (kind, arg, body) in ops {
        if m.status.removed {
            // Removed from the cluster: the node stops.
            return;
        }
        match kind {
            0 | 1 | 4 => {
                let messages = if kind == 0 {
                    super::service::decode(&body).map(|m| vec![m])
                } else if kind == 4 {
                    Ok(vec![spelled(&body)])
                } else {
                    RaftMessage::decode(&body[..])
                        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))
                        .and_then(|batch| {
                            batch
                                .messages
                                .iter()
                                .map(|bytes| super::service::decode(bytes))
                                .collect()
                        })
                };
                let Ok(messages) = messages else { continue };
                let peer = NodeIdentity {
                    node_id: ["n1", "n3", "n9"][usize::from(arg % 3)].to_string(),
                    role: NodeRole::Manager,
                    cluster_id: "c".into(),
                };
                if super::service::admit(&m.status, &peer, &messages).is_err() {
                    continue;
                }
                for message in messages {
                    m.step(message);
                    m.ready();
                }
            }
            2 => {
                for _ in 0..arg % 32 {
                    m.raw.tick();
                    m.ready();
                }
            }
            _ => {
                if m.raw.raft.state == StateRole::Leader {
                    let _ = m.raw.propose(Vec::new(), body);
                    m.ready();
                }
            }
        }
    }
    // What the node publishes must still make sense.
    let _ = m.raw.raft.prs().conf().to_conf_state();
}

/// Applies a committed entry's data at `index` as the node's apply side
/// does (each proposal on its own; undecodable data is skipped).
pub fn apply_entry(store: &Store, index: u64, data: &[u8]) {
    match super::apply::proposals(data) {
        Ok(proposals) => {
            for (part, p) in proposals.into_iter().enumerate() {
                let _ = store.apply_part(index, part as u32, p.batch.unwrap_or_default());
            }
        }
        Err(_) => store.skip(index),
    }
}

/// Bytes a spelled-out message takes (missing ones read as 0).
const SPELLED_LEN: usize = 24;

/// The kinds members send each other, in the order spelled messages
/// number them.
const KINDS: [MessageType; 10] = [
    MessageType::MsgAppend,
    MessageType::MsgAppendResponse,
    MessageType::MsgRequestVote,
    MessageType::MsgRequestVoteResponse,
    MessageType::MsgRequestPreVote,
    MessageType::MsgRequestPreVoteResponse,
    MessageType::MsgSnapshot,
    MessageType::MsgHeartbeat,
    MessageType::MsgHeartbeatResponse,
    MessageType::MsgTimeoutNow,
];

/// A message spelled out in [`SPELLED_LEN`] bytes: kind, flags (bit 0:
/// addressed to another member, bit 1: reject), from, term, index, log
/// term, commit, reject hint, entry count (mod 5) and four (term, data)
/// pairs, snapshot index, term, voters (a bit per raft id 1..=8), data.
/// Entry data and snapshot data come from a short list: empty, a
/// proposal, a membership change (add or remove a member), garbage.
fn spelled(b: &[u8]) -> Message {
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let small = |i: usize| u64::from(at(i));
    let mut m = Message::default();
    m.set_msg_type(KINDS[usize::from(at(0)) % KINDS.len()]);
    m.to = if at(1) & 1 != 0 { 3 } else { ME };
    m.reject = at(1) & 2 != 0;
    m.from = small(2);
    m.term = small(3);
    m.index = small(4);
    m.log_term = small(5);
    m.commit = small(6);
    m.reject_hint = small(7);
    let count = usize::from(at(8) % 5);
    m.entries = (0..count)
        .map(|i| {
            let term = small(9 + 2 * i);
            let mut e = entry(m.index + 1 + i as u64, term, Vec::new());
            spelled_data(&mut e, at(10 + 2 * i));
            e
        })
        .collect::<Vec<_>>()
        .into();
    if m.get_msg_type() == MessageType::MsgSnapshot {
        let snap = m.mut_snapshot();
        let meta = snap.mut_metadata();
        meta.index = small(17);
        meta.term = small(18);
        meta.mut_conf_state().voters = (1..=8).filter(|id| at(19) & (1 << (id - 1)) != 0).collect();
        snap.data = match at(20) % 3 {
            0 => snapshot_data(),
            1 => Vec::new(),
            _ => vec![0xff; 4],
        }
        .into();
    }
    m
}

/// Entry data by number: empty, a proposal, adding or removing member
/// `choice / 8 % 8`, or garbage.
fn spelled_data(e: &mut Entry, choice: u8) {
    let id = u64::from(choice / 8 % 8);
    match choice % 8 {
        0 => {}
        1 => e.data = create_service(id, &format!("s{id}")).into(),
        2 | 3 => {
            let mut cc = ConfChange {
                node_id: id,
                ..Default::default()
            };
            if choice % 8 == 2 {
                cc.set_change_type(raft::prelude::ConfChangeType::AddNode);
                e.context = member(id).encode_to_vec().into();
            } else {
                cc.set_change_type(raft::prelude::ConfChangeType::RemoveNode);
            }
            e.set_entry_type(EntryType::EntryConfChange);
            e.data = cc.write_to_bytes().expect("encode a conf change").into();
        }
        4 => e.set_entry_type(EntryType::EntryConfChangeV2),
        _ => e.data = vec![choice; 3].into(),
    }
}

/// Inputs a member gets from honest peers, to start a corpus from.
pub fn seeds() -> Vec<Vec<u8>> {
    // A spelled-out message from member 1's certificate (op 4).
    let spell = |fields: &[u8]| {
        let mut out = vec![4, 0];
        out.extend_from_slice(fields);
        out.resize(2 + SPELLED_LEN, 0);
        out
    };
    let op = |kind: u8, cert: u8, m: &Message| {
        let body = m.write_to_bytes().expect("encode a raft message");
        let mut out = vec![kind, cert];
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out
    };
    let mut heartbeat = message(MessageType::MsgHeartbeat, 1, 5);
    heartbeat.commit = 3;
    let mut append = message(MessageType::MsgAppend, 1, 5);
    append.index = 3;
    append.log_term = 5;
    append.commit = 4;
    append.entries = vec![entry(4, 5, create_service(4, "cache"))].into();
    let mut vote = message(MessageType::MsgRequestPreVote, 3, 6);
    vote.index = 3;
    vote.log_term = 5;
    let mut ack = message(MessageType::MsgAppendResponse, 3, 6);
    ack.index = 4;
    let mut snapshot = message(MessageType::MsgSnapshot, 1, 6);
    {
        let snap = snapshot.mut_snapshot();
        let meta = snap.mut_metadata();
        meta.index = 20;
        meta.term = 6;
        meta.mut_conf_state().voters = vec![1, 2, 3];
        snap.data = snapshot_data().into();
    }
    let batch = RaftMessage {
        messages: vec![
            heartbeat.write_to_bytes().expect("encode"),
            append.write_to_bytes().expect("encode"),
        ],
    }
    .encode_to_vec();
    let mut wrapped = vec![1, 0];
    wrapped.extend_from_slice(&(batch.len() as u16).to_le_bytes());
    wrapped.extend_from_slice(&batch);
    vec![
        [vec![0], op(0, 0, &heartbeat), op(0, 0, &append)].concat(),
        [vec![1], op(0, 1, &ack), vec![2, 3]].concat(),
        [vec![2], op(0, 1, &vote), vec![2, 30]].concat(),
        [vec![3], op(0, 0, &snapshot)].concat(),
        [vec![0], wrapped].concat(),
        // Spelled out: a heartbeat of leader 1 committing 3, then an
        // append of entry 4 (a proposal) after (3, 5).
        [
            vec![0],
            spell(&[7, 0, 1, 5, 0, 0, 3]),
            spell(&[0, 0, 1, 5, 3, 5, 3, 0, 1, 5, 1]),
        ]
        .concat(),
        // Spelled out: a snapshot from leader 1 at index 20, term 6.
        [
            vec![3],
            spell(&[
                6, 0, 1, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 6, 0b111,
            ]),
        ]
        .concat(),
    ]
}
