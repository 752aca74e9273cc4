//! The write-ahead log on disk: torn ends, damage, lost segments,
//! rotation and compaction, and the move from the first (all-sled) layout.

use protobuf::Message;

use super::tests::{all_entries, data_entry, new_entry};
use super::tests_disk::filled;
use super::*;

fn segment(dir: &Path, seq: u64) -> PathBuf {
    dir.join(wal::WAL_DIR).join(format!("{seq:016x}.wal"))
}

/// Start offsets of the records in a segment file.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= bytes.len() {
        out.push(off);
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        off += 4 + len;
    }
    out
}

fn open_err(dir: &Path, key: DataKey) -> String {
    let err = DiskStorage::open(dir, key).unwrap_err().to_string();
    assert!(err.contains(&dir.display().to_string()), "{err}");
    err
}

#[test]
fn a_torn_write_after_the_durable_point_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    filled(dir.path(), &key, 10);
    {
        // Two writes that never became durable; the second one torn.
        let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
        s.write_ready(&[data_entry(11, 1, b"entry 11")], None, None)
            .unwrap();
        s.write_ready(&[data_entry(12, 1, b"entry 12")], None, None)
            .unwrap();
    }
    let seg = segment(dir.path(), 1);
    let len = std::fs::metadata(&seg).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    file.set_len(len - 7).unwrap();
    drop(file);
    let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
    assert_eq!(s.last_index(), Ok(11));
    // The log goes on after the cut, and that survives a restart.
    s.persist_ready(&[data_entry(12, 2, b"again")], None, None)
        .unwrap();
    drop(s);
    let s = DiskStorage::open(dir.path(), key).unwrap();
    let ents = all_entries(&s).unwrap();
    assert_eq!(ents.len(), 12);
    assert_eq!(&ents[11].data[..], b"again");
    assert_eq!(s.hard_state().commit, 10);
}

#[test]
fn a_durable_record_cut_short_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    filled(dir.path(), &key, 10);
    let seg = segment(dir.path(), 1);
    let len = std::fs::metadata(&seg).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    file.set_len(len - 3).unwrap();
    drop(file);
    let err = open_err(dir.path(), key);
    assert!(
        err.contains("damaged") && err.contains("is cut short") && err.contains("made durable"),
        "{err}"
    );
}

#[test]
fn a_flipped_byte_in_any_record_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    filled(dir.path(), &key, 10);
    let seg = segment(dir.path(), 1);
    let clean = std::fs::read(&seg).unwrap();
    let offsets = record_offsets(&clean);
    assert!(offsets.len() >= 10, "one record per write: {offsets:?}");
    for (n, &off) in offsets.iter().enumerate() {
        let mut bytes = clean.clone();
        bytes[off + 40] ^= 0x04;
        std::fs::write(&seg, &bytes).unwrap();
        let err = open_err(dir.path(), key.clone());
        assert!(
            err.contains("damaged") && err.contains("fails authentication"),
            "record {n}: {err}"
        );
    }
    std::fs::write(&seg, &clean).unwrap();
    assert_eq!(
        DiskStorage::open(dir.path(), key).unwrap().last_index(),
        Ok(10)
    );
}

#[test]
fn a_record_moved_to_another_place_fails_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    filled(dir.path(), &key, 10);
    let seg = segment(dir.path(), 1);
    let mut bytes = std::fs::read(&seg).unwrap();
    let offsets = record_offsets(&bytes);
    // Entries 3 and 4 have records of the same length: swap them.
    let (a, b, c) = (offsets[3], offsets[4], offsets[5]);
    assert_eq!(b - a, c - b);
    let third = bytes[a..b].to_vec();
    bytes.copy_within(b..c, a);
    bytes[b..c].copy_from_slice(&third);
    std::fs::write(&seg, &bytes).unwrap();
    let err = open_err(dir.path(), key);
    assert!(err.contains("fails authentication"), "{err}");
}

