//! What is on disk: sealing, tampering, damage, wrong keys, kill -9, and a
//! real raft-rs `RawNode` persisting through this storage.

use std::io::BufRead;

use ::raft::{Config, RawNode};
use zeroize::Zeroizing;

use super::tests::{all_entries, data_entry, new_entry};
use super::*;

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A storage with entries 1..=n (data "entry i", one write each),
/// committed to n, dropped.
pub(super) fn filled(dir: &Path, key: &DataKey, n: u64) {
    let s = DiskStorage::open(dir, key.clone()).unwrap();
    for i in 1..=n {
        let hs = HardState {
            term: 1,
            commit: i,
            ..Default::default()
        };
        let e = data_entry(i, 1, format!("entry {i:02}").as_bytes());
        s.persist_ready(&[e], Some(hs), None).unwrap();
    }
}

#[test]
fn plaintext_never_reaches_disk() {
    let dir = tempfile::tempdir().unwrap();
    let secret_entry = b"DISTINCTIVE-ENTRY-PLAINTEXT-7f3a9c";
    let secret_snap = b"DISTINCTIVE-SNAPSHOT-PLAINTEXT-51e2";
    {
        let s = DiskStorage::open(dir.path(), DataKey::generate()).unwrap();
        let ents: Vec<Entry> = (1..=20).map(|i| data_entry(i, 1, secret_entry)).collect();
        s.append(&ents).unwrap();
        s.create_snapshot(10, ConfState::from((vec![1], vec![])), secret_snap)
            .unwrap();
        s.flush().unwrap();
        assert_eq!(all_entries(&s).unwrap().len(), 20);
    }
    let all = files(dir.path());
    assert!(all.len() > 1, "expected sled files, got {all:?}");
    let mut total = 0;
    for f in all {
        let bytes = std::fs::read(&f).unwrap();
        total += bytes.len();
        assert!(!contains(&bytes, secret_entry), "entry plaintext in {f:?}");
        assert!(
            !contains(&bytes, secret_snap),
            "snapshot plaintext in {f:?}"
        );
    }
    assert!(total > 20 * secret_entry.len(), "nothing was written?");
}

#[test]
fn wrong_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), &DataKey::generate(), 3);
    let err = DiskStorage::open(dir.path(), DataKey::generate()).unwrap_err();
    assert!(matches!(err, StorageError::WrongDataKey { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("wrong data key"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
}

#[test]
fn lost_database_is_not_a_fresh_node() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    filled(dir.path(), &key, 3);
    std::fs::remove_dir_all(dir.path().join(SLED_DIR)).unwrap();
    let err = DiskStorage::open(dir.path(), key).unwrap_err().to_string();
    assert!(err.contains("marker record is missing"), "{err}");
}

/// Stores snapshot `meta` as earlier versions did: sealed chunks in the
/// chunk tree, and a record without the file flag.
fn write_chunked_snapshot(dir: &Path, key: &DataKey, meta: &SnapshotMetadata, data: &[u8]) {
    let keys = codec::Keys::new(dir.to_path_buf(), key.clone());
    let db = codec::open_sled(&dir.join(SLED_DIR)).unwrap();
    let chunks_tree = db.open_tree(codec::CHUNK_TREE).unwrap();
    let (batch, chunks) = super::plan::seal_chunks(&keys, meta, data);
    chunks_tree.apply_batch(batch).unwrap();
    let record = codec::SnapRecord {
        chunks,
        len: data.len() as u64,
        meta: meta.clone(),
        in_file: false,
    };
    db.insert(codec::K_SNAP, keys.seal(codec::K_SNAP, &record.encode()))
        .unwrap();
    db.flush().unwrap();
}

fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(super::snapfile::SNAP_DIR))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_missing_or_damaged_snapshot_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    {
        let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
        s.append(&[new_entry(1, 1)]).unwrap();
        s.create_snapshot(1, ConfState::default(), &vec![7; CHUNK_LEN + 1])
            .unwrap();
    }
    let file = dir.path().join("snap").join("0000000000000001.snap");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
    let err = s.snapshot(0, 1).unwrap_err().to_string();
    assert!(
        err.contains("chunk 1 of 2 of snapshot file snap/0000000000000001.snap"),
        "{err}"
    );
    drop(s);

    std::fs::remove_file(&file).unwrap();
    let err = DiskStorage::open(dir.path(), key).unwrap_err().to_string();
    assert!(
        err.contains("file of the snapshot at index 1 is missing"),
        "{err}"
    );
}

