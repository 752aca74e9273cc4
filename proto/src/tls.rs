//! rustls configurations for every connection between nodes.
//!
//! Every TCP connection between nodes is mutual TLS with certificates from
//! the cluster CA; these builders are the one place that decides what a
//! peer must show:
//!
//! - [`server_config`]: clients must chain to the cluster root. A removed
//!   node keeps a valid certificate until it expires, so the verifier also
//!   refuses node ids in a [`DenyList`] the manager updates at run time.
//!   That is a handshake check; connections already open are tied to the
//!   list with [`DenyList::watch`] (see `net::tls_incoming_denying`), which
//!   closes them the moment their node is denied. Session resumption is
//!   off so every connection is checked. [`ClientAuth::Optional`] lets a
//!   node without a certificate reach the CA to join with a token; every
//!   other RPC must then insist on [`peer_identity`].
//! - [`verify_node_certificate`]: a certificate shown out of band (a
//!   manager forwarding a node's call names the node by its certificate)
//!   is checked as the handshake would have checked it.
//! - [`client_config`]: nodes are dialled by IP, so the server name the
//!   caller passes is ignored. Instead, as swarmkit does, manager
//!   certificates carry the DNS SAN `swarm-manager` (the CA writes it from
//!   the role) and the verifier checks the chain against the cluster roots
//!   for that fixed name, then also checks the OU. Only managers serve.
//! - [`bootstrap_client_config`]: `swarm join` has no certificate and no
//!   root yet. The server sends its chain including the root; the client
//!   accepts it only if that root has the digest in the join token, which
//!   defeats a man in the middle, and verifies the chain against it.
//!
//! All configs use the `ring` provider explicitly and speak ALPN `h2` (gRPC).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};

use crate::identity::{NodeIdentity, NodeRole};
use crate::token::CaDigest;

mod deny;
pub use deny::DenyList;

/// The DNS SAN every manager certificate carries and clients verify.
pub const MANAGER_SERVER_NAME: &str = "swarm-manager";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// An empty list of roots would trust nobody.
    #[error("no cluster root CA certificate was given")]
    NoRoots,
    /// A root certificate cannot be used as a trust anchor.
    #[error("the cluster root CA certificate is not usable: {0}")]
    Root(rustls::Error),
    /// rustls refused to build a verifier.
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The node's own certificate chain or key is unusable.
    #[error("the node certificate or key is not usable: {0}")]
    NodeCertificate(rustls::Error),
    /// A certificate shown out of band does not verify.
    #[error("the node certificate is not trusted: {0}")]
    Untrusted(rustls::Error),
    /// PEM text could not be read.
    #[error("cannot read the {what} PEM: {detail}")]
    Pem {
        /// What was being read.
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },
}

/// The join token pins one root CA and the manager presented another.
#[derive(Debug, thiserror::Error)]
#[error(
    "the cluster CA presented by the manager ({presented}) does not match the CA digest in \
     the join token ({expected}): check the token and the manager address (possible \
     man-in-the-middle)"
)]
pub struct CaMismatch {
    /// The digest from the token.
    pub expected: CaDigest,
    /// What the server sent instead.
    pub presented: String,
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(ring::default_provider()))
        .clone()
}

/// Installs rustls' `ring` provider as the process default, for code that
/// builds configs without naming a provider. Safe to call any number of
/// times; the configs in this module do not need it.
pub fn install_default_provider() {
    let _ = CryptoProvider::install_default(ring::default_provider());
}

/// All certificates in PEM text, in order.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: "certificate",
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: "certificate",
            detail: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// The first private key in PEM text.
pub fn key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Pem {
        what: "private key",
        detail: e.to_string(),
    })
}

/// Whether a server demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Clients must present a certificate chaining to the cluster root.
    Required,
    /// Clients may connect without one (to join with a token); a
    /// certificate that is presented is still verified and checked
    /// against the deny list.
    Optional,
}

fn root_store(roots: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).map_err(TlsError::Root)?;
    }
    Ok(Arc::new(store))
}

/// Our own verification failures. `Error::Other` displays the message as
/// written ("other error: ..."), where `CertificateError::Other` would
/// show only its `Debug` form; callers can downcast to [`CaMismatch`].
fn cert_error(err: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::Other(OtherError(Arc::new(err)))
}

