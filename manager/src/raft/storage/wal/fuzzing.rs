//! The `wal_replay` fuzz target's harness (`fuzz/`): a WAL made of
//! arbitrary records and bytes, replayed as [`super::Wal::open`] and the
//! storage's open replay it. Not an API: see `crate::fuzzing`.
//!
//! The records are sealed here, at their positions, with the data key:
//! arbitrary bytes would almost never get past authentication, and the
//! parsing and replay behind it is what a fuzzer should reach. Raw bytes
//! (a torn or damaged tail), records moved to another place and missing
//! segments are inputs too.
//!
//! Input: `flags`, snapshot index, snapshot term, durable segment, durable
//! offset (u16 LE), then operations until the input ends, each a byte and
//! what it takes:
//! - `0`: u16 LE length, a record's plaintext, sealed at its position;
//! - `1`: u16 LE length, raw bytes;
//! - `2`: the next segment starts;
//! - `3`: u16 LE length, a record's plaintext sealed for another position;
//! - `4`: a segment is skipped (left missing).
//!
//! Flag 1 writes `raft-wal-synced` (the durable point), flag 2 opens with
//! `create` (a state directory that may be new).
//!
//! What must hold: nothing panics; a WAL that opened once opens again to
//! the same log with nothing more cut off (replay is idempotent once the
//! torn end is gone); a record appended then is read back; and the log
//! the storage rebuilds from the replay is consecutive, within its range,
//! commits nothing past its end, and answers a term for each of its
//! entries.

use std::path::Path;

use ::raft::eraftpb::{Entry, HardState, SnapshotMetadata};

use super::super::codec::{FRAME_ROOM, Keys};
use super::super::memlog::MemLog;
use super::super::plan::term_at;
use super::super::recover::recover_log;
use super::super::{State, StorageError};
use super::{Record, SEGMENT_BYTES, SYNCED_FILE, WAL_DIR, Wal, aad, encode_synced, segment_name};
use crate::seal::DataKey;

/// A cursor over the fuzzer's bytes: short reads give zeros / nothing.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte().unwrap_or(0), self.byte().unwrap_or(0)])
    }

    fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16()).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

/// A record's plaintext sealed into a frame for `pos`.
fn frame(keys: &Keys, plain: &[u8], pos: (u64, u64)) -> Vec<u8> {
    let mut buf = vec![0; FRAME_ROOM];
    buf.extend_from_slice(plain);
    keys.seal_frame(&mut buf, &aad(pos));
    buf
}

/// (index, term) of each entry, to compare logs.
fn shape(entries: impl IntoIterator<Item = Entry>) -> Vec<(u64, u64)> {
    entries.into_iter().map(|e| (e.index, e.term)).collect()
}

/// Writes the WAL `data` describes into `dir` (emptied first) and replays
/// it; panics if what must hold does not.
pub fn wal_replay(dir: &Path, key: &DataKey, data: &[u8]) {
    let _ = std::fs::remove_dir_all(dir);
    let wal_dir = dir.join(WAL_DIR);
    std::fs::create_dir_all(&wal_dir).expect("create the WAL directory");
    let keys = Keys::new(dir.to_path_buf(), key.clone());
    let mut input = Input(data);
    let flags = input.byte().unwrap_or(0);
    let snap = (
        u64::from(input.byte().unwrap_or(0)),
        u64::from(input.byte().unwrap_or(0)),
    );
    let durable = (u64::from(input.byte().unwrap_or(0)), u64::from(input.u16()));

    let mut segments: Vec<(u64, Vec<u8>)> = vec![(1, Vec::new())];
    while let Some(op) = input.byte() {
        let (seq, bytes) = segments.last_mut().expect("one segment at least");
        let pos = (*seq, bytes.len() as u64);
        match op % 5 {
            0 => {
                let plain = input.bytes();
                bytes.extend_from_slice(&frame(&keys, plain, pos));
            }
            1 => bytes.extend_from_slice(input.bytes()),
            2 => {
                let next = *seq + 1;
                segments.push((next, Vec::new()));
            }
            3 => {
                let plain = input.bytes();
                bytes.extend_from_slice(&frame(&keys, plain, (pos.0, pos.1 + 1)));
            }
            _ => {
                let next = *seq + 2;
                segments.push((next, Vec::new()));
            }
        }
    }
    for (seq, bytes) in &segments {
        std::fs::write(wal_dir.join(segment_name(*seq)), bytes).expect("write a segment");
    }
    if flags & 1 != 0 {
        std::fs::write(dir.join(SYNCED_FILE), encode_synced(durable)).expect("write the point");
    }
    let create = flags & 2 != 0;

    let Ok((wal, replayed)) = Wal::open(dir, &keys, create, SEGMENT_BYTES) else {
        return;
    };
    let hard = replayed.hard.clone();
    let log = shape(replayed.entries.iter().cloned());
    let reset = replayed.reset;
    rebuild(&keys, snap, replayed);

    // Opened once: it opens again, the same, with nothing more cut off.
    drop(wal);
    let (wal, again) = Wal::open(dir, &keys, false, SEGMENT_BYTES)
        .unwrap_or_else(|e| panic!("a WAL that opened once does not open again: {e}"));
    assert_eq!(again.torn, 0, "a second open cut off more");
    assert_eq!(again.hard, hard, "the hard state changed between opens");
    assert_eq!(again.reset, reset, "the reset changed between opens");
    assert_eq!(
        shape(again.entries),
        log,
        "the entries changed between opens"
    );

    // A record written after the cut is read back.
    let hs = HardState {
        term: 7,
        vote: 1,
        commit: hard.as_ref().map_or(0, |h| h.commit),
        ..Default::default()
    };
    let rec = Record {
        hard: Some(hs.clone()),
        ..Record::default()
    };
    wal.append(&keys, &rec).expect("append after replay");
    wal.sync().expect("sync after replay");
    drop(wal);
    let (_, last) = Wal::open(dir, &keys, false, SEGMENT_BYTES)
        .unwrap_or_else(|e| panic!("the WAL does not open after an append: {e}"));
    assert_eq!(last.hard, Some(hs), "the appended record was not read back");
    assert_eq!(
        shape(last.entries),
        log,
        "an append of a hard state changed the log"
    );
}

