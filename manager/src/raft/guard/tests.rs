//! Messages a peer could craft, against a real raft-rs node: each one the
//! guard refuses would otherwise panic the member (shown where raft-rs
//! does), and what members really send passes.

use std::panic::{AssertUnwindSafe, catch_unwind};

use prost::Message as _;
use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, Entry, EntryType, Message, MessageType, Snapshot};
use raft::storage::MemStorage;
use raft::{Config, RawNode};
use shoal_proto::raft::{RaftMember, SnapshotData};

use super::{check, check_snapshot_data, peer_kind};

/// Member 2 of {1, 2, 3}, following leader 1 in term 5, with entries 1..=3.
fn follower() -> RawNode<MemStorage> {
    let storage = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
    let config = Config {
        id: 2,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut raw = RawNode::new(&config, storage, &logger).unwrap();
    let append = msg(MessageType::MsgAppend, 1, 5, |m| {
        m.entries = (1..=3).map(|i| entry(i, 5)).collect::<Vec<_>>().into();
    });
    check(&raw.raft, &append).unwrap();
    raw.step(append).unwrap();
    assert_eq!(raw.raft.leader_id, 1);
    assert_eq!(raw.raft.raft_log.last_index(), 3);
    raw
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        ..Default::default()
    }
}

fn msg(kind: MessageType, from: u64, term: u64, f: impl FnOnce(&mut Message)) -> Message {
    let mut m = Message::default();
    m.set_msg_type(kind);
    m.from = from;
    m.to = 2;
    m.term = term;
    f(&mut m);
    m
}

fn refused(raw: &RawNode<MemStorage>, m: &Message, words: &str) {
    let reason = check(&raw.raft, m).expect_err("refused");
    assert!(reason.contains(words), "{reason}");
}

/// What raft-rs itself does with `m`: whether it panics.
fn panics(raw: &mut RawNode<MemStorage>, m: Message) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        let _ = raw.step(m);
    }))
    .is_err()
}

#[test]
fn only_what_members_send_each_other_is_accepted() {
    use MessageType::*;
    for kind in [
        MsgHup,
        MsgBeat,
        MsgUnreachable,
        MsgSnapStatus,
        MsgCheckQuorum,
    ] {
        assert!(!peer_kind(kind), "local {kind:?}");
    }
    for kind in [
        MsgPropose,
        MsgReadIndex,
        MsgReadIndexResp,
        MsgTransferLeader,
    ] {
        assert!(!peer_kind(kind), "forwarding {kind:?}");
    }
    let raw = follower();
    refused(
        &raw,
        &msg(MsgPropose, 1, 5, |_| {}),
        "not sent between members",
    );
    refused(&raw, &msg(MsgHeartbeat, 1, 0, |_| {}), "no term");
    refused(&raw, &msg(MsgHeartbeat, 2, 5, |_| {}), "addressing");
    refused(&raw, &msg(MsgHeartbeat, 1, 5, |m| m.to = 3), "addressing");
    check(&raw.raft, &msg(MsgHeartbeat, 1, 5, |m| m.commit = 3)).unwrap();
    check(&raw.raft, &msg(MsgRequestPreVote, 3, 6, |m| m.index = 3)).unwrap();
}

