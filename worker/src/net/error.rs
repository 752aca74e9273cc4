//! The data plane's errors.

use std::io;
use std::path::PathBuf;

/// Why a data-plane operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A netlink request the kernel refused.
    #[error("netlink: {op}: {source}")]
    Netlink {
        /// What was being done, with the object's name.
        op: String,
        /// The kernel's (or the library's) answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// A namespace or file operation.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or namespace it was done on.
        path: PathBuf,
        /// The system's answer.
        #[source]
        source: io::Error,
    },
    /// A network in the view that cannot be programmed (no subnet, no VNI).
    #[error("network {id}: {reason}")]
    BadNetwork {
        /// The network.
        id: String,
        /// What is missing or malformed.
        reason: String,
    },
    /// An attachment to a network this node has not set up.
    #[error("network {0} is not set up on this node")]
    UnknownNetwork(String),
    /// A link that should exist does not (created, then vanished).
    #[error("no link {name} in {}", ns.display())]
    MissingLink {
        /// The interface.
        name: String,
        /// The namespace it was looked for in.
        ns: PathBuf,
    },
    /// A prefix that would make names collide or overflow IFNAMSIZ.
    #[error("bad prefix {0:?}: 1 to 6 characters of [a-z0-9]")]
    BadPrefix(String),
    /// Every address of the node's egress pool is taken.
    #[error("the node's egress pool 172.31.0.0/16 has no free address")]
    EgressPoolFull,
}

impl NetError {
    /// Wraps a netlink failure with what was being done.
    pub fn netlink(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Self {
        let op = op.into();
        move |source| Self::Netlink { op, source }
    }

    /// Wraps an I/O failure with what was being done and where.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }
}