#[test]
fn snapshots_stay_out_of_sled_and_old_ones_go() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    {
        let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
        s.append(&(1..=3).map(|i| new_entry(i, 1)).collect::<Vec<_>>())
            .unwrap();
        s.create_snapshot(1, ConfState::default(), &vec![1; CHUNK_LEN + 1])
            .unwrap();
        s.create_snapshot(3, ConfState::default(), b"later")
            .unwrap();
    }
    // A crash mid-write leaves a temporary file; one before the record, a
    // file no record names.
    let snap = dir.path().join("snap");
    std::fs::write(snap.join("0000000000000009.tmp"), b"torn").unwrap();
    std::fs::write(snap.join("0000000000000008.snap"), b"stray").unwrap();
    let s = DiskStorage::open(dir.path(), key).unwrap();
    assert_eq!(&s.snapshot(0, 1).unwrap().data[..], b"later");
    assert_eq!(snapshot_files(dir.path()), vec!["0000000000000003.snap"]);
    drop(s);
    let db = codec::open_sled(&dir.path().join(SLED_DIR)).unwrap();
    assert!(
        db.iter().values().all(|v| v.unwrap().len() < 1024),
        "no snapshot data in sled"
    );
    assert_eq!(db.open_tree(codec::CHUNK_TREE).unwrap().len(), 0);
}

#[test]
fn chunks_of_earlier_layouts_still_open_and_give_way_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    let big = vec![9; CHUNK_LEN + 5];
    {
        let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
        s.append(&[new_entry(1, 1), new_entry(2, 1), new_entry(3, 1)])
            .unwrap();
    }
    let mut meta = SnapshotMetadata {
        index: 2,
        term: 1,
        ..Default::default()
    };
    meta.set_conf_state(ConfState::default());
    write_chunked_snapshot(dir.path(), &key, &meta, &big);
    {
        // The first layout kept chunks in the main tree (`s/<n>`); leave
        // a stray generation behind as a crash would.
        let db = codec::open_sled(&dir.path().join(SLED_DIR)).unwrap();
        let chunks = db.open_tree(codec::CHUNK_TREE).unwrap();
        for n in 0..2 {
            let v = chunks.remove(codec::chunk_key(2, n)).unwrap().unwrap();
            db.insert(codec::chunk_label(n), v).unwrap();
        }
        chunks
            .insert(codec::chunk_key(7, 0), b"stray".to_vec())
            .unwrap();
        db.flush().unwrap();
    }
    let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
    assert!(s.snapshot(0, 1).unwrap().data[..] == big[..]);
    drop(s);
    {
        let db = codec::open_sled(&dir.path().join(SLED_DIR)).unwrap();
        assert_eq!(db.scan_prefix(b"s/").count(), 0);
        let chunks = db.open_tree(codec::CHUNK_TREE).unwrap();
        assert_eq!(chunks.len(), 2);
        assert!(!chunks.contains_key(codec::chunk_key(7, 0)).unwrap());
    }
    // The next snapshot is a file, and the chunks go.
    let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
    s.create_snapshot(3, ConfState::default(), b"now a file")
        .unwrap();
    drop(s);
    let s = DiskStorage::open(dir.path(), key).unwrap();
    assert_eq!(&s.snapshot(0, 1).unwrap().data[..], b"now a file");
    assert_eq!(snapshot_files(dir.path()), vec!["0000000000000003.snap"]);
    drop(s);
    let db = codec::open_sled(&dir.path().join(SLED_DIR)).unwrap();
    assert_eq!(db.open_tree(codec::CHUNK_TREE).unwrap().len(), 0);
}

#[test]
fn records_sled_drops_at_recovery_are_not_a_shorter_log() {
    // sled takes a record that fails its checksum for the torn end of its
    // log and drops it with everything after: the database would open
    // consistent but without writes that were flushed (acknowledged).
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    {
        // Membership is what sled holds and flushes at every change.
        let s = DiskStorage::open(dir.path(), key.clone()).unwrap();
        for i in 1..=40u64 {
            let voters: Vec<u64> = (1..=i).collect();
            s.set_conf_state(ConfState::from((voters, vec![]))).unwrap();
        }
    }
    let db = dir.path().join(SLED_DIR).join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&db, bytes).unwrap();
    let err = DiskStorage::open(dir.path(), key).unwrap_err().to_string();
    assert!(
        err.contains("damaged") && err.contains("raft-flushes"),
        "{err}"
    );
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

fn key_hex(key: &DataKey) -> String {
    key.bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn key_from_hex(s: &str) -> DataKey {
    let mut bytes = Zeroizing::new([0u8; 32]);
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    DataKey::from_bytes(bytes)
}

const KILL_ENV: &str = "SHOAL_TEST_KILL_DIR";

/// Child half of `kill_9_mid_write`: writes batches forever without
/// waiting for the disk (`write_ready`, as the Raft loop does), while a
/// second thread flushes back to back (as the Raft node's flusher does)
/// and prints the last index written before each flush began, once that
/// flush has returned.
#[test]
#[ignore = "run as a child process by kill_9_mid_write"]
fn kill_child_writer() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let Ok(dir) = std::env::var(KILL_ENV) else {
        return;
    };
    let key = key_from_hex(&std::env::var("SHOAL_TEST_KILL_KEY").unwrap());
    let s = DiskStorage::open(Path::new(&dir), key).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let (flusher, seen) = (s.clone(), written.clone());
    std::thread::spawn(move || {
        loop {
            let w = seen.load(Ordering::SeqCst);
            flusher.flush().unwrap();
            println!("durable {w}");
        }
    });
    let mut hs = HardState {
        term: 1,
        ..Default::default()
    };
    for i in 1.. {
        let ents: Vec<Entry> = (0..5)
            .map(|j| {
                data_entry(
                    5 * i - 4 + j,
                    1,
                    format!("entry {}", 5 * i - 4 + j).as_bytes(),
                )
            })
            .collect();
        hs.commit = 5 * i;
        s.write_ready(&ents, Some(hs.clone()), None).unwrap();
        written.store(5 * i, Ordering::SeqCst);
    }
}

