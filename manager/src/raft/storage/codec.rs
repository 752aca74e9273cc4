//! Record keys, sealing with place-binding AAD, and the checks run when the
//! state is loaded (so damage shows up at open, not as a silently short log).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::raft::eraftpb::{ConfState, Entry, HardState, SnapshotMetadata};
use protobuf::Message;

use super::{Result, State, StorageError};
use crate::seal::DataKey;

pub(super) const K_MARKER: &[u8] = b"m/marker";
pub(super) const K_HARD: &[u8] = b"m/hard_state";
pub(super) const K_CONF: &[u8] = b"m/conf_state";
pub(super) const K_SNAP: &[u8] = b"m/snapshot";
/// How many flushes the database has seen (see `raft-flushes`).
pub(super) const K_FLUSHES: &[u8] = b"m/flushes";
const P_ENTRY: &[u8] = b"e/";
/// Where snapshot chunks lived before they had a tree of their own; still
/// their name in the AAD, so chunks sealed then open now.
const P_CHUNK: &[u8] = b"s/";
/// The sled tree of snapshot chunks. Kept out of the main tree so the
/// leaf that takes every append and hard state never holds megabytes of
/// snapshot: sled rewrites a whole leaf when it consolidates or splits it.
pub(super) const CHUNK_TREE: &[u8] = b"snapshot-chunks";
const AAD_DOMAIN: &[u8] = b"shoal/raft/v1\0";

/// Opens the sled database, waiting out the lock a just-dropped handle in
/// this process may still hold: sled's flusher thread lets go of the
/// database a moment after the last handle is dropped.
pub(super) fn open_sled(path: &Path) -> sled::Result<sled::Db> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match sled::open(path) {
            Err(sled::Error::Io(e)) if is_lock_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// sled reports a held lock as an `Other` error wrapping `WouldBlock`.
fn is_lock_busy(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// Key of log entry `index`: big-endian so sled orders entries by index.
pub(super) fn entry_key(index: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(P_ENTRY);
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Name of snapshot data chunk `n` (its key in the old layout; its AAD).
pub(super) fn chunk_label(n: u32) -> [u8; 6] {
    let mut k = [0u8; 6];
    k[..2].copy_from_slice(P_CHUNK);
    k[2..].copy_from_slice(&n.to_be_bytes());
    k
}

/// Key of chunk `n` of the snapshot at index `generation` in
/// [`CHUNK_TREE`]. The index makes every snapshot's chunks a new
/// generation: they are written and flushed before the `m/snapshot` record
/// names them, and the previous generation goes only once that record is
/// durable.
pub(super) fn chunk_key(generation: u64, n: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&generation.to_be_bytes());
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

/// The snapshot index a [`chunk_key`] belongs to.
fn chunk_gen(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(..8)?.try_into().ok()?))
}

/// AAD binding a value to its key.
pub(super) fn aad(key: &[u8]) -> Vec<u8> {
    [AAD_DOMAIN, key].concat()
}

/// AAD of a snapshot chunk: its key plus which snapshot and how many chunks,
/// so chunks of an older snapshot cannot be passed off as this one's.
pub(super) fn chunk_aad(meta: &SnapshotMetadata, n: u32, chunks: u32) -> Vec<u8> {
    let mut a = aad(&chunk_label(n));
    a.extend_from_slice(&meta.index.to_be_bytes());
    a.extend_from_slice(&meta.term.to_be_bytes());
    a.extend_from_slice(&chunks.to_be_bytes());
    a
}

/// Room [`Keys::seal_frame`] needs before the plaintext: the length, then
/// the nonce.
pub(super) const FRAME_ROOM: usize = 4 + crate::seal::NONCE_LEN;

/// The data key plus the directory to name in errors.
pub(super) struct Keys {
    path: PathBuf,
    key: DataKey,
}

impl Keys {
    pub(super) fn new(path: PathBuf, key: DataKey) -> Keys {
        Keys { path, key }
    }

    pub(super) fn key(&self) -> &DataKey {
        &self.key
    }

    /// The state directory.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn seal(&self, key: &[u8], plain: &[u8]) -> Vec<u8> {
        self.key.seal(plain, &aad(key))
    }

    /// Seals `frame[FRAME_ROOM..]` where it lies into a frame as the WAL
    /// and snapshot files store them: the sealed part's length (u32 LE),
    /// then nonce, ciphertext and tag. The caller leaves [`FRAME_ROOM`]
    /// bytes before the plaintext.
    pub(super) fn seal_frame(&self, frame: &mut Vec<u8>, aad: &[u8]) {
        self.key.seal_in_place(frame, 4, aad);
        let sealed_len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&sealed_len.to_le_bytes());
    }

    pub(super) fn open_aad(
        &self,
        sealed: &[u8],
        aad: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>> {
        self.key
            .open(sealed, aad)
            .map_err(|_| StorageError::Authentication {
                path: self.path.clone(),
                what: what(),
            })
    }

    pub(super) fn damaged(&self, what: &str) -> StorageError {
        StorageError::Damaged {
            path: self.path.clone(),
            what: what.to_string(),
        }
    }

    pub(super) fn sled(&self, source: sled::Error) -> StorageError {
        StorageError::Sled {
            path: self.path.clone(),
            source,
        }
    }

    /// Reads, authenticates and decodes the message at `key`, if present.
    fn get_message<M: Message>(&self, db: &sled::Db, key: &[u8], what: &str) -> Result<Option<M>> {
        let Some(sealed) = db.get(key).map_err(|e| self.sled(e))? else {
            return Ok(None);
        };
        let plain = self.open_aad(&sealed, &aad(key), || what.to_string())?;
        M::parse_from_bytes(&plain)
            .map(Some)
            .map_err(|e| self.damaged(&format!("{what} does not decode: {e}")))
    }
}

