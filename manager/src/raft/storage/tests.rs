//! Semantics: round trips, and raft-rs MemStorage's own tests ported.

use super::*;
use ::raft::{Error as RaftError, StorageError as RaftStorageError};
use protobuf::Message;

pub(super) fn new_entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        ..Default::default()
    }
}

pub(super) fn data_entry(index: u64, term: u64, data: &[u8]) -> Entry {
    let mut e = new_entry(index, term);
    e.data = data.to_vec().into();
    e
}

fn new_snapshot(index: u64, term: u64, voters: Vec<u64>, data: &[u8]) -> Snapshot {
    let mut s = Snapshot::default();
    s.mut_metadata().index = index;
    s.mut_metadata().term = term;
    s.mut_metadata().mut_conf_state().voters = voters;
    s.data = data.to_vec().into();
    s
}

pub(super) fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

pub(super) fn all_entries(s: &DiskStorage) -> ::raft::Result<Vec<Entry>> {
    let (first, last) = (s.first_index()?, s.last_index()?);
    s.entries(first, last + 1, None, ctx())
}

/// The fixture of MemStorage's tests: entries 3, 4, 5 with terms 3, 4, 5,
/// and nothing before them (snapshot index 0).
fn storage_3_4_5(dir: &Path) -> DiskStorage {
    let s = DiskStorage::open(dir, DataKey::generate()).unwrap();
    s.append(&(1..=5).map(|i| new_entry(i, i)).collect::<Vec<_>>())
        .unwrap();
    s.compact(3).unwrap();
    assert_eq!(all_entries(&s).unwrap(), ents_3_4_5());
    s
}

fn ents_3_4_5() -> Vec<Entry> {
    vec![new_entry(3, 3), new_entry(4, 4), new_entry(5, 5)]
}

fn compacted<T>() -> ::raft::Result<T> {
    Err(RaftError::Store(RaftStorageError::Compacted))
}

fn unavailable<T>() -> ::raft::Result<T> {
    Err(RaftError::Store(RaftStorageError::Unavailable))
}

#[test]
fn fresh_dir_opens_empty() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStorage::open(&dir.path().join("raft"), DataKey::generate()).unwrap();
    let rs = s.initial_state().unwrap();
    assert!(!rs.initialized());
    assert_eq!(rs.hard_state, HardState::default());
    assert_eq!(s.first_index(), Ok(1));
    assert_eq!(s.last_index(), Ok(0));
    assert_eq!(s.term(0), Ok(0));
    assert_eq!(s.term(1), unavailable());
    let snap = s.snapshot(0, 2).unwrap();
    assert!(snap.is_empty() && snap.data.is_empty());
}

#[test]
fn round_trip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    let ents: Vec<Entry> = (1..=10)
        .map(|i| data_entry(i, 1 + i / 4, format!("cmd {i}").as_bytes()))
        .collect();
    let hs = HardState {
        term: 3,
        vote: 2,
        commit: 7,
        ..Default::default()
    };
    let cs = ConfState::from((vec![1, 2, 3], vec![4]));
    {
        let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
        s.append(&ents).unwrap();
        s.set_hard_state(hs.clone()).unwrap();
        s.set_conf_state(cs.clone()).unwrap();
        s.flush().unwrap();
    }
    let s = DiskStorage::open(dir.path(), key).unwrap();
    assert_eq!(s.initial_state().unwrap().hard_state, hs);
    assert_eq!(s.initial_state().unwrap().conf_state, cs);
    assert_eq!(s.hard_state(), hs);
    assert_eq!(s.conf_state(), cs);
    assert_eq!(s.first_index(), Ok(1));
    assert_eq!(s.last_index(), Ok(10));
    assert_eq!(all_entries(&s).unwrap(), ents);
    assert_eq!(s.term(8), Ok(3));
}

#[test]
fn memstorage_term() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage_3_4_5(dir.path());
    assert_eq!(s.term(2), compacted());
    assert_eq!(s.term(3), Ok(3));
    assert_eq!(s.term(4), Ok(4));
    assert_eq!(s.term(5), Ok(5));
    assert_eq!(s.term(6), unavailable());
}

#[test]
fn memstorage_entries() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage_3_4_5(dir.path());
    s.append(&[new_entry(6, 6)]).unwrap();
    let ents = [ents_3_4_5(), vec![new_entry(6, 6)]].concat();
    let size = |i: usize| u64::from(ents[i].compute_size());
    let max = u64::MAX;
    let e = |v: &[(u64, u64)]| Ok(v.iter().map(|&(i, t)| new_entry(i, t)).collect::<Vec<_>>());
    let tests: Vec<(u64, u64, u64, ::raft::Result<Vec<Entry>>)> = vec![
        (2, 6, max, compacted()),
        (3, 4, max, e(&[(3, 3)])),
        (4, 5, max, e(&[(4, 4)])),
        (4, 6, max, e(&[(4, 4), (5, 5)])),
        (4, 7, max, e(&[(4, 4), (5, 5), (6, 6)])),
        // Even with max size zero, the first entry is returned.
        (4, 7, 0, e(&[(4, 4)])),
        (4, 7, size(1) + size(2), e(&[(4, 4), (5, 5)])),
        (4, 7, size(1) + size(2) + size(3) / 2, e(&[(4, 4), (5, 5)])),
        (4, 7, size(1) + size(2) + size(3) - 1, e(&[(4, 4), (5, 5)])),
        (
            4,
            7,
            size(1) + size(2) + size(3),
            e(&[(4, 4), (5, 5), (6, 6)]),
        ),
        // MemStorage panics here; we answer Unavailable.
        (4, 9, max, unavailable()),
    ];
    for (i, (lo, hi, max_size, want)) in tests.into_iter().enumerate() {
        assert_eq!(s.entries(lo, hi, max_size, ctx()), want, "case #{i}");
    }
    assert_eq!(s.entries(4, 4, None, ctx()), Ok(vec![]));
}

