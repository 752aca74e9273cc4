//! Counting flushes, so a database that sled silently shortened is
//! refused (see the storage module doc): each flush records its number in
//! the database (`m/flushes`), makes everything durable — sled's flush,
//! then [`DiskSync`] — and only then writes the number to the
//! `raft-flushes` file beside the database.

use std::path::{Path, PathBuf};

use super::codec::{self, K_FLUSHES, Keys};
use super::disk::DiskSync;
use super::{Result, SLED_DIR, StorageError};
use crate::seal::SealError;

/// File counting the flushes made durable.
pub(super) const FLUSHES_FILE: &str = "raft-flushes";
const FLUSHES_MAGIC: &[u8; 8] = b"SHOALFL1";
const FLUSHES_LEN: usize = 24;

/// What a flush updates besides sled. One flush at a time (the storage
/// keeps it under a mutex).
pub(super) struct Flushes {
    /// The state directory.
    path: PathBuf,
    /// The `raft-flushes` file.
    file: std::fs::File,
    /// Flushes made so far.
    count: u64,
    /// sled's files, synced after sled's own flush.
    disk: DiskSync,
}

impl Flushes {
    /// Checks the database holds every flush the file counts, and opens
    /// what later flushes update.
    pub(super) fn open(path: &Path, db: &sled::Db, keys: &Keys) -> Result<Flushes> {
        let io = |action, file: &Path, source| StorageError::Io {
            path: path.to_path_buf(),
            source: SealError::Io {
                action,
                path: file.to_path_buf(),
                source,
            },
        };
        let flushes_path = path.join(FLUSHES_FILE);
        let durable = read_flushes_file(&flushes_path, keys)?;
        let stored = match db.get(K_FLUSHES).map_err(|e| keys.sled(e))? {
            Some(sealed) => {
                let plain =
                    keys.open_aad(&sealed, &codec::aad(K_FLUSHES), || "flush counter".into())?;
                <[u8; 8]>::try_from(&plain[..])
                    .map(u64::from_be_bytes)
                    .map_err(|_| keys.damaged("the flush counter does not decode"))?
            }
            None => 0,
        };
        if durable > stored {
            return Err(keys.damaged(&format!(
                "{durable} flushes were made durable here ({FLUSHES_FILE}) but the \
                 database holds only the first {stored}: sled dropped records that \
                 failed their checksums, and every write after them"
            )));
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&flushes_path)
            .map_err(|e| io("cannot open", &flushes_path, e))?;
        let sled_dir = path.join(SLED_DIR);
        let disk = DiskSync::open(&sled_dir).map_err(|e| io("cannot sync", &sled_dir, e))?;
        Ok(Flushes {
            path: path.to_path_buf(),
            file,
            count: stored,
            disk,
        })
    }

    /// Makes everything sled holds durable, and counts it.
    pub(super) fn flush(&mut self, db: &sled::Db, keys: &Keys) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let count = self.count + 1;
        db.insert(K_FLUSHES, keys.seal(K_FLUSHES, &count.to_be_bytes()))
            .map_err(|e| keys.sled(e))?;
        db.flush().map_err(|e| keys.sled(e))?;
        let io = |action, file: &str, source| StorageError::Io {
            path: self.path.clone(),
            source: SealError::Io {
                action,
                path: self.path.join(file),
                source,
            },
        };
        self.disk
            .sync()
            .map_err(|e| io("cannot sync", SLED_DIR, e))?;
        self.count = count;
        self.file
            .write_all_at(&encode_flushes(count), 0)
            .map_err(|e| io("cannot write", FLUSHES_FILE, e))
    }
}

/// The `raft-flushes` record: magic, the count, and the count inverted (a
/// record that does not hold together is damage, not a lower count).
fn encode_flushes(count: u64) -> [u8; FLUSHES_LEN] {
    let mut out = [0u8; FLUSHES_LEN];
    out[..8].copy_from_slice(FLUSHES_MAGIC);
    out[8..16].copy_from_slice(&count.to_be_bytes());
    out[16..].copy_from_slice(&(!count).to_be_bytes());
    out
}

/// The flushes the `raft-flushes` file counts (0 if there is none).
fn read_flushes_file(path: &Path, keys: &Keys) -> Result<u64> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(StorageError::Io {
                path: path.parent().unwrap_or(path).to_path_buf(),
                source: SealError::Io {
                    action: "cannot read",
                    path: path.to_path_buf(),
                    source: e,
                },
            });
        }
    };
    let count = bytes
        .get(8..16)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes);
    match count {
        Some(c) if bytes.len() == FLUSHES_LEN && bytes[..] == encode_flushes(c)[..] => Ok(c),
        // Created, never written: nothing was flushed yet.
        _ if bytes.is_empty() => Ok(0),
        _ => Err(keys.damaged(&format!("{FLUSHES_FILE} does not hold a flush count"))),
    }
}
