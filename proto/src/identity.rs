//! Who a node is, as its certificate says, and the key it proves it with.
//!
//! Shoal follows Docker's certificate layout so that identities read the
//! same way everywhere: CN = node id, OU = role (`swarm-manager` or
//! `swarm-worker`), O = cluster id. The certificate is the only source of a
//! peer's identity: servers authorize RPCs by the role read here, never by
//! anything the peer says in a request. Ids are 25 lowercase base36
//! characters, as Docker's, so they are valid DNS labels and can sit in a
//! certificate's DNS SAN.

use std::fmt;
use std::str::FromStr;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a certificate does not carry a usable node identity, or a key
/// could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The bytes are not an X.509 certificate.
    #[error("the node certificate cannot be parsed: {0}")]
    BadCertificate(String),
    /// The certificate's subject lacks CN, OU or O.
    #[error("the node certificate's subject has no {0}")]
    MissingField(&'static str),
    /// The OU is neither `swarm-manager` nor `swarm-worker`.
    #[error("unknown node role {0:?}: expected \"swarm-manager\" or \"swarm-worker\"")]
    UnknownRole(String),
    /// Key generation, parsing or CSR encoding failed.
    #[error("node key: {0}")]
    Key(String),
}

/// What a node may do in the cluster; carried in its certificate's OU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// Runs tasks; reaches only the dispatcher, the CA and log publishing.
    Worker,
    /// Holds the Raft store and serves the control API.
    Manager,
}

impl NodeRole {
    /// The certificate OU for this role, as Docker writes it.
    pub fn as_ou(self) -> &'static str {
        match self {
            NodeRole::Worker => "swarm-worker",
            NodeRole::Manager => "swarm-manager",
        }
    }

    /// The role named by a certificate OU.
    pub fn from_ou(ou: &str) -> Result<NodeRole, IdentityError> {
        match ou {
            "swarm-worker" => Ok(NodeRole::Worker),
            "swarm-manager" => Ok(NodeRole::Manager),
            other => Err(IdentityError::UnknownRole(other.to_string())),
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeRole::Worker => "worker",
            NodeRole::Manager => "manager",
        })
    }
}

impl FromStr for NodeRole {
    type Err = IdentityError;

    /// Accepts `worker`/`manager` (the CLI's words) or the OU form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "worker" => Ok(NodeRole::Worker),
            "manager" => Ok(NodeRole::Manager),
            other => NodeRole::from_ou(other),
        }
    }
}

/// A node's identity as stated by the cluster CA in its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    /// The node id (certificate CN).
    pub node_id: String,
    /// The node's role (certificate OU).
    pub role: NodeRole,
    /// The cluster id (certificate O).
    pub cluster_id: String,
}

impl NodeIdentity {
    /// Reads CN/OU/O from a DER certificate. This does not verify the
    /// certificate: only call it on certificates a TLS handshake (or the
    /// CA itself) has already checked.
    pub fn from_cert_der(der: &[u8]) -> Result<NodeIdentity, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        let subject = cert.subject();
        let first =
            |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>,
             what: &'static str| {
                it.next()
                    .and_then(|a| a.as_str().ok())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or(IdentityError::MissingField(what))
            };
        let node_id = first(&mut subject.iter_common_name(), "common name (node id)")?;
        let ou = first(
            &mut subject.iter_organizational_unit(),
            "organizational unit (role)",
        )?;
        let cluster_id = first(
            &mut subject.iter_organization(),
            "organization (cluster id)",
        )?;
        Ok(NodeIdentity {
            node_id,
            role: NodeRole::from_ou(&ou)?,
            cluster_id,
        })
    }
}

impl fmt::Display for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} of cluster {}",
            self.role, self.node_id, self.cluster_id
        )
    }
}

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Lowercase base36 of a big-endian unsigned number (no padding; "0" for zero).
pub(crate) fn to_base36(bytes: &[u8]) -> String {
    // 36^6 fits a u32: long division of 32-bit limbs by it yields six
    // digits a pass (a leader makes an id per created object).
    const SIX_DIGITS: u64 = 36u64.pow(6);
    let mut limbs = vec![0u32; bytes.len().div_ceil(4)];
    let last = limbs.len().saturating_sub(1);
    for (i, &b) in bytes.iter().rev().enumerate() {
        limbs[last - i / 4] |= u32::from(b) << (8 * (i % 4));
    }
    let mut digits = Vec::with_capacity(bytes.len() * 2 + 6);
    let mut start = 0;
    loop {
        while limbs.get(start) == Some(&0) {
            start += 1;
        }
        if start == limbs.len() {
            break;
        }
        let mut rem = 0u64;
        for limb in &mut limbs[start..] {
            let acc = (rem << 32) | u64::from(*limb);
            *limb = (acc / SIX_DIGITS) as u32;
            rem = acc % SIX_DIGITS;
        }
        for _ in 0..6 {
            digits.push(BASE36[(rem % 36) as usize]);
            rem /= 36;
        }
    }
    // The last pass pads to six digits: drop those leading zeros.
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).expect("base36 digits are ASCII")
}

