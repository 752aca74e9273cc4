//! What sled's `flush()` leaves undone. sled 0.34 makes its log stable
//! with `sync_file_range`, which waits for the page writeback but neither
//! flushes the device's write cache nor the file's metadata, and it never
//! syncs the blob files it writes for large pages: after a power loss,
//! writes Shoal acknowledged could be gone. So every flush is followed by
//! an `fdatasync` of sled's data file and of each blob file not yet synced
//! (blobs are written once and never changed), and of the blob directory
//! when it gained files.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Handles on sled's files, for syncing them after sled's own flush.
#[derive(Debug)]
pub(super) struct DiskSync {
    data: File,
    blobs: PathBuf,
    synced: HashSet<OsString>,
}

impl DiskSync {
    /// Opens the files of the sled database in `sled_dir` (already open).
    pub(super) fn open(sled_dir: &Path) -> io::Result<DiskSync> {
        let data = File::open(sled_dir.join("db"))?;
        // The database's own directory entries (made when it was created).
        File::open(sled_dir)?.sync_all()?;
        let mut disk = DiskSync {
            data,
            blobs: sled_dir.join("blobs"),
            synced: HashSet::new(),
        };
        disk.sync()?;
        Ok(disk)
    }

    /// Makes what sled wrote durable on the device.
    pub(super) fn sync(&mut self) -> io::Result<()> {
        self.data.sync_data()?;
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = HashSet::with_capacity(self.synced.len());
        let mut added = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !self.synced.contains(&name) {
                match File::open(entry.path()) {
                    Ok(f) => f.sync_data()?,
                    // Removed by sled between the listing and the open.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                added = true;
            }
            present.insert(name);
        }
        if added {
            File::open(&self.blobs)?.sync_all()?;
        }
        self.synced = present;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_each_new_blob_once_and_forgets_removed_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), b"log").unwrap();
        let mut disk = DiskSync::open(dir.path()).unwrap();
        assert!(disk.synced.is_empty(), "no blob directory yet");
        let blobs = dir.path().join("blobs");
        std::fs::create_dir(&blobs).unwrap();
        std::fs::write(blobs.join("17"), b"big page").unwrap();
        disk.sync().unwrap();
        assert!(disk.synced.contains(&OsString::from("17")));
        std::fs::write(blobs.join("42"), b"another").unwrap();
        std::fs::remove_file(blobs.join("17")).unwrap();
        disk.sync().unwrap();
        let names: Vec<_> = disk.synced.iter().cloned().collect();
        assert_eq!(names, vec![OsString::from("42")]);
    }
}
