//! The cluster CA's digest and join tokens, in Docker's formats.
//!
//! A join token `SWMTKN-1-<digest>-<secret>` does two jobs: its digest part
//! (the sha256 of the root CA certificate, 50 base36 characters) lets a
//! joining node pin the CA before it trusts anything, and its secret (25
//! base36 characters, 128 random bits) lets the CA decide whether to issue
//! a certificate. The token does not name a role: the cluster keeps a worker
//! token and a manager token and the role is that of the one that matches.
//!
//! This lives in `shoal-proto`, not the manager, because the joining side
//! parses tokens too. Secrets never appear in `Debug` output and are
//! compared in constant time.

use std::fmt;
use std::str::FromStr;

use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;

use crate::identity::{from_base36, random_bytes, to_base36};

const PREFIX: &str = "SWMTKN";
const DIGEST_LEN: usize = 50;
const SECRET_LEN: usize = 25;

/// The sha256 of a root CA certificate's DER; shown as `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaDigest([u8; 32]);

impl CaDigest {
    /// The digest of a DER certificate.
    pub fn of_der(der: &[u8]) -> CaDigest {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, der).as_ref());
        CaDigest(out)
    }

    /// Whether `der` is the certificate this digest names.
    pub fn matches_der(&self, der: &[u8]) -> bool {
        *self == CaDigest::of_der(der)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for CaDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for CaDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaDigest({self})")
    }
}

/// A `sha256:<hex>` string that is not one.
#[derive(Debug, thiserror::Error)]
#[error("invalid CA digest {0:?}: expected \"sha256:\" and 64 hex digits")]
pub struct CaDigestError(String);

impl FromStr for CaDigest {
    type Err = CaDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CaDigestError(s.to_string());
        let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(CaDigest(out))
    }
}

/// Why a string is not a join token. Every message starts with
/// "invalid join token" and never repeats the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `SWMTKN-1-<digest>-<secret>`.
    #[error("invalid join token: expected the form SWMTKN-1-<ca digest>-<secret>")]
    Malformed,
    /// A version other than 1 (Docker's FIPS tokens are version 2).
    #[error("invalid join token: unsupported version {0:?} (only version 1 is supported)")]
    Version(String),
    /// The digest part is not 50 base36 characters naming a sha256.
    #[error("invalid join token: the CA digest part must be 50 lowercase base36 characters")]
    Digest,
    /// The secret part is not 25 base36 characters.
    #[error("invalid join token: the secret part must be 25 lowercase base36 characters")]
    Secret,
}

/// A join token: the CA digest to pin and the secret to present.
#[derive(Clone)]
pub struct JoinToken {
    root_digest: CaDigest,
    secret: String,
}

impl JoinToken {
    /// A fresh token for the root CA with digest `root_digest`.
    pub fn generate(root_digest: CaDigest) -> JoinToken {
        let mut secret = [0u8; 16];
        random_bytes(&mut secret);
        JoinToken {
            root_digest,
            secret: format!("{:0>SECRET_LEN$}", to_base36(&secret)),
        }
    }

    /// The root CA digest this token pins.
    pub fn root_digest(&self) -> CaDigest {
        self.root_digest
    }

    /// Whether `cert_der` is the root CA this token pins.
    pub fn root_digest_matches(&self, cert_der: &[u8]) -> bool {
        self.root_digest.matches_der(cert_der)
    }

    /// Whether `other` has the same secret, compared in constant time.
    pub fn secret_matches(&self, other: &JoinToken) -> bool {
        self.secret.as_bytes().ct_eq(other.secret.as_bytes()).into()
    }

    /// The same secret for another root (used when the root rotates).
    pub fn with_root_digest(&self, root_digest: CaDigest) -> JoinToken {
        JoinToken {
            root_digest,
            secret: self.secret.clone(),
        }
    }
}

impl PartialEq for JoinToken {
    fn eq(&self, other: &Self) -> bool {
        self.root_digest == other.root_digest && self.secret_matches(other)
    }
}

impl Eq for JoinToken {}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("root_digest", &self.root_digest)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The full token text: this is what `join-token` prints, so it contains
/// the secret. Do not log it.
impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}-1-{:0>DIGEST_LEN$}-{}",
            to_base36(self.root_digest.as_bytes()),
            self.secret
        )
    }
}

