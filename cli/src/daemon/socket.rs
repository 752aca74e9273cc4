//! The daemon's Unix sockets (the local API, and the Docker API when asked).
//! Their file mode is 0600 from the moment they exist: a socket is a door to
//! the whole cluster, so only root may knock. Each is bound inside a private
//! directory, restricted there, and only then renamed into place. A socket
//! file left by a killed daemon is replaced; one a live daemon answers on
//! is not.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use crate::host::Host;

/// Removes the socket file when dropped, so a stopped daemon leaves none.
#[derive(Debug)]
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Binds the socket of `host` (mode 0600), making its directory if needed.
pub fn bind(host: &Host) -> anyhow::Result<(UnixListener, SocketFile)> {
    let path = host.socket();
    let dir = path
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{host} names no socket file"))?;
    fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    if path.exists() && std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!("another daemon is already serving {host}; stop it or use another socket");
    }
    let listener =
        bind_private(dir, path).map_err(|e| anyhow::anyhow!("cannot listen on {host}: {e}"))?;
    Ok((listener, SocketFile(path.to_path_buf())))
}

/// Binds in a fresh 0700 directory next to `path`, sets 0600, then renames
/// the socket over `path` (replacing a stale one in the same step).
fn bind_private(dir: &Path, path: &Path) -> std::io::Result<UnixListener> {
    let private = dir.join(format!(".shoal-bind-{}", std::process::id()));
    let _ = fs::remove_dir_all(&private);
    fs::DirBuilder::new().mode(0o700).create(&private)?;
    let staged = private.join("sock");
    let bound = UnixListener::bind(&staged).and_then(|listener| {
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o600))?;
        fs::rename(&staged, path)?;
        Ok(listener)
    });
    let _ = fs::remove_dir_all(&private);
    bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sockets_are_private_and_replace_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        fs::write(&path, b"stale").unwrap();
        let host: Host = format!("unix://{}", path.display()).parse().unwrap();
        let (_listener, file) = bind(&host).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(bind(&host).is_err(), "a live socket is not replaced");
        drop(file);
        assert!(!path.exists());
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "no staging directory is left");
    }
}