#[test]
fn kill_9_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "--nocapture", "--test-threads=1"])
        .arg("raft::storage::tests_disk::kill_child_writer")
        .env(KILL_ENV, dir.path())
        .env("SHOAL_TEST_KILL_KEY", key_hex(&key))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut durable = 0u64;
    for line in std::io::BufReader::new(stdout).lines() {
        if let Some(n) = line.unwrap().strip_prefix("durable ") {
            durable = n.parse().unwrap();
            if durable >= 400 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-write
    child.wait().unwrap();
    assert!(durable >= 400, "child stopped early at {durable}");

    let s = DiskStorage::open(dir.path(), key).unwrap();
    let last = s.last_index().unwrap();
    assert!(last >= durable, "lost durable entries: {last} < {durable}");
    assert_eq!(last % 5, 0, "a batch was half applied: last index {last}");
    let commit = s.hard_state().commit;
    assert!(commit >= durable && commit <= last, "commit {commit}");
    let ents = all_entries(&s).unwrap();
    assert_eq!(ents.len() as u64, last);
    for (i, e) in ents.iter().enumerate() {
        assert_eq!(&e.data[..], format!("entry {}", i + 1).as_bytes());
    }
}

/// Runs `node`'s Ready loop in the documented order, persisting through
/// `store`; returns the data of entries applied.
fn drive(node: &mut RawNode<DiskStorage>, store: &DiskStorage, applied: &mut Vec<Vec<u8>>) {
    let apply = |ents: Vec<Entry>, applied: &mut Vec<Vec<u8>>| {
        applied.extend(
            ents.into_iter()
                .filter(|e| !e.data.is_empty())
                .map(|e| e.data.to_vec()),
        );
    };
    while node.has_ready() {
        let mut ready = node.ready();
        assert!(ready.messages().is_empty(), "single node sends nothing");
        let snap = (!ready.snapshot().is_empty()).then(|| ready.snapshot().clone());
        apply(ready.take_committed_entries(), applied);
        store
            .persist_ready(ready.entries(), ready.hs().cloned(), snap)
            .unwrap();
        assert!(ready.persisted_messages().is_empty());
        let mut light = node.advance(ready);
        if let Some(commit) = light.commit_index() {
            store.set_commit(commit).unwrap();
        }
        apply(light.take_committed_entries(), applied);
        node.advance_apply();
    }
}

fn config(applied: u64) -> Config {
    Config {
        id: 1,
        election_tick: 10,
        heartbeat_tick: 3,
        applied,
        ..Default::default()
    }
}

#[test]
fn raw_node_single_node_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let want: Vec<Vec<u8>> = (0..1000)
        .map(|i| format!("command {i}").into_bytes())
        .collect();
    {
        let store = DiskStorage::open(dir.path(), key.clone()).unwrap();
        store
            .set_conf_state(ConfState::from((vec![1], vec![])))
            .unwrap();
        let mut node = RawNode::new(&config(0), store.clone(), &logger).unwrap();
        node.campaign().unwrap();
        let mut applied = Vec::new();
        drive(&mut node, &store, &mut applied);
        assert_eq!(node.raft.state, ::raft::StateRole::Leader);
        for batch in want.chunks(50) {
            for cmd in batch {
                node.propose(vec![], cmd.clone()).unwrap();
            }
            drive(&mut node, &store, &mut applied);
        }
        assert_eq!(applied, want);
        // Dropped without any close.
    }

    let store = DiskStorage::open(dir.path(), key).unwrap();
    let hs = store.hard_state();
    assert_eq!(hs.commit, store.last_index().unwrap());
    let committed: Vec<Vec<u8>> = store
        .entries(1, hs.commit + 1, None, tests::ctx())
        .unwrap()
        .into_iter()
        .filter(|e| !e.data.is_empty())
        .map(|e| e.data.to_vec())
        .collect();
    assert_eq!(committed, want);

    // The node restarts from the storage and keeps going.
    let mut node = RawNode::new(&config(hs.commit), store.clone(), &logger).unwrap();
    node.campaign().unwrap();
    let mut applied = Vec::new();
    drive(&mut node, &store, &mut applied);
    node.propose(vec![], b"after restart".to_vec()).unwrap();
    drive(&mut node, &store, &mut applied);
    assert_eq!(applied, vec![b"after restart".to_vec()]);
    assert!(store.hard_state().term > hs.term);
}