#[test]
fn memstorage_first_and_last_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage_3_4_5(dir.path());
    assert_eq!(s.first_index(), Ok(3));
    assert_eq!(s.last_index(), Ok(5));
    s.append(&[new_entry(6, 5)]).unwrap();
    assert_eq!(s.last_index(), Ok(6));
    s.compact(4).unwrap();
    assert_eq!(s.first_index(), Ok(4));
}

#[test]
fn memstorage_compact() {
    // (compact index, want first index, want its term, want entry count)
    for (i, (idx, windex, wterm, wlen)) in [(2, 3, 3, 3), (3, 3, 3, 3), (4, 4, 4, 2), (5, 5, 5, 1)]
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let s = storage_3_4_5(dir.path());
        s.compact(idx).unwrap();
        let index = s.first_index().unwrap();
        assert_eq!(index, windex, "case #{i}");
        let term = s.entries(index, index + 1, 1, ctx()).unwrap()[0].term;
        assert_eq!(term, wterm, "case #{i}");
        assert_eq!(all_entries(&s).unwrap().len(), wlen, "case #{i}");
        assert_eq!(s.term(index - 1), compacted(), "case #{i}");
    }
    let dir = tempfile::tempdir().unwrap();
    let s = storage_3_4_5(dir.path());
    let err = s.compact(7).unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)), "{err}");
}

#[test]
fn memstorage_append_and_conflict_truncation() {
    let e = |v: &[(u64, u64)]| v.iter().map(|&(i, t)| new_entry(i, t)).collect::<Vec<_>>();
    let tests: Vec<(Vec<Entry>, Option<Vec<Entry>>)> = vec![
        (
            e(&[(3, 3), (4, 4), (5, 5)]),
            Some(e(&[(3, 3), (4, 4), (5, 5)])),
        ),
        (
            e(&[(3, 3), (4, 6), (5, 6)]),
            Some(e(&[(3, 3), (4, 6), (5, 6)])),
        ),
        (
            e(&[(3, 3), (4, 4), (5, 5), (6, 5)]),
            Some(e(&[(3, 3), (4, 4), (5, 5), (6, 5)])),
        ),
        // Overwriting compacted entries is refused (MemStorage panics).
        (e(&[(2, 3), (3, 3), (4, 5)]), None),
        // A conflicting entry truncates the suffix after it.
        (e(&[(4, 5)]), Some(e(&[(3, 3), (4, 5)]))),
        (e(&[(6, 6)]), Some(e(&[(3, 3), (4, 4), (5, 5), (6, 6)]))),
        // A gap is refused (MemStorage panics).
        (e(&[(7, 6)]), None),
        // Non-consecutive input is refused.
        (e(&[(5, 5), (7, 5)]), None),
    ];
    for (i, (ents, want)) in tests.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage_3_4_5(dir.path());
        match want {
            Some(want) => {
                s.append(&ents).unwrap();
                assert_eq!(all_entries(&s).unwrap(), want, "case #{i}");
            }
            None => {
                let err = s.append(&ents).unwrap_err();
                assert!(matches!(err, StorageError::Invalid(_)), "case #{i}: {err}");
                assert_eq!(all_entries(&s).unwrap(), ents_3_4_5(), "case #{i}");
            }
        }
    }
}

#[test]
fn conflict_truncation_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    {
        let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
        s.append(&(1..=10).map(|i| new_entry(i, 1)).collect::<Vec<_>>())
            .unwrap();
        s.append(&[new_entry(6, 2), new_entry(7, 2)]).unwrap();
        s.flush().unwrap();
    }
    let s = DiskStorage::open(dir.path(), key).unwrap();
    assert_eq!(s.last_index(), Ok(7));
    let terms: Vec<u64> = all_entries(&s).unwrap().iter().map(|e| e.term).collect();
    assert_eq!(terms, [1, 1, 1, 1, 1, 2, 2]);
}

