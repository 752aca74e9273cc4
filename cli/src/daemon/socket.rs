//! The local API's Unix socket. Its file mode is 0600: the socket is the
//! CLI's door to the whole cluster, so only root may knock. A socket file
//! left by a killed daemon is replaced; one a live daemon answers on is not.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::host::Host;

/// Removes the socket file when dropped, so a stopped daemon leaves none.
#[derive(Debug)]
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Binds the socket of `host`, making its directory if needed.
pub fn bind(host: &Host) -> anyhow::Result<(UnixListenerStream, SocketFile)> {
    let path = host.socket().to_path_buf();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            anyhow::bail!("another daemon is already serving {host}; stop it or use another -H");
        }
        fs::remove_file(&path)
            .map_err(|e| anyhow::anyhow!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    let listener =
        UnixListener::bind(&path).map_err(|e| anyhow::anyhow!("cannot listen on {host}: {e}"))?;
    let guard = SocketFile(path);
    fs::set_permissions(&guard.0, fs::Permissions::from_mode(0o600))
        .map_err(|e| anyhow::anyhow!("cannot restrict {}: {e}", guard.0.display()))?;
    Ok((UnixListenerStream::new(listener), guard))
}