#[test]
fn an_empty_proposal_to_a_leader_is_refused() {
    let storage = MemStorage::new_with_conf_state((vec![1], vec![]));
    let config = Config {
        id: 1,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut raw = RawNode::new(&config, storage, &logger).unwrap();
    raw.campaign().unwrap();
    let mut propose = Message::default();
    propose.set_msg_type(MessageType::MsgPropose);
    propose.from = 2;
    propose.to = 1;
    propose.term = raw.raft.term;
    assert!(check(&raw.raft, &propose).is_err());
    assert!(panics(&mut raw, propose), "raft-rs: stepped empty MsgProp");
}

#[test]
fn a_heartbeat_committing_past_the_log_is_refused() {
    let mut raw = follower();
    let beat = msg(MessageType::MsgHeartbeat, 1, 5, |m| m.commit = u64::MAX);
    refused(&raw, &beat, "past the log");
    assert!(panics(&mut raw, beat), "raft-rs: to_commit out of range");
}

#[test]
fn an_append_must_be_the_run_after_its_anchor() {
    let mut raw = follower();
    // Anchored past the log with term 0, which raft-rs "matches".
    let past = msg(MessageType::MsgAppend, 1, 5, |m| {
        m.index = 100;
        m.entries = vec![entry(101, 5)].into();
    });
    refused(&raw, &past, "term 0");
    // Entries that do not follow the anchor (an index below the commit).
    let gap = msg(MessageType::MsgAppend, 1, 5, |m| {
        m.index = 3;
        m.log_term = 5;
        m.entries = vec![entry(1, 6)].into();
    });
    refused(&raw, &gap, "index 1, not 4");
    let future = msg(MessageType::MsgAppend, 1, 5, |m| {
        m.index = 3;
        m.log_term = 5;
        m.entries = vec![entry(4, 9)].into();
    });
    refused(&raw, &future, "term 9");
    let fine = msg(MessageType::MsgAppend, 1, 5, |m| {
        m.index = 3;
        m.log_term = 5;
        m.commit = 4;
        m.entries = vec![entry(4, 5)].into();
    });
    check(&raw.raft, &fine).unwrap();
    raw.step(fine).unwrap();
    assert_eq!(raw.raft.raft_log.last_index(), 4);
    assert!(
        panics(&mut raw, past),
        "raft-rs: unstable slice out of bound"
    );
}

#[test]
fn membership_entries_must_be_shoal_s() {
    let raw = follower();
    let with = |data: Vec<u8>, context: Vec<u8>| {
        msg(MessageType::MsgAppend, 1, 5, |m| {
            m.index = 3;
            m.log_term = 5;
            let mut e = entry(4, 5);
            e.set_entry_type(EntryType::EntryConfChange);
            e.data = data.into();
            e.context = context.into();
            m.entries = vec![e].into();
        })
    };
    let mut cc = ConfChange::default();
    cc.set_change_type(ConfChangeType::AddNode);
    cc.node_id = 9;
    let member = |raft_id| {
        RaftMember {
            raft_id,
            node_id: "n".into(),
            addr: "a:1".into(),
        }
        .encode_to_vec()
    };
    let data = cc.write_to_bytes().unwrap();
    check(&raw.raft, &with(data.clone(), member(9))).unwrap();
    refused(&raw, &with(data.clone(), member(8)), "another member");
    refused(&raw, &with(data, Vec::new()), "names no member");
    refused(&raw, &with(vec![0xff, 0xff], Vec::new()), "bad conf change");
    cc.set_change_type(ConfChangeType::AddLearnerNode);
    refused(
        &raw,
        &with(cc.write_to_bytes().unwrap(), member(9)),
        "learners",
    );
}

#[test]
fn only_the_leader_of_a_term_leads_it() {
    let raw = follower();
    // Member 3 claims the term member 1 leads.
    refused(
        &raw,
        &msg(MessageType::MsgHeartbeat, 3, 5, |_| {}),
        "claims to lead",
    );
    refused(
        &raw,
        &msg(MessageType::MsgTimeoutNow, 3, 5, |_| {}),
        "claims to lead",
    );
    // A later term is an election's to decide, not the guard's.
    check(&raw.raft, &msg(MessageType::MsgHeartbeat, 3, 6, |_| {})).unwrap();
    refused(
        &raw,
        &msg(MessageType::MsgTimeoutNow, 3, 6, |_| {}),
        "does not lead",
    );
    check(&raw.raft, &msg(MessageType::MsgTimeoutNow, 1, 5, |_| {})).unwrap();
}

#[test]
fn acknowledging_entries_the_leader_never_had_is_refused() {
    let raw = follower();
    let ack = |index| msg(MessageType::MsgAppendResponse, 3, 5, |m| m.index = index);
    check(&raw.raft, &ack(3)).unwrap();
    refused(&raw, &ack(4), "past the log");
    refused(
        &raw,
        &msg(MessageType::MsgAppendResponse, 3, 5, |m| {
            m.request_snapshot = 2
        }),
        "snapshot requests",
    );
}

#[test]
fn a_snapshot_must_be_restorable() {
    let raw = follower();
    let snap = |voters: Vec<u64>, learners: Vec<u64>, data: Vec<u8>| {
        msg(MessageType::MsgSnapshot, 1, 5, |m| {
            let mut s = Snapshot::default();
            s.mut_metadata().index = 10;
            s.mut_metadata().term = 5;
            s.mut_metadata().mut_conf_state().voters = voters;
            s.mut_metadata().mut_conf_state().learners = learners;
            s.data = data.into();
            m.set_snapshot(s);
        })
    };
    let data = SnapshotData::default().encode_to_vec();
    let good = snap(vec![1, 2, 3], vec![], data.clone());
    check(&raw.raft, &good).unwrap();
    check_snapshot_data(&good).unwrap();
    refused(&raw, &snap(vec![], vec![], data.clone()), "membership");
    refused(
        &raw,
        &snap(vec![1, 1, 2], vec![], data.clone()),
        "membership",
    );
    refused(&raw, &snap(vec![1, 2], vec![2], data), "membership");
    let damaged = snap(vec![1, 2, 3], vec![], vec![0xff; 8]);
    check(&raw.raft, &damaged).unwrap();
    assert!(check_snapshot_data(&damaged).is_err());
}

/// Member 2 restored from a snapshot at index 10 (term 4) with entries 11
/// and 12 (term 5) not yet committed: its commit is the snapshot's index.
fn restored() -> RawNode<MemStorage> {
    let mut s = Snapshot::default();
    s.mut_metadata().index = 10;
    s.mut_metadata().term = 4;
    s.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
    let storage = MemStorage::new();
    storage.wl().apply_snapshot(s).unwrap();
    let config = Config {
        id: 2,
        applied: 10,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut raw = RawNode::new(&config, storage, &logger).unwrap();
    let append = msg(MessageType::MsgAppend, 1, 5, |m| {
        m.index = 10;
        m.log_term = 4;
        m.commit = 10;
        m.entries = vec![entry(11, 5), entry(12, 5)].into();
    });
    check(&raw.raft, &append).unwrap();
    raw.step(append).unwrap();
    assert_eq!(raw.raft.raft_log.committed, 10);
    raw
}

#[test]
fn a_snapshot_replacing_committed_entries_is_refused() {
    // Found by the raft_peer_message fuzz target: a snapshot at the
    // commit index with another term. raft-rs drops snapshots below the
    // commit, but restores this one; storing it then fails (the storage
    // holds a snapshot at that index already), which the node's loop takes
    // as fatal.
    let snap = |index: u64, term: u64| {
        msg(MessageType::MsgSnapshot, 1, 6, |m| {
            let mut s = Snapshot::default();
            s.mut_metadata().index = index;
            s.mut_metadata().term = term;
            s.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
            m.set_snapshot(s);
        })
    };
    let mut raw = restored();
    let conflicting = snap(10, 6);
    refused(&raw, &conflicting, "conflicts with the entry committed");
    // What raft-rs does with it: restores it over the stored snapshot,
    // which the storage refuses.
    raw.step(conflicting).unwrap();
    let ready = raw.ready();
    assert_eq!(ready.snapshot().get_metadata().index, 10);
    assert!(
        raw.store()
            .wl()
            .apply_snapshot(ready.snapshot().clone())
            .is_err()
    );
    // The same index with the committed entry's term only moves the
    // commit, and a snapshot past the commit is the leader's to send.
    let raw = restored();
    check(&raw.raft, &snap(10, 4)).unwrap();
    check(&raw.raft, &snap(12, 6)).unwrap();
    // On a member that compacted nothing, it would replace a committed
    // entry with a log that disagrees with it.
    let mut raw = follower();
    raw.step(msg(MessageType::MsgHeartbeat, 1, 5, |m| m.commit = 3))
        .unwrap();
    assert_eq!(raw.raft.raft_log.committed, 3);
    refused(&raw, &snap(3, 6), "conflicts with the entry committed");
    check(&raw.raft, &snap(3, 5)).unwrap();
}