#[test]
fn apply_snapshot_replaces_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    // Over three chunks, so chunking is exercised.
    let big: Vec<u8> = (0..(2 * CHUNK_LEN + 12345))
        .map(|i| (i % 251) as u8)
        .collect();
    {
        let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
        s.append(&(1..=3).map(|i| new_entry(i, 1)).collect::<Vec<_>>())
            .unwrap();
        s.apply_snapshot(new_snapshot(4, 4, vec![1, 2, 3], &big))
            .unwrap();
        assert_eq!(s.first_index(), Ok(5));
        assert_eq!(s.last_index(), Ok(4));
        assert_eq!(s.term(4), Ok(4));
        assert_eq!(s.term(3), compacted());
        assert_eq!(s.term(5), unavailable());
        assert_eq!(s.entries(5, 5, None, ctx()), Ok(vec![]));
        assert_eq!(s.hard_state().commit, 4);
        assert_eq!(s.hard_state().term, 4);
        assert_eq!(s.conf_state().voters, [1, 2, 3]);
        // An older snapshot is refused, as MemStorage does.
        let err = s
            .apply_snapshot(new_snapshot(3, 3, vec![1], b""))
            .unwrap_err();
        assert!(matches!(
            err,
            StorageError::Raft(RaftStorageError::SnapshotOutOfDate)
        ));
        s.append(&[new_entry(5, 4)]).unwrap();
        s.flush().unwrap();
    }
    let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
    let snap = s.snapshot(0, 2).unwrap();
    assert_eq!(snap.get_metadata().index, 4);
    assert_eq!(snap.get_metadata().get_conf_state().voters, [1, 2, 3]);
    assert!(snap.data[..] == big[..]);
    assert_eq!(all_entries(&s).unwrap(), vec![new_entry(5, 4)]);

    // A smaller snapshot replaces the big one entirely (old chunks go).
    s.apply_snapshot(new_snapshot(9, 5, vec![1], b"small"))
        .unwrap();
    drop(s);
    let s = DiskStorage::open(dir.path(), key).unwrap();
    assert_eq!(&s.snapshot(0, 2).unwrap().data[..], b"small");
    assert_eq!(s.first_index(), Ok(10));
}

#[test]
fn create_snapshot_then_compact() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    let cs = ConfState::from((vec![1, 2, 3], vec![]));
    {
        let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
        s.append(
            &(1..=10)
                .map(|i| new_entry(i, 1 + i / 3))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        s.create_snapshot(5, cs.clone(), b"state at 5").unwrap();
        s.compact(5).unwrap();
        s.flush().unwrap();
    }
    let s = DiskStorage::open(dir.path(), key).unwrap();
    let snap = s.snapshot(0, 2).unwrap();
    assert_eq!(snap.get_metadata().index, 5);
    assert_eq!(snap.get_metadata().term, 2);
    assert_eq!(snap.get_metadata().get_conf_state(), &cs);
    assert_eq!(&snap.data[..], b"state at 5");
    assert_eq!(s.snapshot_metadata().index, 5);
    assert_eq!(s.first_index(), Ok(5));
    assert_eq!(s.term(5), Ok(2));
    assert_eq!(s.term(4), compacted());
    // A newer one is asked for than we have: the node must make it.
    assert_eq!(
        s.snapshot(6, 2),
        Err(RaftError::Store(
            RaftStorageError::SnapshotTemporarilyUnavailable
        ))
    );
    assert!(matches!(
        s.create_snapshot(5, cs.clone(), &[]),
        Err(StorageError::Raft(RaftStorageError::SnapshotOutOfDate))
    ));
    assert!(matches!(
        s.create_snapshot(11, cs, &[]),
        Err(StorageError::Invalid(_))
    ));
}

#[test]
fn persist_ready_writes_all_parts() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    let mut hs = HardState {
        term: 5,
        commit: 12,
        ..Default::default()
    };
    {
        let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
        s.persist_ready(
            &[new_entry(11, 5), new_entry(12, 5)],
            Some(hs.clone()),
            Some(new_snapshot(10, 4, vec![1], b"snap")),
        )
        .unwrap();
        s.set_commit(11).unwrap();
    }
    let s = DiskStorage::open(dir.path(), key).unwrap();
    hs.commit = 11;
    assert_eq!(s.hard_state(), hs);
    assert_eq!(s.first_index(), Ok(11));
    assert_eq!(s.last_index(), Ok(12));
    assert_eq!(s.term(10), Ok(4));
    assert_eq!(&s.snapshot(0, 1).unwrap().data[..], b"snap");
}

#[test]
fn dropped_without_flush_reopens_consistent() {
    // Like a process that dies without closing: nothing but drop.
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
    s.append(&(1..=50).map(|i| data_entry(i, 1, b"x")).collect::<Vec<_>>())
        .unwrap();
    let hs = HardState {
        commit: 50,
        term: 1,
        ..Default::default()
    };
    s.set_hard_state(hs.clone()).unwrap();
    drop(s);
    let s = DiskStorage::open(dir.path(), key).unwrap();
    assert_eq!(s.hard_state(), hs);
    assert_eq!(all_entries(&s).unwrap().len(), 50);
}

#[test]
fn clones_share_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStorage::open(dir.path(), DataKey::generate()).unwrap();
    let c = s.clone();
    s.append(&[new_entry(1, 1)]).unwrap();
    assert_eq!(c.last_index(), Ok(1));
    assert!(format!("{c:?}").contains("DiskStorage"));
}
