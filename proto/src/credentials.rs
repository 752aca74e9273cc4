//! A node's TLS credentials on disk: its key, its certificate, and the
//! cluster root(s) it trusts, under `<state>/certificates/`.
//!
//! The three files are one set and are swapped as one: a save writes a new
//! generation directory `gen-<n>/` (each file fsynced, then the directory),
//! then points the `current` symlink at it with one rename(2) and fsyncs
//! `certificates/`. A crash before that rename leaves the old set in use
//! and a stray generation that the next save removes; after it, the new
//! set. Loading follows `current`, and checks that the key is the one the
//! certificate certifies.
//!
//! Nodes from before generations kept the files directly in
//! `certificates/`; they are loaded from there while no `current` link
//! exists, and the first save moves them into a generation.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ServerConfig};

use crate::identity::{IdentityError, NodeIdentity, NodeKey};
use crate::tls::{self, ClientAuth, DenyList, TlsError};

#[cfg(test)]
mod tests;

/// What to do about credentials that cannot be used.
const REPAIR: &str = "restore the node's certificates/ directory from a backup, \
     or remove the state directory's swarm.json and certificates/ and join the swarm again";

/// Why credentials could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
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
    /// A stored file is damaged or does not belong with the others.
    #[error("{}: {reason}; {REPAIR}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
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
/// The symlink naming the generation in use.
const CURRENT: &str = "current";
/// Where a save builds the new `current` link before renaming it.
const NEXT_LINK: &str = ".current.tmp";
const GEN_PREFIX: &str = "gen-";

/// The steps of a save, in order; a test stops a save after one of them
/// to act out a crash there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// Stray generations from an earlier crash are gone.
    Cleaned,
    /// The new generation's key is written and synced.
    Key,
    /// ... and its roots.
    Roots,
    /// ... and its certificate.
    Cert,
    /// The new generation's directory is synced.
    Generation,
    /// The new link exists under its temporary name.
    Link,
    /// `current` names the new generation (the switch).
    Switched,
    /// The old generation and any pre-generation files are removed.
    Done,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialsError {
    let path = path.to_path_buf();
    move |source| CredentialsError::Io { path, source }
}

fn generation(name: &str) -> Option<u64> {
    name.strip_prefix(GEN_PREFIX)?.parse().ok()
}

/// The generation `current` names, if the link exists.
fn current(dir: &Path) -> Result<Option<(u64, PathBuf)>, CredentialsError> {
    let link = dir.join(CURRENT);
    let target = match fs::read_link(&link) {
        Ok(target) => target,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&link)(e)),
    };
    let n = target
        .to_str()
        .filter(|t| !t.contains('/'))
        .and_then(generation)
        .ok_or_else(|| CredentialsError::Invalid {
            path: link.clone(),
            reason: format!(
                "names {}, not a generation of this directory",
                target.display()
            ),
        })?;
    Ok(Some((n, dir.join(target))))
}

