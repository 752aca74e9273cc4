//! Why a node could not do what it was asked. Each variant says what went
//! wrong in words a user can act on; the local API maps them to gRPC
//! statuses (`cli/src/daemon/local_api/status.rs`), which is why the
//! variants follow the kinds of answer rather than the modules.

use std::path::PathBuf;
use std::time::Duration;

use shoal_manager::backup::BackupError;
use shoal_manager::ca::CaError;
use shoal_manager::runtime::ManagerError;
use shoal_manager::seal::SealError;
use shoal_proto::credentials::CredentialsError;
use shoal_proto::identity::IdentityError;
use shoal_proto::tls::TlsError;
use shoal_proto::token::TokenError;
use shoal_worker::engine_choice::EngineError;
use shoal_worker::image::ImageError;
use shoal_worker::volume::VolumeError;

use crate::state_dir::StateDirError;
use crate::swarm_file::SwarmFileError;

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    // The request does not fit the node's state.
    /// Init or join on a node already in a swarm (Docker's words).
    #[error(
        "This node is already part of a swarm. Use \"shoal swarm leave\" to leave this swarm and join another one."
    )]
    AlreadyInSwarm,
    /// A swarm operation on a node in none.
    #[error("This node is not part of a swarm")]
    NotInSwarm,
    /// `swarm leave` on a manager without `--force`.
    #[error(
        "You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves the remaining managers to keep quorum on their own. Use `--force` to suppress this message."
    )]
    LeavingManager,
    /// `swarm unlock` on a manager that is not locked.
    #[error("swarm is not locked")]
    NotLocked,
    /// A manager operation while the manager is locked or stopped.
    #[error("this manager is locked or not running: unlock it with `shoal swarm unlock` first")]
    LockedFirst,
    /// `--force-new-cluster` on a node that is no manager.
    #[error("--force-new-cluster needs a node that is a manager of an existing swarm")]
    ForceNeedsManager,
    /// A manager's operation (backup) on a worker.
    #[error("{}", shoal_manager::authz::NOT_A_MANAGER)]
    NotAManager,
    /// A backup without a passphrase, and no unlock key to seal it with.
    #[error(
        "a backup needs a passphrase (--passphrase-file, or SHOAL_BACKUP_PASSPHRASE); a swarm with autolock on can seal it with its unlock key instead"
    )]
    NeedsPassphrase,

    // The request itself is wrong.
    /// A listen or advertise address that cannot be used.
    #[error("{0}")]
    Address(String),
    /// A join token that is not one.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// An unlock key that is not one.
    #[error("invalid unlock key: {0}")]
    UnlockKey(SealError),
    /// A certificate lifetime out of bounds.
    #[error("{0}")]
    CertExpiry(String),

    // Joining through a manager.
    /// No answer from the manager in time.
    #[error("timed out after {after:?} joining through {remote}: is a manager listening there?")]
    JoinTimeout {
        /// The manager's address.
        remote: String,
        /// How long the node waited.
        after: Duration,
    },
    /// The manager cannot be reached.
    #[error("could not join through the manager at {remote}: {detail}")]
    JoinUnreachable {
        /// The manager's address.
        remote: String,
        /// The innermost cause.
        detail: String,
    },
    /// The manager refused (bad token, removed node, ...).
    #[error("{message}")]
    JoinRefused {
        /// The manager's status code, passed on as it is.
        code: tonic::Code,
        /// Its message (the innermost cause).
        message: String,
    },

    // Certificate renewal.
    /// The CA did not answer a renewal in time.
    #[error("the CA did not answer in time")]
    CaTimeout,
    /// The CA refused or could not be reached.
    #[error("{0}")]
    CaRefused(String),
    /// The CA's answer named another node.
    #[error("the CA issued a certificate for another node")]
    ForeignCertificate,
    /// The CA's roots are not PEM text.
    #[error("the CA's roots are not text: {0}")]
    CaRoots(#[from] std::string::FromUtf8Error),

    // The node's own state.
    /// The state dir is locked by another daemon or unusable.
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    /// swarm.json cannot be read or written.
    #[error(transparent)]
    SwarmFile(#[from] SwarmFileError),
    /// swarm.json names a swarm, but the certificates are gone.
    #[error("{} lists a swarm but its certificates are missing", .0.display())]
    MissingCertificates(PathBuf),
    /// The node's credentials cannot be read, written or used.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// A key or CSR cannot be made.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A new cluster's CA could not be made or could not issue.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// Files of the state dir cannot be removed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The engine asked for cannot be used.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The image store cannot be opened.
    #[error(transparent)]
    Images(#[from] ImageError),
    /// The volume store cannot be opened.
    #[error(transparent)]
    Volumes(#[from] VolumeError),

    // The manager.
    /// The manager could not start (or stop being locked).
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// The Raft log could not be replaced by a one-member cluster.
    #[error("{0}")]
    ForceNewCluster(ManagerError),
    /// A backup could not be sealed or opened.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// Work handed to a blocking thread died.
    #[error("{0}")]
    Blocking(#[from] tokio::task::JoinError),
}

impl NodeError {
    /// The message with every cause after it (`a: b: c`), as a manager's
    /// start-up errors are reported: their causes are in their sources.
    pub fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}