/// Parses lowercase base36 into a big-endian `N`-byte number; `None` on
/// a bad character or overflow.
pub(crate) fn from_base36<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    for c in s.bytes() {
        let mut carry = u32::from(match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            _ => return None,
        });
        for b in out.iter_mut().rev() {
            let acc = u32::from(*b) * 36 + carry;
            *b = acc as u8;
            carry = acc >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(out)
}

/// Fills `buf` from the system's secure random source.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    SystemRandom::new()
        .fill(buf)
        .expect("the system random source failed");
}

/// A new random object id: 25 lowercase base36 characters (about 128
/// bits), in the form of Docker's `identity.NewID` (which reads
/// crypto/rand; this, the thread's CSPRNG).
pub fn new_id() -> String {
    let mut p = [0u8; 17];
    // The thread's CSPRNG (ChaCha, seeded and reseeded from the system):
    // a system call per id was a tenth of creating an object.
    rand::Rng::fill_bytes(&mut rand::rng(), &mut p);
    // The high bit fixes the length of the base36 text, so no padding is
    // needed; the leading digit it forces is dropped.
    p[0] |= 0x80;
    let mut id = to_base36(&p);
    id.truncate(26);
    id.remove(0);
    id
}

/// A new node id; same form as [`new_id`].
pub fn new_node_id() -> String {
    new_id()
}

/// A node's private key (ECDSA P-256) and its certificate signing requests.
/// The key never leaves the node; only the CSR (public key plus a
/// signature) is sent to the CA.
pub struct NodeKey {
    key: KeyPair,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey([redacted])")
    }
}

impl NodeKey {
    /// Generates a fresh ECDSA P-256 key.
    pub fn generate() -> Result<NodeKey, IdentityError> {
        let key = KeyPair::generate().map_err(|e| IdentityError::Key(e.to_string()))?;
        Ok(NodeKey { key })
    }

    /// Reads a key saved with [`NodeKey::to_pem`] (PKCS#8 PEM).
    pub fn from_pem(pem: &str) -> Result<NodeKey, IdentityError> {
        let key = KeyPair::from_pem(pem)
            .map_err(|e| IdentityError::Key(format!("the stored node key cannot be read: {e}")))?;
        Ok(NodeKey { key })
    }

    /// The key as PKCS#8 PEM, for the node's state directory (mode 0600).
    pub fn to_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The key in the form rustls configs take.
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// A CSR (PEM) for this key. Its subject is only a hint: the CA
    /// ignores it and writes the node id, role and cluster id itself.
    pub fn csr_pem(&self) -> Result<String, IdentityError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "swarm-node");
        params
            .serialize_request(&self.key)
            .and_then(|csr| csr.pem())
            .map_err(|e| IdentityError::Key(format!("cannot encode the CSR: {e}")))
    }
}

impl NodeKey {
    /// Whether `cert_der` certifies this key (its subject public key is
    /// this key's public half).
    pub fn matches_cert(&self, cert_der: &[u8]) -> Result<bool, IdentityError> {
        let (_, cert) = X509Certificate::from_der(cert_der)
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        Ok(cert.public_key().subject_public_key.data.as_ref() == self.key.public_key_raw())
    }
}

/// What a renewal proof signs before the CSR: the proof is good for
/// nothing else a node key signs (TLS handshakes, CSRs).
const RENEWAL_CONTEXT: &[u8] = b"shoal node certificate renewal v1\0";

impl NodeKey {
    /// Proof that the holder of this key (the node's current one) asks
    /// for a certificate for `csr`: a manager forwarding the renewal to
    /// the leader passes it on, and cannot make one for another node.
    pub fn sign_renewal(&self, csr: &[u8]) -> Result<Vec<u8>, IdentityError> {
        use rcgen::SigningKey as _;
        self.key
            .sign(&[RENEWAL_CONTEXT, csr].concat())
            .map_err(|e| IdentityError::Key(format!("cannot sign the renewal: {e}")))
    }
}