fn sync_dir(dir: &Path) -> Result<(), CredentialsError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn write_synced(path: &Path, text: &str) -> Result<(), CredentialsError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(text.as_bytes()).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// Removes `path`, file or directory; a missing one is fine.
fn remove(path: &Path) -> Result<(), CredentialsError> {
    let gone = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match gone {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

impl NodeCredentials {
    /// The directory credentials live in under a state dir.
    pub fn dir(state_dir: &Path) -> PathBuf {
        state_dir.join("certificates")
    }

    /// Loads the credentials in `dir`, `None` if there are none. Damaged
    /// files, or a key that the certificate does not certify, are an
    /// error naming the file.
    pub fn load(dir: &Path) -> Result<Option<NodeCredentials>, CredentialsError> {
        // A save racing this load may remove the generation read; follow
        // the link again then.
        let mut tries = 0;
        loop {
            let Some((_, generation)) = current(dir)? else {
                if !dir.join(CERT).exists() {
                    return Ok(None);
                }
                return Self::load_set(dir).map(Some);
            };
            match Self::load_set(&generation) {
                Err(CredentialsError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound
                        && tries < 3
                        && current(dir)?.map(|(_, g)| g) != Some(generation.clone()) =>
                {
                    tries += 1;
                }
                other => return other.map(Some),
            }
        }
    }

    /// Reads and checks the set in `dir`.
    fn load_set(dir: &Path) -> Result<NodeCredentials, CredentialsError> {
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(io_err(&path))
        };
        let creds = NodeCredentials {
            key_pem: read(KEY)?,
            cert_pem: read(CERT)?,
            roots_pem: read(ROOTS)?,
        };
        let invalid = |name: &str, reason: String| CredentialsError::Invalid {
            path: dir.join(name),
            reason,
        };
        let leaf = tls::certs_from_pem(&creds.cert_pem)
            .ok()
            .and_then(|certs| certs.into_iter().next())
            .ok_or_else(|| invalid(CERT, "not a PEM certificate".into()))?;
        NodeIdentity::from_cert_der(&leaf).map_err(|e| invalid(CERT, e.to_string()))?;
        match tls::certs_from_pem(&creds.roots_pem) {
            Ok(roots) if !roots.is_empty() => {}
            _ => return Err(invalid(ROOTS, "not PEM certificates".into())),
        }
        let key = NodeKey::from_pem(&creds.key_pem).map_err(|e| invalid(KEY, e.to_string()))?;
        if !key
            .matches_cert(&leaf)
            .map_err(|e| invalid(CERT, e.to_string()))?
        {
            return Err(invalid(
                KEY,
                format!("this key does not match the certificate in {CERT}"),
            ));
        }
        Ok(creds)
    }

    /// Saves them to `dir` (made 0700) as a new generation and switches to
    /// it atomically: a crash at any point leaves either the old set or
    /// the new one in use, never a mix.
    pub fn save(&self, dir: &Path) -> Result<(), CredentialsError> {
        self.save_until(dir, Step::Done)
    }

    /// [`save`](Self::save), stopping after `last` (tests act out a crash).
    fn save_until(&self, dir: &Path, last: Step) -> Result<(), CredentialsError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
        let old = current(dir)?;
        // Whatever is not the current generation is left from a crash.
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stray = (generation(&name).is_some()
                && old.as_ref().map(|(_, g)| g) != Some(&entry.path()))
                || name == NEXT_LINK
                || (name.starts_with('.') && name.ends_with(".tmp"));
            if stray {
                remove(&entry.path())?;
            }
        }
        let stop = |step: Step| step >= last;
        if stop(Step::Cleaned) {
            return Ok(());
        }
        let n = old.as_ref().map_or(1, |(n, _)| n + 1);
        let name = format!("{GEN_PREFIX}{n}");
        let new = dir.join(&name);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&new)
            .map_err(io_err(&new))?;
        for (step, file, text) in [
            (Step::Key, KEY, &self.key_pem),
            (Step::Roots, ROOTS, &self.roots_pem),
            (Step::Cert, CERT, &self.cert_pem),
        ] {
            write_synced(&new.join(file), text)?;
            if stop(step) {
                return Ok(());
            }
        }
        sync_dir(&new)?;
        if stop(Step::Generation) {
            return Ok(());
        }
        let next = dir.join(NEXT_LINK);
        std::os::unix::fs::symlink(&name, &next).map_err(io_err(&next))?;
        if stop(Step::Link) {
            return Ok(());
        }
        let link = dir.join(CURRENT);
        fs::rename(&next, &link).map_err(io_err(&link))?;
        sync_dir(dir)?;
        if stop(Step::Switched) {
            return Ok(());
        }
        if let Some((_, generation)) = old {
            remove(&generation)?;
        }
        for file in [KEY, ROOTS, CERT] {
            remove(&dir.join(file))?;
        }
        sync_dir(dir)
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
