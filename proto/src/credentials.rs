//! A node's TLS credentials on disk: its key, its certificate, and the
//! cluster root(s) it trusts, under `<state>/certificates/`. Written
//! atomically (temp file, fsync, rename) with mode 0600, so a kill -9 while
//! renewing leaves the old set or the new one, never half of each.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ServerConfig};

use crate::identity::{IdentityError, NodeIdentity};
use crate::tls::{self, ClientAuth, DenyList, TlsError};

/// Why credentials could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The PEM or certificate is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The certificate names no node.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// A node's key, certificate and trusted roots, as PEM.
#[derive(Clone)]
pub struct NodeCredentials {
    /// The node's private key (PEM). Never logged.
    pub key_pem: String,
    /// The node's certificate (PEM).
    pub cert_pem: String,
    /// The trusted root CA certificate(s) (PEM), current root first.
    pub roots_pem: String,
}

impl std::fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self
            .identity()
            .map(|i| i.to_string())
            .unwrap_or_else(|e| e.to_string());
        f.debug_struct("NodeCredentials")
            .field("identity", &id)
            .finish_non_exhaustive()
    }
}

const KEY: &str = "node.key";
const CERT: &str = "node.crt";
const ROOTS: &str = "root-ca.crt";

impl NodeCredentials {
    /// The directory credentials live in under a state dir.
    pub fn dir(state_dir: &Path) -> PathBuf {
        state_dir.join("certificates")
    }

    /// Loads the credentials in `dir`, `None` if there are none.
    pub fn load(dir: &Path) -> Result<Option<NodeCredentials>, CredentialsError> {
        if !dir.join(CERT).exists() {
            return Ok(None);
        }
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(|source| CredentialsError::Io { path, source })
        };
        let creds = NodeCredentials {
            key_pem: read(KEY)?,
            cert_pem: read(CERT)?,
            roots_pem: read(ROOTS)?,
        };
        creds.identity()?;
        Ok(Some(creds))
    }

    /// Saves them to `dir` (made 0700), each file atomically, key first and
    /// certificate last so a complete certificate implies a matching key.
    pub fn save(&self, dir: &Path) -> Result<(), CredentialsError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CredentialsError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        for (name, text) in [
            (KEY, &self.key_pem),
            (ROOTS, &self.roots_pem),
            (CERT, &self.cert_pem),
        ] {
            let path = dir.join(name);
            let tmp = dir.join(format!(".{name}.tmp"));
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(&tmp))?;
            file.write_all(text.as_bytes()).map_err(io(&tmp))?;
            file.sync_all().map_err(io(&tmp))?;
            fs::rename(&tmp, &path).map_err(io(&path))?;
        }
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(())
    }

    /// Who the certificate says this node is.
    pub fn identity(&self) -> Result<NodeIdentity, CredentialsError> {
        let certs = tls::certs_from_pem(&self.cert_pem)?;
        let leaf = certs.first().ok_or(TlsError::NoRoots)?;
        Ok(NodeIdentity::from_cert_der(leaf)?)
    }

    /// When the certificate was issued and when it expires. Issuance is
    /// the certificate's start plus the hour the CA backdates it by (for
    /// clock skew), never later than now.
    pub fn validity(
        &self,
    ) -> Result<(std::time::SystemTime, std::time::SystemTime), CredentialsError> {
        use std::time::{Duration, SystemTime, UNIX_EPOCH};
        let certs = tls::certs_from_pem(&self.cert_pem)?;
        let leaf = certs.first().ok_or(TlsError::NoRoots)?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| {
            CredentialsError::Identity(IdentityError::BadCertificate(e.to_string()))
        })?;
        let at = |t: i64| UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
        let not_before = at(cert.validity().not_before.timestamp());
        let not_after = at(cert.validity().not_after.timestamp());
        let issued = (not_before + Duration::from_secs(3600))
            .min(SystemTime::now())
            .min(not_after);
        Ok((issued, not_after))
    }

    /// The trusted roots as DER.
    pub fn roots(&self) -> Result<Vec<CertificateDer<'static>>, CredentialsError> {
        Ok(tls::certs_from_pem(&self.roots_pem)?)
    }

    /// The chain a server presents: its certificate(s), then the roots, so
    /// a joining node can pin the root by the digest in its token.
    fn chain(&self) -> Result<Vec<CertificateDer<'static>>, CredentialsError> {
        let mut chain = tls::certs_from_pem(&self.cert_pem)?;
        chain.extend(self.roots()?);
        Ok(chain)
    }

    /// A client config presenting these credentials.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, CredentialsError> {
        let chain = tls::certs_from_pem(&self.cert_pem)?;
        let key = tls::key_from_pem(&self.key_pem)?;
        Ok(Arc::new(tls::client_config(&self.roots()?, chain, key)?))
    }

    /// A server config presenting these credentials, refusing denied nodes.
    pub fn server_config(
        &self,
        deny: &DenyList,
        auth: ClientAuth,
    ) -> Result<Arc<ServerConfig>, CredentialsError> {
        let key = tls::key_from_pem(&self.key_pem)?;
        Ok(Arc::new(tls::server_config(
            &self.roots()?,
            self.chain()?,
            key,
            deny,
            auth,
        )?))
    }
}
