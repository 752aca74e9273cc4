//! What a node remembers about its swarm across restarts, in
//! `<state>/swarm.json` (no secrets: keys and certificates live in
//! `certificates/`, the cluster's data in the manager's sealed log).
//! Written atomically so a kill -9 never leaves half a file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why swarm.json cannot be read or written. The messages name the file
/// and carry the cause in their own text (a damaged file is refused by
/// name, and nothing repeats the cause).
#[derive(Debug, thiserror::Error)]
pub enum SwarmFileError {
    /// The file is not a swarm file any more.
    #[error(
        "{} is damaged ({reason}); restore it from a backup, or remove it, \
         certificates/ and manager/ from the state dir and join the swarm again",
        path.display()
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The file cannot be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The file cannot be written.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
}

/// The node's swarm membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmFile {
    /// This node's id.
    pub node_id: String,
    /// The cluster's id.
    pub cluster_id: String,
    /// `manager` or `worker`.
    pub role: String,
    /// Where the cluster port listens (managers).
    pub listen_addr: String,
    /// How others reach this node (`ip:port`).
    pub advertise_addr: String,
    /// Raft id (managers; 0 for workers).
    pub raft_id: u64,
    /// Manager addresses last heard of.
    pub managers: Vec<String>,
}

impl SwarmFile {
    fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("swarm.json")
    }

    /// Loads it, `None` when this node is in no swarm.
    pub fn load(state_dir: &Path) -> Result<Option<SwarmFile>, SwarmFileError> {
        let path = Self::path(state_dir);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| SwarmFileError::Damaged {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(SwarmFileError::Read { path, error }),
        }
    }

    /// Saves it atomically.
    pub fn save(&self, state_dir: &Path) -> Result<(), SwarmFileError> {
        let path = Self::path(state_dir);
        let tmp = state_dir.join(".swarm.json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&serde_json::to_vec_pretty(self)?)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(state_dir)?.sync_all()
        };
        write().map_err(|error| {
            let _ = fs::remove_file(&tmp);
            SwarmFileError::Write { path, error }
        })
    }

    /// Forgets the swarm (leave).
    pub fn remove(state_dir: &Path) -> std::io::Result<()> {
        match fs::remove_file(Self::path(state_dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether this node is a manager.
    pub fn is_manager(&self) -> bool {
        self.role == "manager"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(SwarmFile::load(dir.path()).unwrap(), None);
        let file = SwarmFile {
            node_id: "n".into(),
            cluster_id: "c".into(),
            role: "manager".into(),
            listen_addr: "0.0.0.0:2377".into(),
            advertise_addr: "198.18.0.10:2377".into(),
            raft_id: 7,
            managers: vec!["198.18.0.10:2377".into()],
        };
        file.save(dir.path()).unwrap();
        assert_eq!(SwarmFile::load(dir.path()).unwrap(), Some(file));
        SwarmFile::remove(dir.path()).unwrap();
        assert_eq!(SwarmFile::load(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("swarm.json"), b"{not json").unwrap();
        let err = SwarmFile::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("swarm.json is damaged"), "{err}");
    }
}
