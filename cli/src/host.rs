//! Where the CLI finds its daemon: `-H/--host` or `SHOAL_HOST`, as
//! `docker -H` / `DOCKER_HOST`. Only Unix sockets are served locally.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The default local socket.
pub const DEFAULT_HOST: &str = "unix:///run/shoal/shoal.sock";

/// A daemon address: a Unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    socket: PathBuf,
}

impl Host {
    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl FromStr for Host {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let path = if let Some(rest) = s.strip_prefix("unix://") {
            rest
        } else if s.contains("://") {
            return Err(format!(
                "unsupported host {s:?}: the local API is served on a Unix socket only, e.g. {DEFAULT_HOST}"
            ));
        } else {
            s
        };
        if !path.starts_with('/') {
            return Err(format!(
                "host {s:?} must be an absolute socket path, e.g. {DEFAULT_HOST}"
            ));
        }
        Ok(Host {
            socket: PathBuf::from(path),
        })
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unix://{}", self.socket.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_urls_and_bare_paths() {
        let h: Host = "unix:///tmp/a.sock".parse().unwrap();
        assert_eq!(h.socket(), Path::new("/tmp/a.sock"));
        assert_eq!(h.to_string(), "unix:///tmp/a.sock");
        assert_eq!(
            "/tmp/b.sock".parse::<Host>().unwrap().socket(),
            Path::new("/tmp/b.sock")
        );
    }

    #[test]
    fn refuses_tcp_and_relative_paths() {
        assert!(
            "tcp://1.2.3.4:2375"
                .parse::<Host>()
                .unwrap_err()
                .contains("Unix socket")
        );
        assert!("rel.sock".parse::<Host>().unwrap_err().contains("absolute"));
    }
}
