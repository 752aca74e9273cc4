//! Harnesses for the fuzz targets that read the storage's files (`fuzz/`):
//! the WAL ([`wal_replay`]) and sealed snapshot files ([`snapshot_file`]).
//! Not an API: see `crate::fuzzing`.

use std::path::Path;

use ::raft::eraftpb::SnapshotMetadata;

use super::codec::{FRAME_ROOM, Keys, chunk_aad};
use super::snapfile::{self, SNAP_DIR};
use crate::seal::DataKey;

pub use super::wal::fuzzing::{seeds as wal_seeds, wal_replay};

/// Reads `n` bytes (or what is left) off the front of `data`.
fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, rest) = data.split_at(n.min(data.len()));
    *data = rest;
    head
}

fn byte(data: &mut &[u8]) -> u8 {
    take(data, 1).first().copied().unwrap_or(0)
}

fn u16_le(data: &mut &[u8]) -> u16 {
    u16::from_le_bytes([byte(data), byte(data)])
}

/// A snapshot file made of sealed chunks and raw bytes, read back as the
/// storage reads the snapshot its record names; the data if it reads.
///
/// Input: snapshot index and term (a byte each), the number of chunks
/// and the length the record claims (a byte, u32 LE), then operations:
/// `0` + u16 LE length + a chunk sealed as the next one, `1` + u16 LE
/// length + raw bytes, `2` + u16 LE length + a chunk sealed for another
/// place. What must hold: nothing panics, and what reads has the length
/// the record claims.
pub fn snapshot_file(dir: &Path, key: &DataKey, mut data: &[u8]) -> Option<Vec<u8>> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join(SNAP_DIR)).expect("create the snapshot directory");
    let keys = Keys::new(dir.to_path_buf(), key.clone());
    let meta = SnapshotMetadata {
        index: u64::from(byte(&mut data)) + 1,
        term: u64::from(byte(&mut data)),
        ..Default::default()
    };
    let chunks = u32::from(byte(&mut data) % 8);
    let len = u64::from(u32::from_le_bytes([
        byte(&mut data),
        byte(&mut data),
        byte(&mut data),
        byte(&mut data),
    ]));
    let mut file = Vec::new();
    let mut sealed = 0u32;
    while !data.is_empty() {
        let op = byte(&mut data) % 3;
        let n = usize::from(u16_le(&mut data));
        let body = take(&mut data, n);
        if op == 1 {
            file.extend_from_slice(body);
            continue;
        }
        let place = if op == 0 { sealed } else { sealed + 1 };
        let mut frame = vec![0; FRAME_ROOM];
        frame.extend_from_slice(body);
        keys.seal_frame(&mut frame, &chunk_aad(&meta, place, chunks));
        file.extend_from_slice(&frame);
        sealed += u32::from(op == 0);
    }
    let path = dir.join(SNAP_DIR).join(format!("{:016x}.snap", meta.index));
    std::fs::write(path, &file).expect("write the snapshot file");
    let read = snapfile::read(&keys, &meta, chunks, len).ok()?;
    assert_eq!(read.len() as u64, len, "read a snapshot of another length");
    Some(read)
}

/// [`snapshot_file`] inputs holding `data` whole, in one chunk or two.
pub fn snapshot_file_seeds(data: &[u8]) -> Vec<Vec<u8>> {
    let op = |body: &[u8]| {
        let mut out = vec![0];
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.extend_from_slice(body);
        out
    };
    let head = |chunks: u8| {
        let mut out = vec![4, 2, chunks];
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    };
    let (a, b) = data.split_at(data.len() / 2);
    vec![
        [head(1), op(data)].concat(),
        [head(2), op(a), op(b)].concat(),
    ]
}
