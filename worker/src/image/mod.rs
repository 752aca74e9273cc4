//! A node-local, content-addressed OCI image store: what the embedded
//! engine runs tasks from when there is no Docker Engine.
//!
//! Images come from any registry speaking the Docker Registry HTTP API v2 /
//! OCI distribution ([`ImageStore::pull`]) or from a `docker save` / OCI
//! image-layout tarball ([`ImageStore::load`], for air-gapped nodes). Layers
//! are unpacked once, each into its own directory ready to be an overlayfs
//! `lowerdir`, and shared by every image that has them.
//!
//! # On disk (`root/`)
//!
//! ```text
//!   layers/<hex>/      one unpacked layer; <hex> is its diff_id (sha256 of
//!                      the uncompressed tar), whiteouts in overlayfs form
//!   images/<hex>.json  one image record; <hex> is the image id (sha256 of
//!                      its config blob)
//!   names.json         the name index: tags and repo digests -> image id
//!   tmp/               work in progress; emptied at open
//!   lock               flock'ed while a store has the root open
//! ```
//!
//! Every write lands in `tmp/` first and is renamed into place, so a crash,
//! a corrupt layer, a wrong digest, a missing tag or an unreachable registry
//! leaves nothing half-written in `layers/`, `images/` or the index.
//! Compressed blobs are not kept once unpacked: the unpacked layer is what
//! tasks use, and keeping both would double the disk an image takes (a node
//! never pushes, so nothing needs them again).
//!
//! - [`reference`](mod@reference): image names, their normal form, insecure registries.
//! - `pull`: from a registry (oci-client), blobs verified as they stream.
//! - `unpack`: one layer tar into a directory, whiteouts for overlayfs;
//!   `layerfs` writes what tar-rs does not (whiteouts, devices, xattrs).
//! - `load`: `docker save` and OCI-layout tarballs.
//! - `store`: the records, the name index, remove and prune; `locks`:
//!   single flight for pulls and layers.
//! - `config`: the parts of an image config a task needs.

mod config;
mod layerfs;
mod load;
mod locks;
mod pull;
pub mod reference;
mod store;
mod unpack;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use store::ImageStore;

/// Which registries are reached over plain HTTP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// `host:port` (or just `host`, any port) of registries served over
    /// plain HTTP, like Docker's `insecure-registries`. `localhost` and
    /// 127.0.0.0/8 are always insecure, as in Docker.
    pub insecure: Vec<String>,
}

/// Credentials for one registry; empty means anonymous. With a username,
/// oci-client does basic auth or the bearer-token dance, whichever the
/// registry asks for.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The user name.
    pub username: String,
    /// The password or access token; never printed.
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .finish()
    }
}

/// An image in the store, ready to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// `sha256:<hex>` of the image config blob.
    pub id: String,
    /// Normalized names, e.g. `docker.io/library/busybox:latest`.
    pub references: Vec<String>,
    /// `name@sha256:<manifest digest>` when the image was pulled.
    pub repo_digest: Option<String>,
    /// What the image says about how to run it.
    pub config: ImageConfig,
    /// Unpacked layer directories, lowest first: overlayfs wants them
    /// reversed (top first) as `lowerdir`.
    pub layers: Vec<PathBuf>,
    /// Unpacked bytes (regular files) of all layers.
    pub size: u64,
}

/// The parts of an OCI/Docker image config a task needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    /// Command prefix (`ENTRYPOINT`).
    pub entrypoint: Vec<String>,
    /// Default arguments (`CMD`).
    pub cmd: Vec<String>,
    /// `KEY=value` environment.
    pub env: Vec<String>,
    /// Working directory; empty means `/`.
    pub working_dir: String,
    /// `user[:group]`, by name or id; empty means root.
    pub user: String,
    /// `port/proto`, e.g. `80/tcp`.
    pub exposed_ports: Vec<String>,
    /// Signal that stops the task; empty means SIGTERM.
    pub stop_signal: String,
    /// Docker's `HEALTHCHECK`, if any.
    pub healthcheck: Option<ImageHealthcheck>,
    /// Paths declared as volumes.
    pub volumes: Vec<String>,
    /// Image labels.
    pub labels: BTreeMap<String, String>,
}