/// Checks a [`NodeKey::sign_renewal`] proof: `proof` signs `csr` with the
/// key certified by `cert_der` (an ECDSA P-256 node certificate). The
/// certificate itself must be verified separately.
pub fn verify_renewal(cert_der: &[u8], csr: &[u8], proof: &[u8]) -> Result<(), IdentityError> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        cert.public_key().subject_public_key.data.as_ref(),
    );
    key.verify(&[RENEWAL_CONTEXT, csr].concat(), proof)
        .map_err(|_| IdentityError::Key("the renewal is not signed by the certified key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewal_proof_binds_the_csr_to_the_certified_key() {
        let key = NodeKey::generate().unwrap();
        let other = NodeKey::generate().unwrap();
        let params = CertificateParams::default();
        let cert = params.self_signed(&key.key).unwrap().der().to_vec();
        let csr = other.csr_pem().unwrap();
        let proof = key.sign_renewal(csr.as_bytes()).unwrap();
        verify_renewal(&cert, csr.as_bytes(), &proof).unwrap();
        // Another CSR, or a proof by another key, does not pass.
        let csr2 = NodeKey::generate().unwrap().csr_pem().unwrap();
        assert!(verify_renewal(&cert, csr2.as_bytes(), &proof).is_err());
        let forged = other.sign_renewal(csr.as_bytes()).unwrap();
        assert!(verify_renewal(&cert, csr.as_bytes(), &forged).is_err());
        assert!(verify_renewal(&cert, csr.as_bytes(), &[]).is_err());
    }

    fn cert_with_subject(fields: &[(DnType, &str)]) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for (ty, v) in fields {
            params.distinguished_name.push(ty.clone(), *v);
        }
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn ids_are_25_lowercase_base36_and_distinct() {
        let a = new_id();
        let b = new_node_id();
        for id in [&a, &b] {
            assert_eq!(id.len(), 25, "{id}");
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
            );
        }
        assert_ne!(a, b);
    }

    #[test]
    fn base36_round_trips() {
        assert_eq!(to_base36(&[0, 0]), "0");
        assert_eq!(to_base36(&[35]), "z");
        assert_eq!(to_base36(&[36]), "10");
        assert_eq!(to_base36(&[0xff; 16]), "f5lxx1zz5pnorynqglhzmsp33");
        let bytes = [7u8, 200, 3, 99, 0, 1, 250, 17];
        let text = to_base36(&bytes);
        assert_eq!(from_base36::<8>(&text), Some(bytes));
        assert_eq!(from_base36::<1>("73"), Some([255]));
        assert_eq!(from_base36::<1>("74"), None, "256 overflows one byte");
        assert_eq!(from_base36::<4>("AB"), None, "uppercase is refused");
        // Every length and limb boundary, leading zero bytes included, and
        // against a plain 128-bit conversion.
        for seed in 0u64..2000 {
            let mut bytes = [0u8; 17];
            rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
            let len = (seed % 18) as usize;
            bytes[..(seed % 5) as usize].fill(0);
            let text = to_base36(&bytes[..len]);
            let mut padded = [0u8; 17];
            padded[17 - len..].copy_from_slice(&bytes[..len]);
            assert_eq!(from_base36::<17>(&text), Some(padded), "{bytes:?}");
            assert!(text == "0" || !text.starts_with('0'), "{text}");
            if len <= 16 {
                let mut n = u128::from_be_bytes(padded[1..].try_into().unwrap());
                let mut plain = Vec::new();
                loop {
                    plain.push(BASE36[(n % 36) as usize]);
                    n /= 36;
                    if n == 0 {
                        break;
                    }
                }
                plain.reverse();
                assert_eq!(text.as_bytes(), plain, "{bytes:?}");
            }
        }
    }

    #[test]
    fn roles_map_to_docker_ous() {
        assert_eq!(NodeRole::Manager.as_ou(), "swarm-manager");
        assert_eq!(NodeRole::Worker.as_ou(), "swarm-worker");
        assert_eq!(NodeRole::from_ou("swarm-worker").unwrap(), NodeRole::Worker);
        assert_eq!("manager".parse::<NodeRole>().unwrap(), NodeRole::Manager);
        let err = NodeRole::from_ou("swarm-admin").unwrap_err().to_string();
        assert!(err.contains("unknown node role \"swarm-admin\""), "{err}");
    }

    #[test]
    fn identity_reads_cn_ou_o() {
        let der = cert_with_subject(&[
            (DnType::CommonName, "node1"),
            (DnType::OrganizationalUnitName, "swarm-manager"),
            (DnType::OrganizationName, "cluster1"),
        ]);
        let id = NodeIdentity::from_cert_der(&der).unwrap();
        assert_eq!(
            id,
            NodeIdentity {
                node_id: "node1".into(),
                role: NodeRole::Manager,
                cluster_id: "cluster1".into()
            }
        );
        assert_eq!(id.to_string(), "manager node1 of cluster cluster1");
    }

    #[test]
    fn identity_needs_every_field() {
        let der = cert_with_subject(&[
            (DnType::CommonName, "node1"),
            (DnType::OrganizationName, "cluster1"),
        ]);
        let err = NodeIdentity::from_cert_der(&der).unwrap_err().to_string();
        assert_eq!(
            err,
            "the node certificate's subject has no organizational unit (role)"
        );
        let err = NodeIdentity::from_cert_der(b"junk")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the node certificate cannot be parsed"),
            "{err}"
        );
    }

    #[test]
    fn node_key_round_trips_and_makes_a_csr() {
        let key = NodeKey::generate().unwrap();
        let pem = key.to_pem();
        assert!(pem.contains("BEGIN PRIVATE KEY"));
        let again = NodeKey::from_pem(&pem).unwrap();
        assert_eq!(again.to_pem(), pem);
        assert_eq!(format!("{key:?}"), "NodeKey([redacted])");
        let csr = key.csr_pem().unwrap();
        assert!(csr.contains("BEGIN CERTIFICATE REQUEST"));
        rcgen::CertificateSigningRequestParams::from_pem(&csr).unwrap();
        assert!(NodeKey::from_pem("nope").is_err());
    }
}
