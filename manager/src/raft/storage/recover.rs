//! Putting the log together at open: the WAL's replay reconciled with the
//! snapshot sled holds, and the first layout's log moved into the WAL.

use std::collections::VecDeque;

use ::raft::eraftpb::{Entry, HardState};

use super::codec::Keys;
use super::wal::{Record, Replayed, Wal};
use super::{Result, State};

/// Entries per record when moving a legacy log (records stay small).
const MIGRATE_BATCH: usize = 1024;

/// The record a new segment starts with: the hard state and first index
/// as they stand, so older segments are never needed for them.
pub(super) fn segment_header(st: &State) -> Record {
    Record {
        hard: Some(st.hard.clone()),
        compact: Some(st.first_index()),
        ..Record::default()
    }
}

/// Writes a legacy log (hard state and entries from sled) into the WAL,
/// durably, unless the WAL holds a log already (a move that crashed
/// after its records were durable).
pub(super) fn migrate_log(
    wal: &Wal,
    keys: &Keys,
    replayed: &mut Replayed,
    hard: HardState,
    entries: Vec<Entry>,
) -> Result<()> {
    if replayed.hard.is_some() {
        return Ok(());
    }
    let mut chunks = entries.chunks(MIGRATE_BATCH);
    let first = Record {
        hard: Some(hard.clone()),
        entries: chunks.next().unwrap_or_default().to_vec(),
        ..Record::default()
    };
    wal.append(keys, &first)?;
    for chunk in chunks {
        let rec = Record {
            entries: chunk.to_vec(),
            ..Record::default()
        };
        wal.append(keys, &rec)?;
    }
    wal.sync()?;
    replayed.hard = Some(hard);
    replayed.entries = entries.into();
    Ok(())
}

/// Reconciles the replayed log with the snapshot in `st` and fills in its
/// hard state and entry range; returns the entries.
///
/// A follower that received a snapshot makes it durable in sled before
/// the WAL record that drops its log for it; a crash in between leaves
/// the old log beside the newer snapshot. Raft's own rule settles it: if
/// the log holds the snapshot's last entry with the snapshot's term, the
/// entries after it continue the snapshot and stay; otherwise the log
/// goes.
pub(super) fn recover_log(
    keys: &Keys,
    st: &mut State,
    replayed: Replayed,
) -> Result<VecDeque<Entry>> {
    let Replayed {
        hard,
        mut entries,
        reset,
        ..
    } = replayed;
    let (snap_index, snap_term) = (st.snap.index, st.snap.term);
    if let Some((index, _)) = reset
        && index > snap_index
    {
        return Err(keys.damaged(&format!(
            "the log was replaced by a snapshot at index {index} but the stored snapshot \
             is at {snap_index}"
        )));
    }
    let first = entries.front().map(|e| e.index);
    let last = entries.back().map(|e| e.index);
    if let (Some(first), Some(last)) = (first, last) {
        let matches = (first..=last)
            .contains(&snap_index)
            .then(|| entries[(snap_index - first) as usize].term == snap_term);
        match matches {
            Some(true) => {}
            Some(false) => entries.clear(),
            None if last < snap_index => entries.clear(),
            None if first > snap_index + 1 => {
                return Err(keys.damaged(&format!(
                    "the log starts at entry {first} but the snapshot ends at {snap_index}: \
                     entries in between are missing"
                )));
            }
            None => {}
        }
    }
    let mut hard = hard.unwrap_or_default();
    hard.commit = hard.commit.max(snap_index);
    hard.term = hard.term.max(snap_term);
    st.hard = hard;
    st.entries = entries
        .front()
        .zip(entries.back())
        .map(|(f, l)| (f.index, l.index));
    if st.hard.commit > st.last_index() {
        return Err(keys.damaged(&format!(
            "the hard state commits index {} but the log ends at {}: the log was truncated",
            st.hard.commit,
            st.last_index()
        )));
    }
    Ok(entries)
}