#[test]
fn a_lost_wal_is_not_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    filled(dir.path(), &key, 3);
    std::fs::remove_dir_all(dir.path().join(wal::WAL_DIR)).unwrap();
    let err = open_err(dir.path(), key.clone());
    assert!(err.contains("write-ahead log (wal/) is missing"), "{err}");
    // An emptied one too.
    std::fs::create_dir(dir.path().join(wal::WAL_DIR)).unwrap();
    let err = open_err(dir.path(), key);
    assert!(err.contains("holds no segment"), "{err}");
}

#[test]
fn segments_rotate_compaction_deletes_old_ones_and_a_missing_one_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    let s = DiskStorage::open_segments(dir.path(), key.clone(), 400).unwrap();
    for i in 1..=60u64 {
        let hs = HardState {
            term: 1,
            commit: i,
            ..Default::default()
        };
        s.persist_ready(&[data_entry(i, 1, &[i as u8; 100])], Some(hs), None)
            .unwrap();
    }
    let before = s.inner.wal.segment_seqs();
    assert!(before.len() > 10, "segments: {before:?}");
    s.create_snapshot(50, ConfState::from((vec![1], vec![])), b"store")
        .unwrap();
    s.compact(45).unwrap();
    let after = s.inner.wal.segment_seqs();
    assert!(after.len() < before.len() / 2, "{before:?} -> {after:?}");
    assert!(after.last() >= before.last());
    drop(s);
    // Everything from the first index on is still there, hard state too.
    let s = DiskStorage::open_segments(dir.path(), key.clone(), 400).unwrap();
    assert_eq!(s.first_index(), Ok(45));
    assert_eq!(s.last_index(), Ok(60));
    assert_eq!(s.hard_state().commit, 60);
    let ents = s.entries(45, 61, None, super::tests::ctx()).unwrap();
    assert_eq!(ents.len(), 16);
    assert!(ents.iter().all(|e| e.data[0] == e.index as u8));
    let seqs = s.inner.wal.segment_seqs();
    drop(s);
    std::fs::remove_file(segment(dir.path(), seqs[1])).unwrap();
    let err = open_err(dir.path(), key);
    assert!(err.contains("is missing"), "{err}");
}

#[test]
fn a_snapshot_durable_before_its_log_reset_wins_by_raft_rules() {
    // A follower received a snapshot at 5 (term 2) while its log held
    // 1..=8 of term 1 (3 committed); the crash came after the snapshot
    // was durable but before the record dropping the log was: the
    // conflicting log goes.
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    {
        let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
        let ents: Vec<Entry> = (1..=8).map(|i| data_entry(i, 1, b"old")).collect();
        let hs = HardState {
            term: 1,
            commit: 3,
            ..Default::default()
        };
        s.persist_ready(&ents, Some(hs), None).unwrap();
        let mut meta = SnapshotMetadata {
            index: 5,
            term: 2,
            ..Default::default()
        };
        meta.set_conf_state(ConfState::from((vec![1], vec![])));
        let mut plan_state = s.read().clone();
        plan_state.entries = None;
        // Write only the sled half, as the crash would leave it.
        let mut guard = s.write();
        let mut plan = Plan {
            keys: &s.inner.keys,
            st: plan_state,
            record: Record::default(),
            batch: sled::Batch::default(),
            sled_writes: false,
            old_snapshot: None,
        };
        plan.write_snapshot(meta, b"snap").unwrap();
        s.inner.db.apply_batch(plan.batch).unwrap();
        s.flush_sled().unwrap();
        *guard = plan.st;
    }
    let s = DiskStorage::open(dir.path(), key).unwrap();
    assert_eq!(s.first_index(), Ok(6));
    assert_eq!(s.last_index(), Ok(5));
    assert_eq!(s.hard_state().commit, 5);
    assert_eq!(s.hard_state().term, 2);
    assert_eq!(s.term(5), Ok(2));
}

