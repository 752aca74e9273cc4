//! What a Raft member accepts from a peer before raft-rs sees it.
//!
//! raft-rs trusts its input: a message it cannot make sense of reaches a
//! `fatal!` (a panic) or, in Shoal's apply side, stops the node. Peers
//! are managers, but a manager's certificate can leak or outlive its
//! authority, so every peer message is checked first; what fails is
//! dropped and logged, and the member keeps running.
//!
//! - [`peer_kind`]: only messages members send each other. Local ones
//!   (`MsgHup`, `MsgBeat`, `MsgUnreachable`, `MsgSnapStatus`,
//!   `MsgCheckQuorum`) and the forwarding ones Shoal never uses between
//!   members (`MsgPropose`, `MsgReadIndex`/`Resp`, `MsgTransferLeader`:
//!   only the leader proposes, reads and hands over leadership, on its own
//!   node) are refused. An empty `MsgPropose` is a `fatal!` in raft-rs,
//!   and any other one would append a peer's entries (conf changes too) to
//!   the leader's log.
//! - [`check`]: against this member's log, the cases raft-rs would panic
//!   on: a heartbeat committing past the log (`commit_to`), an append whose
//!   entries are not the contiguous run after `index` or whose anchor
//!   term is 0 past the log (`maybe_append` / `unstable` slicing), a
//!   snapshot whose membership raft-rs cannot restore or that disagrees
//!   with the entry at the commit index (`restore`), conf-change entries
//!   Shoal's apply side cannot apply, an acknowledgement of entries this
//!   leader never had. Also refused: a second leader for a term this member
//!   already knows a leader of (impossible in Raft), and `MsgTimeoutNow`
//!   from anyone but the leader.
//!
//! Who sent a message (`from` against the sender's certificate) is the
//! service's check (`super::service`), which knows the connection.

use prost::Message as _;
use protobuf::Message as _;
use raft::Storage;
use raft::prelude::{ConfChange, ConfChangeType, EntryType, Message, MessageType};
use shoal_proto::raft::{RaftMember, SnapshotData};

/// Whether members send `kind` to each other in Shoal.
pub fn peer_kind(kind: MessageType) -> bool {
    use MessageType::*;
    matches!(
        kind,
        MsgAppend
            | MsgAppendResponse
            | MsgRequestVote
            | MsgRequestVoteResponse
            | MsgRequestPreVote
            | MsgRequestPreVoteResponse
            | MsgSnapshot
            | MsgHeartbeat
            | MsgHeartbeatResponse
            | MsgTimeoutNow
    )
}

/// Checks a peer's message against this member's state (`raft`); `Err`
/// says why it must be dropped.
pub fn check<S: Storage>(raft: &raft::Raft<S>, m: &Message) -> Result<(), String> {
    let kind = m.get_msg_type();
    if !peer_kind(kind) {
        return Err(format!("{kind:?} is not sent between members"));
    }
    if m.from == 0 || m.from == raft.id || m.to != raft.id {
        return Err(format!("bad addressing: from {:x} to {:x}", m.from, m.to));
    }
    if m.term == 0 {
        // Term 0 is how raft-rs marks local messages: it would skip every
        // term check.
        return Err("a peer's message carries no term".into());
    }
    let log = &raft.raft_log;
    let last = log.last_index();
    let leads_term = matches!(
        kind,
        MessageType::MsgAppend
            | MessageType::MsgHeartbeat
            | MessageType::MsgSnapshot
            | MessageType::MsgTimeoutNow
    );
    if leads_term && m.term == raft.term && raft.leader_id != 0 && raft.leader_id != m.from {
        return Err(format!(
            "{:x} claims to lead term {}, which {:x} leads",
            m.from, m.term, raft.leader_id
        ));
    }
    match kind {
        MessageType::MsgHeartbeat if m.commit > last => Err(format!(
            "heartbeat commits {} past the log's last index {last}",
            m.commit
        )),
        MessageType::MsgAppend => check_append(m),
        MessageType::MsgAppendResponse if m.request_snapshot != 0 => {
            Err("snapshot requests are not used between members".into())
        }
        MessageType::MsgAppendResponse if !m.reject && m.index > last => Err(format!(
            "acknowledges index {} past the log's last index {last}",
            m.index
        )),
        MessageType::MsgSnapshot => check_snapshot(m).and_then(|()| check_snapshot_commit(raft, m)),
        MessageType::MsgTimeoutNow if m.term != raft.term || m.from != raft.leader_id => {
            Err("MsgTimeoutNow from a member that does not lead".into())
        }
        _ => Ok(()),
    }
}

