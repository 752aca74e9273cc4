//! The node's state directory, held under an exclusive lock for the
//! node's whole life: two daemons writing one Raft log would corrupt it,
//! so the second one is refused with the first one's PID.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Why the state dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// Another daemon holds the lock.
    #[error(
        "state dir {path} is in use by another shoal daemon (pid {pid}); give each daemon its own --state-dir"
    )]
    InUse {
        /// The state dir.
        path: PathBuf,
        /// The holder's PID as it wrote it.
        pid: String,
    },
    /// The directory or its lock file cannot be made or opened.
    #[error("cannot use state dir {path}: {source}")]
    Io {
        /// What was being made or opened.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A locked state directory; the lock goes with the value.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    _lock: Flock<File>,
}

impl StateDir {
    /// Creates (mode 0700) and locks `path`.
    pub fn open(path: &Path) -> Result<StateDir, StateDirError> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StateDirError::Io { path: p, source }
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io(path))?;
        // The state holds keys: nobody but root reads it, even if it existed.
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io(path))?;
        let lock_path = path.join("shoal.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(StateDirError::InUse {
                    path: path.to_path_buf(),
                    pid: pid.trim().to_string(),
                });
            }
        };
        lock.set_len(0).map_err(io(&lock_path))?;
        lock.rewind().map_err(io(&lock_path))?;
        write!(lock, "{}", std::process::id()).map_err(io(&lock_path))?;
        Ok(StateDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = StateDir::open(&state).unwrap();
        let err = StateDir::open(&state).unwrap_err().to_string();
        assert!(err.contains("in use by another shoal daemon"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        StateDir::open(&state).expect("lock released with the first holder");
    }

    #[test]
    fn state_dir_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(&dir.path().join("s")).unwrap();
        let mode = fs::metadata(state.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