#[test]
fn a_log_of_the_first_layout_moves_into_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    drop(DiskStorage::open(dir.path(), key.clone()).unwrap());
    // Rewrite the directory as the first layout left it.
    std::fs::remove_dir_all(dir.path().join(wal::WAL_DIR)).unwrap();
    std::fs::remove_file(dir.path().join("raft-wal-synced")).unwrap();
    std::fs::write(dir.path().join(INIT_FILE), INIT_V1).unwrap();
    {
        let db = codec::open_sled(&dir.path().join(SLED_DIR)).unwrap();
        let keys = codec::Keys::new(dir.path().to_path_buf(), key.clone());
        for i in 1..=5u64 {
            let e = data_entry(i, 1, format!("old {i}").as_bytes());
            let k = codec::entry_key(i);
            db.insert(k, keys.seal(&k, &e.write_to_bytes().unwrap()))
                .unwrap();
        }
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: 4,
            ..Default::default()
        };
        db.insert(
            codec::K_HARD,
            keys.seal(codec::K_HARD, &hs.write_to_bytes().unwrap()),
        )
        .unwrap();
        db.flush().unwrap();
    }
    for _ in 0..2 {
        let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
        assert_eq!(s.hard_state().commit, 4);
        assert_eq!(s.hard_state().vote, 1);
        let ents = all_entries(&s).unwrap();
        assert_eq!(ents.len(), 5);
        assert_eq!(&ents[4].data[..], b"old 5");
    }
    let db = codec::open_sled(&dir.path().join(SLED_DIR)).unwrap();
    assert_eq!(db.scan_prefix(b"e/").count(), 0, "the old log is gone");
    assert!(!db.contains_key(codec::K_HARD).unwrap());
    assert_eq!(
        std::fs::read(dir.path().join(INIT_FILE)).unwrap(),
        INIT_CONTENTS
    );
}

/// Replaces `path` with `bytes`.
fn overwrite(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn garbage_or_truncated_wal_and_synced_files_are_damage_not_a_panic() {
    let garbage = |len: usize| (0..len).map(|i| (i * 7 + 3) as u8).collect::<Vec<_>>();
    type Damage = fn(&Path, &dyn Fn(usize) -> Vec<u8>);
    let cases: [(&str, Damage); 5] = [
        ("segment of garbage", |dir, g| {
            let seg = segment(dir, 1);
            let len = std::fs::metadata(&seg).unwrap().len() as usize;
            overwrite(&seg, &g(len));
        }),
        ("segment truncated to nothing", |dir, _| {
            overwrite(&segment(dir, 1), b"");
        }),
        ("segment truncated inside its first record", |dir, _| {
            let seg = segment(dir, 1);
            let bytes = std::fs::read(&seg).unwrap();
            overwrite(&seg, &bytes[..10]);
        }),
        ("synced file of garbage", |dir, g| {
            overwrite(&dir.join("raft-wal-synced"), &g(64));
        }),
        ("synced file truncated", |dir, _| {
            let path = dir.join("raft-wal-synced");
            let bytes = std::fs::read(&path).unwrap();
            overwrite(&path, &bytes[..5]);
        }),
    ];
    for (what, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate();
        filled(dir.path(), &key, 10);
        damage(dir.path(), &garbage);
        let err = open_err(dir.path(), key);
        eprintln!("{what}: {err}");
        assert!(
            err.contains("damaged") || err.contains("authentication"),
            "{what}: {err}"
        );
    }
}

#[test]
fn a_garbage_or_truncated_snapshot_file_is_refused_by_name() {
    for truncate in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate();
        {
            let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
            s.append(&[new_entry(1, 1)]).unwrap();
            s.create_snapshot(1, ConfState::default(), &[7; 1000])
                .unwrap();
        }
        let file = dir.path().join("snap").join("0000000000000001.snap");
        let bytes = std::fs::read(&file).unwrap();
        if truncate {
            overwrite(&file, &bytes[..bytes.len() / 3]);
        } else {
            overwrite(&file, &vec![0xa5; bytes.len()]);
        }
        let err = match DiskStorage::open(dir.path(), key) {
            Err(e) => e.to_string(),
            Ok(s) => s.snapshot(0, 1).unwrap_err().to_string(),
        };
        eprintln!("truncate={truncate}: {err}");
        assert!(err.contains("snap/0000000000000001.snap"), "{err}");
    }
}