fn check_append(m: &Message) -> Result<(), String> {
    if m.log_term == 0 && m.index != 0 {
        // Past the log, raft-rs reads term 0 and would "match" it.
        return Err(format!("append anchored at index {} with term 0", m.index));
    }
    let mut term = m.log_term;
    for (i, entry) in m.entries.iter().enumerate() {
        let expected = m
            .index
            .checked_add(i as u64 + 1)
            .ok_or("append indexes overflow")?;
        if entry.index != expected {
            return Err(format!(
                "append entry {i} has index {}, not {expected}",
                entry.index
            ));
        }
        if entry.term < term.max(1) || entry.term > m.term {
            return Err(format!(
                "append entry {} has term {} (anchor term {}, message term {})",
                entry.index, entry.term, m.log_term, m.term
            ));
        }
        term = entry.term;
        match entry.get_entry_type() {
            EntryType::EntryNormal => {}
            EntryType::EntryConfChange => check_conf_change(&entry.data, &entry.context)
                .map_err(|e| format!("append entry {}: {e}", entry.index))?,
            EntryType::EntryConfChangeV2 => {
                return Err("joint membership changes are not used".into());
            }
        }
    }
    Ok(())
}

/// A membership change as Shoal proposes one: add a member (its address
/// in the context) or remove one.
pub fn check_conf_change(data: &[u8], context: &[u8]) -> Result<(), String> {
    let cc = ConfChange::parse_from_bytes(data).map_err(|e| format!("bad conf change: {e}"))?;
    if cc.node_id == 0 {
        return Err("conf change for raft id 0".into());
    }
    match cc.get_change_type() {
        ConfChangeType::AddNode => {
            let member = RaftMember::decode(context)
                .map_err(|e| format!("conf change names no member: {e}"))?;
            if member.raft_id == 0 {
                return Err("conf change names no member".into());
            }
            if member.raft_id != cc.node_id {
                return Err("conf change names another member".into());
            }
            Ok(())
        }
        ConfChangeType::RemoveNode => Ok(()),
        ConfChangeType::AddLearnerNode => Err("learners are not used".into()),
    }
}

fn check_snapshot(m: &Message) -> Result<(), String> {
    let meta = m.get_snapshot().get_metadata();
    if meta.index == 0 || meta.term == 0 || meta.term > m.term {
        return Err(format!(
            "snapshot at index {} term {} (message term {})",
            meta.index, meta.term, m.term
        ));
    }
    let cs = meta.get_conf_state();
    let mut voters = cs.voters.clone();
    voters.sort_unstable();
    voters.dedup();
    if voters.is_empty()
        || voters.len() != cs.voters.len()
        || voters.contains(&0)
        || !cs.learners.is_empty()
        || !cs.voters_outgoing.is_empty()
        || !cs.learners_next.is_empty()
        || cs.auto_leave
    {
        return Err(format!("snapshot membership is unusable: {cs:?}"));
    }
    Ok(())
}

/// A snapshot at this member's commit index must agree with the entry
/// committed there. raft-rs drops a snapshot below the commit and only
/// moves the commit for one that matches the log, but restores one at the
/// commit with another term: that replaces a committed entry, and where
/// the storage already holds a snapshot at that index (a member that just
/// installed one, or restarted from one) storing it fails, which stops
/// the node. Found by the `raft_peer_message` fuzz target.
fn check_snapshot_commit<S: Storage>(raft: &raft::Raft<S>, m: &Message) -> Result<(), String> {
    let meta = m.get_snapshot().get_metadata();
    let log = &raft.raft_log;
    if meta.index == log.committed && !log.match_term(meta.index, meta.term) {
        return Err(format!(
            "snapshot at index {} term {} conflicts with the entry committed there",
            meta.index, meta.term
        ));
    }
    Ok(())
}

/// Whether a snapshot's data is what Shoal's apply side can restore
/// (decoding it costs what the snapshot weighs: done off the node's loop,
/// by the service).
pub fn check_snapshot_data(m: &Message) -> Result<(), String> {
    if m.get_msg_type() != MessageType::MsgSnapshot {
        return Ok(());
    }
    SnapshotData::decode(m.get_snapshot().data.as_ref())
        .map(|_| ())
        .map_err(|e| format!("snapshot data is damaged: {e}"))
}

#[cfg(test)]
mod tests;