/// What `DiskStorage::open` makes of a replay, given a stored snapshot at
/// `snap` (index, term); checks the log it would serve.
fn rebuild(keys: &Keys, snap: (u64, u64), replayed: super::Replayed) {
    let mut st = State {
        snap: SnapshotMetadata {
            index: snap.0,
            term: snap.1,
            ..Default::default()
        },
        ..State::default()
    };
    let entries = match recover_log(keys, &mut st, replayed) {
        Ok(entries) => entries,
        Err(StorageError::Damaged { .. }) => return,
        Err(e) => panic!("recovery failed other than as damage: {e}"),
    };
    if let Some(bad) = entries
        .iter()
        .zip(entries.iter().skip(1))
        .find(|(a, b)| a.index.checked_add(1) != Some(b.index))
    {
        panic!(
            "recovered entries are not consecutive: {} then {}",
            bad.0.index, bad.1.index
        );
    }
    assert_eq!(
        st.entries,
        entries
            .front()
            .zip(entries.back())
            .map(|(f, l)| (f.index, l.index)),
        "the state's range is not the entries'"
    );
    assert!(
        st.hard.commit <= st.last_index(),
        "commits {} past the log's end {}",
        st.hard.commit,
        st.last_index()
    );
    assert!(
        st.hard.term >= st.snap.term,
        "the term went behind the snapshot's"
    );
    if let Some(first) = entries.front() {
        assert!(
            first.index <= st.snap.index + 1,
            "the log starts at {} after the snapshot at {}",
            first.index,
            st.snap.index
        );
    }
    let (first, last) = (st.first_index(), st.last_index());
    let log = MemLog::new(entries);
    for index in first..=last {
        term_at(&log, &st, index)
            .unwrap_or_else(|e| panic!("entry {index} of {first}..={last} has no term: {e}"));
    }
    let _ = term_at(&log, &st, first.saturating_sub(1));
    let _ = term_at(&log, &st, last.saturating_add(1));
}

/// Inputs that replay to real logs, to start a corpus from.
pub fn seeds() -> Vec<Vec<u8>> {
    let entry = |index: u64, term: u64| Entry {
        index,
        term,
        data: vec![b'x'; 3].into(),
        ..Default::default()
    };
    let plain = |rec: Record| {
        let mut out = Vec::new();
        rec.encode_into(&mut out);
        out
    };
    let first = plain(Record {
        hard: Some(HardState {
            term: 2,
            vote: 1,
            commit: 2,
            ..Default::default()
        }),
        entries: vec![entry(1, 1), entry(2, 2), entry(3, 2)],
        ..Record::default()
    });
    let replace = plain(Record {
        entries: vec![entry(3, 3), entry(4, 3)],
        ..Record::default()
    });
    let reset = plain(Record {
        reset: Some((4, 3)),
        compact: Some(5),
        hard: Some(HardState {
            term: 3,
            commit: 4,
            ..Default::default()
        }),
        entries: vec![entry(5, 3)],
    });
    let op = |kind: u8, body: &[u8]| {
        let mut out = vec![kind];
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.extend_from_slice(body);
        out
    };
    let one = [vec![1, 0, 0, 1, 0, 0], op(0, &first), op(0, &replace)].concat();
    let two = [
        vec![3, 4, 3, 0, 0, 0],
        op(0, &first),
        vec![2],
        op(0, &reset),
        op(1, b"torn"),
    ]
    .concat();
    vec![one, two]
}