/// Snapshot metadata plus how its data is chunked and where it is.
pub(super) struct SnapRecord {
    pub(super) chunks: u32,
    pub(super) len: u64,
    pub(super) meta: SnapshotMetadata,
    /// In a snapshot file ([`super::snapfile`]), not in [`CHUNK_TREE`]
    /// (where earlier versions kept every snapshot).
    pub(super) in_file: bool,
}

/// Set in the stored chunk count of a snapshot kept in a file.
const IN_FILE: u32 = 1 << 31;

impl SnapRecord {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let flag = if self.in_file { IN_FILE } else { 0 };
        out.extend_from_slice(&(self.chunks | flag).to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
        out.extend_from_slice(&self.meta.write_to_bytes().unwrap_or_default());
        out
    }

    fn decode(bytes: &[u8]) -> Option<SnapRecord> {
        let stored = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
        let len = u64::from_be_bytes(bytes.get(4..12)?.try_into().ok()?);
        let meta = SnapshotMetadata::parse_from_bytes(bytes.get(12..)?).ok()?;
        Some(SnapRecord {
            chunks: stored & !IN_FILE,
            len,
            meta,
            in_file: stored & IN_FILE != 0,
        })
    }
}

/// Reads and authenticates log entry `index` of the first layout; a
/// missing one is damage (a hole in the log).
fn read_entry(db: &sled::Db, keys: &Keys, index: u64) -> Result<Entry> {
    let key = entry_key(index);
    let sealed = db
        .get(key)
        .map_err(|e| keys.sled(e))?
        .ok_or_else(|| keys.damaged(&format!("raft log entry {index} is missing")))?;
    let plain = keys.open_aad(&sealed, &aad(&key), || format!("log entry {index}"))?;
    let entry = Entry::parse_from_bytes(&plain)
        .map_err(|e| keys.damaged(&format!("raft log entry {index} does not decode: {e}")))?;
    if entry.index != index {
        return Err(keys.damaged(&format!(
            "raft log entry stored at {index} says it is entry {}",
            entry.index
        )));
    }
    Ok(entry)
}

fn entry_index(keys: &Keys, key: &[u8]) -> Result<u64> {
    key.get(2..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| keys.damaged("a raft log key is malformed"))
}

/// Loads the cached metadata and checks it hangs together: it
/// authenticates and the snapshot's chunks are all there. The hard state
/// and entries come from the WAL (or [`take_legacy_log`]).
pub(super) fn load_state(db: &sled::Db, chunks: &sled::Tree, keys: &Keys) -> Result<State> {
    let mut st = State {
        conf: keys
            .get_message::<ConfState>(db, K_CONF, "conf state")?
            .unwrap_or_default(),
        ..State::default()
    };
    if let Some(sealed) = db.get(K_SNAP).map_err(|e| keys.sled(e))? {
        let plain = keys.open_aad(&sealed, &aad(K_SNAP), || "snapshot metadata".into())?;
        let rec = SnapRecord::decode(&plain)
            .ok_or_else(|| keys.damaged("snapshot metadata does not decode"))?;
        if rec.in_file && !super::snapfile::exists(keys, rec.meta.index) {
            return Err(keys.damaged(&format!(
                "the file of the snapshot at index {} is missing from {}/",
                rec.meta.index,
                super::snapfile::SNAP_DIR
            )));
        }
        for n in (0..rec.chunks).filter(|_| !rec.in_file) {
            let key = chunk_key(rec.meta.index, n);
            if !chunks.contains_key(key).map_err(|e| keys.sled(e))? {
                return Err(
                    keys.damaged(&format!("snapshot chunk {n} of {} is missing", rec.chunks))
                );
            }
        }
        st.snap = rec.meta;
        st.snap_chunks = rec.chunks;
        st.snap_len = rec.len;
        st.snap_in_file = rec.in_file;
    }
    Ok(st)
}