/// Docker's `HEALTHCHECK` as stored in the image config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageHealthcheck {
    /// `["NONE"]`, `["CMD", args..]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Time between checks; `None` means the default.
    pub interval: Option<Duration>,
    /// Time one check may take; `None` means the default.
    pub timeout: Option<Duration>,
    /// Grace period after start; `None` means the default.
    pub start_period: Option<Duration>,
    /// Failures in a row before unhealthy; 0 means the default.
    pub retries: u32,
}

/// What a pull is doing, for progress reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullProgress {
    /// The reference resolved to a manifest.
    Resolved {
        /// The normalized reference pulled.
        reference: String,
        /// The manifest digest (of the index, for multi-platform images).
        digest: String,
        /// How many layers the image has.
        layers: usize,
    },
    /// Bytes of one layer blob downloaded so far.
    Layer {
        /// The blob digest.
        digest: String,
        /// Bytes downloaded.
        done: u64,
        /// Bytes in the blob.
        total: u64,
    },
    /// One layer is unpacked and verified.
    LayerDone {
        /// The blob digest.
        digest: String,
        /// Whether it was already in the store (nothing downloaded).
        cached: bool,
    },
    /// The image is in the store.
    Done,
}

/// Why an image operation failed. Messages are short, name the image (and
/// registry) and never include credentials.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference is not a valid image name.
    #[error("invalid image reference {0:?}")]
    BadReference(String),
    /// No such image, tag or repository (locally or in the registry).
    #[error("{0}")]
    NotFound(String),
    /// The registry refused the credentials (or asked for some).
    #[error("{0}")]
    Unauthorized(String),
    /// The registry cannot be reached (down, refused, timed out, TLS).
    #[error("{0}")]
    Unreachable(String),
    /// The registry said something else went wrong.
    #[error("{0}")]
    Registry(String),
    /// Downloaded or loaded content does not hash to its digest.
    #[error("{image}: content does not match its digest (expected {expected}, got {actual})")]
    DigestMismatch {
        /// The image (and layer) concerned.
        image: String,
        /// The digest the manifest or config promised.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A layer, manifest, config or tarball that cannot be used: bad
    /// gzip/tar, entries escaping the layer, malformed JSON.
    #[error("{0}")]
    Corrupt(String),
    /// Valid but not supported here (zstd layers, schema 1, no platform).
    #[error("{0}")]
    Unsupported(String),
    /// The image is used by a task.
    #[error("{0}")]
    InUse(String),
    /// The local disk failed.
    #[error("{0}")]
    Io(String),
}

impl ImageError {
    /// Prefixes the message with where it happened (an image, a layer).
    pub(crate) fn context(self, what: &str) -> ImageError {
        use ImageError::*;
        let p = |m: String| format!("{what}: {m}");
        match self {
            BadReference(m) => BadReference(m),
            NotFound(m) => NotFound(p(m)),
            Unauthorized(m) => Unauthorized(p(m)),
            Unreachable(m) => Unreachable(p(m)),
            Registry(m) => Registry(p(m)),
            DigestMismatch {
                image,
                expected,
                actual,
            } => DigestMismatch {
                image: format!("{what}: {image}"),
                expected,
                actual,
            },
            Corrupt(m) => Corrupt(p(m)),
            Unsupported(m) => Unsupported(p(m)),
            InUse(m) => InUse(p(m)),
            Io(m) => Io(p(m)),
        }
    }
}

/// An I/O error with what was being done.
pub(crate) fn io_err(what: impl std::fmt::Display, err: std::io::Error) -> ImageError {
    ImageError::Io(format!("{what}: {err}"))
}

/// `sha256:<hex>` of some bytes.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex(&sha2::Sha256::digest(bytes)))
}

/// Lowercase hex of a hash.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex part of a `sha256:<64 hex>` digest; `None` for anything else,
/// so a digest from a manifest can never name a path outside the store.
pub(crate) fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_debug_hides_the_password() {
        let auth = RegistryAuth {
            username: "alice".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{auth:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn digest_hex_refuses_paths() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(digest_hex(&good), Some("a".repeat(64).as_str()));
        assert_eq!(digest_hex("sha256:../../etc"), None);
        assert_eq!(digest_hex(&format!("sha512:{}", "a".repeat(64))), None);
        assert_eq!(digest_hex(&format!("sha256:{}", "A".repeat(64))), None);
    }
}
