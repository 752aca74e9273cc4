//! The cluster CA: the root that every node certificate chains to, and the
//! join tokens that decide who may get a certificate.
//!
//! Kept as plain libraries (no RPC, no store access) so the rules are
//! tested on their own: the CA RPC handlers look up the node and cluster
//! in the store and call [`RootCa::issue`] and [`JoinTokens::role_for`].
//! The token format and the TLS configs live in `shoal-proto` because the
//! joining side needs them too; they are re-exported here so manager code
//! has one place to import PKI types from.

pub mod root;
pub mod rotation;
pub mod service;
pub mod signer;
pub mod token;

pub use root::{CaError, DEFAULT_NODE_CERT_EXPIRY, ROOT_CN, RootCa};
pub use service::CaService;
pub use shoal_proto::token::{CaDigest, JoinToken, TokenError};
pub use token::{JoinError, JoinTokens};