/// The log of the first layout, which kept entries (`e/<index>`) and the
/// hard state in sled: checked (no holes, every entry authenticates) and
/// read whole, if there is one. The commit is checked against the log
/// with the WAL's, once the log is put together.
pub(super) fn take_legacy_log(
    db: &sled::Db,
    keys: &Keys,
) -> Result<Option<(HardState, Vec<Entry>)>> {
    let hard = keys.get_message::<HardState>(db, K_HARD, "hard state")?;
    let mut iter = db.scan_prefix(P_ENTRY).keys();
    let range = match iter.next() {
        Some(first) => {
            let first = entry_index(keys, &first.map_err(|e| keys.sled(e))?)?;
            let last = match iter.next_back() {
                Some(k) => entry_index(keys, &k.map_err(|e| keys.sled(e))?)?,
                None => first,
            };
            Some((first, last))
        }
        None => None,
    };
    if hard.is_none() && range.is_none() {
        return Ok(None);
    }
    let hard = hard.unwrap_or_default();
    let entries = match range {
        Some((first, last)) => (first..=last)
            .map(|i| read_entry(db, keys, i))
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    Ok(Some((hard, entries)))
}

/// Removes the first layout's log from sled, once the WAL holds it.
pub(super) fn drop_legacy_log(db: &sled::Db, keys: &Keys) -> Result<()> {
    let mut batch = sled::Batch::default();
    batch.remove(K_HARD);
    for key in db.scan_prefix(P_ENTRY).keys() {
        batch.remove(key.map_err(|e| keys.sled(e))?);
    }
    db.apply_batch(batch).map_err(|e| keys.sled(e))?;
    db.flush().map_err(|e| keys.sled(e))?;
    Ok(())
}

/// Moves snapshot chunks of the old layout (`s/<n>` in the main tree) into
/// [`CHUNK_TREE`] under the recorded snapshot's generation. The sealed
/// bytes move as they are (their AAD names the chunk, not the key). Safe
/// to repeat after a crash: copy and flush first, then remove and flush.
pub(super) fn migrate_legacy_chunks(db: &sled::Db, chunks: &sled::Tree, keys: &Keys) -> Result<()> {
    let legacy: Vec<(sled::IVec, sled::IVec)> = db
        .scan_prefix(P_CHUNK)
        .collect::<sled::Result<_>>()
        .map_err(|e| keys.sled(e))?;
    if legacy.is_empty() {
        return Ok(());
    }
    let sealed = db
        .get(K_SNAP)
        .map_err(|e| keys.sled(e))?
        .ok_or_else(|| keys.damaged("snapshot chunks are stored but no snapshot metadata"))?;
    let plain = keys.open_aad(&sealed, &aad(K_SNAP), || "snapshot metadata".into())?;
    let generation = SnapRecord::decode(&plain)
        .ok_or_else(|| keys.damaged("snapshot metadata does not decode"))?
        .meta
        .index;
    let mut copy = sled::Batch::default();
    let mut remove = sled::Batch::default();
    for (key, value) in &legacy {
        let n = key
            .get(2..6)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| keys.damaged("a snapshot chunk has a malformed key"))?;
        copy.insert(&chunk_key(generation, n)[..], value.clone());
        remove.remove(key.clone());
    }
    chunks.apply_batch(copy).map_err(|e| keys.sled(e))?;
    db.flush().map_err(|e| keys.sled(e))?;
    db.apply_batch(remove).map_err(|e| keys.sled(e))?;
    db.flush().map_err(|e| keys.sled(e))?;
    Ok(())
}

/// Removes chunks of every generation but `keep` (left by a crash between
/// writing a snapshot and dropping the one it replaced; `None` once the
/// snapshot is in a file).
pub(super) fn drop_stale_chunks(chunks: &sled::Tree, keys: &Keys, keep: Option<u64>) -> Result<()> {
    let mut stale = sled::Batch::default();
    for key in chunks.iter().keys() {
        let key = key.map_err(|e| keys.sled(e))?;
        if keep.is_none() || chunk_gen(&key) != keep {
            stale.remove(key);
        }
    }
    chunks.apply_batch(stale).map_err(|e| keys.sled(e))
}