fn is_base36(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
}

impl FromStr for JoinToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('-').collect();
        if parts.len() < 4 || parts[0] != PREFIX {
            return Err(TokenError::Malformed);
        }
        if parts[1] != "1" {
            return Err(TokenError::Version(parts[1].chars().take(8).collect()));
        }
        if parts.len() != 4 {
            return Err(TokenError::Malformed);
        }
        let (digest, secret) = (parts[2], parts[3]);
        if digest.len() != DIGEST_LEN || !is_base36(digest) {
            return Err(TokenError::Digest);
        }
        let root_digest = from_base36::<32>(digest).ok_or(TokenError::Digest)?;
        if secret.len() != SECRET_LEN || !is_base36(secret) {
            return Err(TokenError::Secret);
        }
        Ok(JoinToken {
            root_digest: CaDigest(root_digest),
            secret: secret.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> CaDigest {
        CaDigest::of_der(b"a root certificate")
    }

    #[test]
    fn digest_displays_and_parses_as_docker() {
        let d = digest();
        let text = d.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 71, "{text}");
        assert_eq!(text.parse::<CaDigest>().unwrap(), d);
        assert!(d.matches_der(b"a root certificate"));
        assert!(!d.matches_der(b"another"));
        let err = "sha256:zz".parse::<CaDigest>().unwrap_err().to_string();
        assert!(
            err.contains("expected \"sha256:\" and 64 hex digits"),
            "{err}"
        );
    }

    #[test]
    fn token_has_docker_shape_and_round_trips() {
        let t = JoinToken::generate(digest());
        let text = t.to_string();
        let parts: Vec<&str> = text.split('-').collect();
        assert_eq!(parts.len(), 4, "{text}");
        assert_eq!(&parts[..2], &["SWMTKN", "1"]);
        assert_eq!(parts[2].len(), 50);
        assert_eq!(parts[3].len(), 25);
        let back: JoinToken = text.parse().unwrap();
        assert_eq!(back, t);
        assert_eq!(back.root_digest(), digest());
        assert!(back.root_digest_matches(b"a root certificate"));
        assert_ne!(JoinToken::generate(digest()), t, "secrets are random");
    }

    #[test]
    fn docker_token_parses() {
        // Shaped as Docker prints them (digest first digit < 7: fits 256 bits).
        let text =
            "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx";
        let t: JoinToken = text.parse().unwrap();
        assert_eq!(t.to_string(), text);
    }

    #[test]
    fn secret_is_never_in_debug() {
        let t = JoinToken::generate(digest());
        let text = t.to_string();
        let secret = text.rsplit('-').next().unwrap();
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(secret), "{dbg}");
        assert!(dbg.contains("[redacted]"));
    }

    #[test]
    fn tampered_tokens_are_refused_clearly() {
        let good = JoinToken::generate(digest()).to_string();
        let (head, secret) = good.rsplit_once('-').unwrap();
        let cases = [
            ("garbage".to_string(), TokenError::Malformed),
            (good.replacen("SWMTKN", "SWMTKX", 1), TokenError::Malformed),
            (
                good.replacen("-1-", "-2-", 1),
                TokenError::Version("2".into()),
            ),
            (format!("{good}-FIPS"), TokenError::Malformed),
            (format!("{head}-{}", &secret[1..]), TokenError::Secret),
            (
                format!("{head}-{}", secret.to_uppercase()),
                TokenError::Secret,
            ),
            (
                format!("SWMTKN-1-{}-{secret}", "z".repeat(50)),
                TokenError::Digest,
            ),
            (format!("SWMTKN-1-abc-{secret}"), TokenError::Digest),
        ];
        for (text, want) in cases {
            let err = text.parse::<JoinToken>().unwrap_err();
            assert_eq!(err, want, "{text}");
            let msg = err.to_string();
            assert!(msg.starts_with("invalid join token: "), "{msg}");
            assert!(!msg.contains(secret), "{msg}");
        }
    }

    #[test]
    fn secrets_compare_by_value_only() {
        let a = JoinToken::generate(digest());
        let moved = a.with_root_digest(CaDigest::of_der(b"new root"));
        assert!(a.secret_matches(&moved));
        assert_ne!(a, moved, "different roots make different tokens");
        assert!(!a.secret_matches(&JoinToken::generate(digest())));
    }
}