/// Builds the config for a node's cluster port (see the module docs).
/// `chain` is the node's certificate followed by its issuers up to and
/// including the root, so that joining nodes can pin the root.
pub fn server_config(
    roots: &[CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    deny: &DenyList,
    client_auth: ClientAuth,
) -> Result<ServerConfig, TlsError> {
    let mut builder = WebPkiClientVerifier::builder_with_provider(root_store(roots)?, provider());
    if client_auth == ClientAuth::Optional {
        builder = builder.allow_unauthenticated();
    }
    let verifier = Arc::new(DenyingClientVerifier {
        inner: builder.build()?,
        deny: deny.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::NodeCertificate)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(TlsError::NodeCertificate)?;
    // No resumption: a resumed session skips client certificate
    // verification, which would let a denied node back in.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Builds the config a node uses to call a manager: presents `chain`/`key`
/// and accepts only manager certificates chaining to `roots`.
pub fn client_config(
    roots: &[CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ClientConfig, TlsError> {
    let inner =
        WebPkiServerVerifier::builder_with_provider(root_store(roots)?, provider()).build()?;
    let verifier = Arc::new(ManagerVerifier {
        roots: Roots::Fixed(inner),
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::NodeCertificate)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(TlsError::NodeCertificate)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Builds the config `swarm join` uses before it has a certificate: no
/// client certificate, and the server must send a root CA certificate
/// whose digest is `expected_root` (from the join token). Otherwise the
/// handshake fails with a [`CaMismatch`] error.
pub fn bootstrap_client_config(expected_root: CaDigest) -> Result<ClientConfig, TlsError> {
    let verifier = Arc::new(ManagerVerifier {
        roots: Roots::Pinned(expected_root),
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::NodeCertificate)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Verifies a node certificate shown out of band, as the cluster port's
/// handshake would: it chains to `roots` (directly: node certificates are
/// issued by a root), is valid now, and names a node. Returns that node.
pub fn verify_node_certificate(
    roots: &[CertificateDer<'static>],
    cert: &CertificateDer<'_>,
) -> Result<NodeIdentity, TlsError> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(root_store(roots)?, provider()).build()?;
    verifier
        .verify_client_cert(cert, &[], UnixTime::now())
        .map_err(TlsError::Untrusted)?;
    NodeIdentity::from_cert_der(cert).map_err(|e| TlsError::Untrusted(cert_error(e)))
}

/// The identity in a verified peer chain (e.g. tokio-rustls'
/// `peer_certificates()`), for authorizing RPCs by role. `None` when the
/// peer sent no certificate or it carries no node identity.
///
/// Every RPC asks, and parsing X.509 costs more than the rest of a small
/// call's checks, so identities are remembered by the certificate's bytes
/// (a verified chain's leaf always names the same identity).
pub fn peer_identity(certs: &[CertificateDer<'_>]) -> Option<NodeIdentity> {
    /// Certificates remembered before the memory starts over.
    const REMEMBERED: usize = 1024;
    static SEEN: OnceLock<std::sync::Mutex<HashMap<Vec<u8>, NodeIdentity>>> = OnceLock::new();
    let leaf = certs.first()?;
    let seen = SEEN.get_or_init(Default::default);
    if let Some(id) = seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(leaf.as_ref())
    {
        return Some(id.clone());
    }
    let id = NodeIdentity::from_cert_der(leaf).ok()?;
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    if seen.len() >= REMEMBERED {
        seen.clear();
    }
    seen.insert(leaf.as_ref().to_vec(), id.clone());
    Some(id)
}

/// WebPkiClientVerifier plus the deny list.
struct DenyingClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    deny: DenyList,
}

impl fmt::Debug for DenyingClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenyingClientVerifier")
            .field("deny", &self.deny)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for DenyingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let id = NodeIdentity::from_cert_der(end_entity).map_err(cert_error)?;
        if self.deny.is_denied(&id.node_id) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Where a [`ManagerVerifier`] gets its trust anchors.
#[derive(Debug)]
enum Roots {
    /// The cluster roots the node already has.
    Fixed(Arc<WebPkiServerVerifier>),
    /// Only the presented certificate with this digest (joining).
    Pinned(CaDigest),
}

/// The server is a manager: its chain verifies for [`MANAGER_SERVER_NAME`]
/// (whatever address was dialled) and its OU says `swarm-manager`.
#[derive(Debug)]
struct ManagerVerifier {
    roots: Roots,
}

#[derive(Debug, thiserror::Error)]
#[error("the server's certificate is for {0}, not a swarm manager")]
struct NotAManager(String);

impl ManagerVerifier {
    fn pinned_verifier(
        expected: CaDigest,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
        let Some(root) = intermediates.iter().find(|c| expected.matches_der(c)) else {
            let sent: Vec<String> = intermediates
                .iter()
                .map(|c| CaDigest::of_der(c).to_string())
                .collect();
            let presented = if sent.is_empty() {
                "no CA certificate".to_string()
            } else {
                sent.join(", ")
            };
            return Err(cert_error(CaMismatch {
                expected,
                presented,
            }));
        };
        let mut store = RootCertStore::empty();
        store.add(root.clone().into_owned())?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))
    }
}

impl ServerCertVerifier for ManagerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let inner = match &self.roots {
            Roots::Fixed(inner) => inner.clone(),
            Roots::Pinned(expected) => Self::pinned_verifier(*expected, intermediates)?,
        };
        let name = ServerName::try_from(MANAGER_SERVER_NAME).expect("a valid DNS name");
        let verified =
            inner.verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)?;
        let id = NodeIdentity::from_cert_der(end_entity).map_err(cert_error)?;
        if id.role != NodeRole::Manager {
            return Err(cert_error(NotAManager(id.to_string())));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_need_roots() {
        install_default_provider();
        install_default_provider();
        let key = crate::identity::NodeKey::generate().unwrap();
        let err = client_config(&[], vec![], key.private_key_der()).unwrap_err();
        assert_eq!(err.to_string(), "no cluster root CA certificate was given");
        let err = server_config(
            &[CertificateDer::from(vec![1, 2, 3])],
            vec![],
            key.private_key_der(),
            &DenyList::new(),
            ClientAuth::Required,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the cluster root CA certificate is not usable"),
            "{err}"
        );
    }

    #[test]
    fn pem_helpers_report_what_failed() {
        let err = certs_from_pem("nothing here").unwrap_err().to_string();
        assert_eq!(err, "cannot read the certificate PEM: no certificate found");
        let key = crate::identity::NodeKey::generate().unwrap();
        assert!(key_from_pem(&key.to_pem()).is_ok());
        assert!(key_from_pem("nothing").is_err());
    }

    #[test]
    fn peer_identity_is_none_without_certs() {
        assert_eq!(peer_identity(&[]), None);
        assert_eq!(peer_identity(&[CertificateDer::from(vec![0u8; 4])]), None);
    }
}
