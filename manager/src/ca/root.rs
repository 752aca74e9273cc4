//! The cluster's root CA: the one key every node certificate chains to.
//!
//! Shaped after Docker's CA so certificates read the same way: the root is
//! a self-signed ECDSA P-256 CA named `CN=swarm-ca` (plus `O=<cluster id>`)
//! valid for 20 years; node certificates carry CN = node id, OU = role and
//! O = cluster id, written by the CA from what the cluster store says, never
//! from the CSR, whose only trusted content is its (self-signed) public key.
//! Every node certificate is good for both TLS client and server, because
//! every node is both. The DNS SANs are the node id and the role, as in
//! swarmkit: the `swarm-manager` name is what clients verify (see
//! `shoal_proto::tls`). Root rotation cross-signs the new root with the old
//! key so nodes that only trust the old root accept the new chain.
//!
//! The private key is held only here; `Debug` shows the digest alone.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use shoal_proto::identity::NodeIdentity;
use shoal_proto::token::CaDigest;
use time::OffsetDateTime;
use x509_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Name;

/// The root CA's common name, as Docker's.
pub const ROOT_CN: &str = "swarm-ca";
/// How long a new root is valid.
pub const ROOT_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Docker's default node certificate lifetime.
pub const DEFAULT_NODE_CERT_EXPIRY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Certificates start this long in the past to absorb clock skew.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Why the CA could not load its root or issue a certificate.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The CSR cannot be parsed or uses something unsupported.
    #[error("the certificate signing request is invalid: {0}")]
    BadCsr(String),
    /// The CSR is not signed by the key it carries.
    #[error("the certificate signing request's signature does not verify")]
    CsrSignature,
    /// The stored root certificate is unusable.
    #[error("the root CA certificate is invalid: {0}")]
    BadRoot(String),
    /// The stored root key cannot be read (its content is never shown).
    #[error("the root CA key cannot be read")]
    BadKey,
    /// The stored key is not the root certificate's key.
    #[error("the root CA key does not match the root CA certificate")]
    KeyMismatch,
    /// The identity cannot be written into a certificate.
    #[error("invalid node identity for a certificate: {0}")]
    BadIdentity(String),
    /// Signing failed.
    #[error("cannot sign the certificate: {0}")]
    Sign(String),
}

/// The cluster's root CA certificate and key.
pub struct RootCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: KeyPair,
    digest: CaDigest,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCa")
            .field("digest", &self.digest)
            .field("not_after", &self.not_after)
            .field("key", &"[redacted]")
            .finish()
    }
}

fn sign_err(e: rcgen::Error) -> CaError {
    CaError::Sign(e.to_string())
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source failed");
    bytes[0] &= 0x7f; // positive, as DER integers must be
    bytes[0] |= 0x01; // never zero-length after minimal encoding
    SerialNumber::from_slice(&bytes)
}

fn later(t: OffsetDateTime, d: Duration) -> Result<OffsetDateTime, CaError> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
        .ok_or_else(|| CaError::Sign(format!("validity of {d:?} is too long")))
}

fn root_key_usages() -> Vec<KeyUsagePurpose> {
    vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ]
}

/// Rebuilds an X.509 name for rcgen, keeping each value's string type so
/// the encoded name matches byte for byte (chain building compares bytes).
fn dn_from_x509(name: &X509Name<'_>) -> Result<DistinguishedName, CaError> {
    let mut dn = DistinguishedName::new();
    for attr in name.iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| CaError::BadRoot("unreadable name attribute".into()))?
            .collect();
        let text = attr
            .as_str()
            .map_err(|e| CaError::BadRoot(format!("unreadable name attribute: {e}")))?;
        let value = match attr.attr_value().tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_string()),
            Tag::PrintableString => DnValue::PrintableString(text.try_into().map_err(sign_err)?),
            t => {
                return Err(CaError::BadRoot(format!(
                    "unsupported name string type {t}"
                )));
            }
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, CaError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| CaError::BadRoot(e.to_string()))
}

fn to_datetime(t: x509_parser::time::ASN1Time) -> Result<OffsetDateTime, CaError> {
    OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| CaError::BadRoot(e.to_string()))
}

impl RootCa {
    /// Creates a new root CA for `cluster_id`.
    pub fn generate(cluster_id: &str) -> Result<RootCa, CaError> {
        let key = KeyPair::generate().map_err(sign_err)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, ROOT_CN);
        if !cluster_id.is_empty() {
            params
                .distinguished_name
                .push(DnType::OrganizationName, cluster_id);
        }
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = root_key_usages();
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = later(now, ROOT_VALIDITY)?;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(sign_err)?;
        RootCa::from_parts(cert.der().clone(), key)
    }

    /// Loads a root saved with [`RootCa::cert_pem`] and [`RootCa::key_pem`].
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<RootCa, CaError> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| CaError::BadRoot(e.to_string()))?;
        let key = KeyPair::from_pem(key_pem).map_err(|_| CaError::BadKey)?;
        RootCa::from_parts(der, key)
    }

    fn from_parts(cert_der: CertificateDer<'static>, key: KeyPair) -> Result<RootCa, CaError> {
        let cert = parse_cert(&cert_der)?;
        if !cert.is_ca() {
            return Err(CaError::BadRoot("it is not a CA certificate".into()));
        }
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(CaError::KeyMismatch);
        }
        let not_before = to_datetime(cert.validity().not_before)?;
        let not_after = to_datetime(cert.validity().not_after)?;
        let pem = pem::Pem::new("CERTIFICATE", cert_der.to_vec());
        let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        Ok(RootCa {
            cert_pem: pem::encode_config(&pem, lf),
            digest: CaDigest::of_der(&cert_der),
            cert_der,
            key,
            not_before,
            not_after,
        })
    }

    /// The root certificate (PEM); public.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The root certificate (DER); public.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The root's private key (PKCS#8 PEM). Secret: seal it before it is
    /// stored and never log it.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// `sha256:<hex>` of the DER certificate, as Docker shows it and join
    /// tokens pin it.
    pub fn digest(&self) -> CaDigest {
        self.digest
    }

    /// When the root expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Issues a certificate (PEM) for the key in `csr_pem`, after checking
    /// the CSR's self-signature. The subject the CSR asks for is ignored:
    /// CN, OU and O come from `identity`; the DNS SANs are the node id and
    /// the role's OU, plus `ip_sans`. The certificate never outlives the root.
    pub fn issue(
        &self,
        csr_pem: &str,
        identity: &NodeIdentity,
        ip_sans: &[IpAddr],
        expiry: Duration,
    ) -> Result<String, CaError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| match e {
            rcgen::Error::InvalidCertificationRequestSignature => CaError::CsrSignature,
            other => CaError::BadCsr(other.to_string()),
        })?;
        let id_err = |what: &str| CaError::BadIdentity(what.to_string());
        if identity.node_id.is_empty() || identity.cluster_id.is_empty() {
            return Err(id_err("the node id and cluster id must not be empty"));
        }
        if rustls::pki_types::DnsName::try_from(identity.node_id.as_str()).is_err() {
            return Err(id_err("the node id must be a valid DNS name"));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let dn = &mut params.distinguished_name;
        dn.push(DnType::CommonName, identity.node_id.as_str());
        dn.push(DnType::OrganizationalUnitName, identity.role.as_ou());
        dn.push(DnType::OrganizationName, identity.cluster_id.as_str());
        for name in [identity.node_id.as_str(), identity.role.as_ou()] {
            let dns = name
                .to_string()
                .try_into()
                .map_err(|_| id_err("the node id must be a valid DNS name"))?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        params
            .subject_alt_names
            .extend(ip_sans.iter().copied().map(SanType::IpAddress));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = (now - BACKDATE).max(self.not_before);
        params.not_after = later(now, expiry)?.min(self.not_after);
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key).map_err(sign_err)?;
        let cert = params
            .signed_by(&csr.public_key, &issuer)
            .map_err(sign_err)?;
        Ok(cert.pem())
    }

    /// Cross-signs `new` (root rotation): a CA certificate with the new
    /// root's subject and key, issued by this root. Nodes that trust only
    /// this root accept chains `leaf <- cross-signed <- this root` during
    /// the transition, as swarmkit does.
    pub fn cross_sign(&self, new: &RootCa) -> Result<String, CaError> {
        let new_cert = parse_cert(&new.cert_der)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn_from_x509(new_cert.subject())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = root_key_usages();
        params.not_before = new.not_before;
        params.not_after = new.not_after;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key).map_err(sign_err)?;
        let cert = params.signed_by(&new.key, &issuer).map_err(sign_err)?;
        Ok(cert.pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::identity::{NodeKey, NodeRole};
    use x509_parser::extensions::GeneralName;

    fn identity(role: NodeRole) -> NodeIdentity {
        NodeIdentity {
            node_id: shoal_proto::identity::new_node_id(),
            role,
            cluster_id: "cluster1".into(),
        }
    }

    fn der_of(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn root_is_a_long_lived_p256_ca_named_like_dockers() {
        let ca = RootCa::generate("cluster1").unwrap();
        let cert = parse_cert(ca.cert_der()).unwrap();
        assert!(cert.is_ca());
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "swarm-ca");
        assert_eq!(cert.issuer(), cert.subject());
        let years = (ca.not_after() - OffsetDateTime::now_utc()).whole_days() / 365;
        assert!((19..=20).contains(&years), "{years}");
        assert_eq!(
            cert.public_key().algorithm.algorithm,
            x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        );
        assert_eq!(ca.digest(), CaDigest::of_der(ca.cert_der()));
        assert!(ca.digest().to_string().starts_with("sha256:"));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let ca = RootCa::generate("cluster1").unwrap();
        let dbg = format!("{ca:?}");
        let key = ca.key_pem();
        let body = key.lines().nth(1).unwrap();
        assert!(!dbg.contains(body), "{dbg}");
        assert!(dbg.contains("[redacted]") && dbg.contains("sha256:"));
    }

    #[test]
    fn root_round_trips_through_pem() {
        let ca = RootCa::generate("cluster1").unwrap();
        let again = RootCa::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(again.digest(), ca.digest());
        assert_eq!(again.cert_pem(), ca.cert_pem());
        let other = RootCa::generate("cluster1").unwrap();
        let err = RootCa::from_pem(ca.cert_pem(), &other.key_pem()).unwrap_err();
        assert!(matches!(err, CaError::KeyMismatch), "{err}");
        let err = RootCa::from_pem(ca.cert_pem(), "not a key").unwrap_err();
        assert_eq!(err.to_string(), "the root CA key cannot be read");
        let err = RootCa::from_pem("junk", &ca.key_pem()).unwrap_err();
        assert!(matches!(err, CaError::BadRoot(_)), "{err}");
    }

    #[test]
    fn issued_certs_carry_the_identity_and_usages() {
        let ca = RootCa::generate("cluster1").unwrap();
        for role in [NodeRole::Manager, NodeRole::Worker] {
            let id = identity(role);
            let csr = NodeKey::generate().unwrap().csr_pem().unwrap();
            let ip: IpAddr = "10.0.0.7".parse().unwrap();
            let pem = ca
                .issue(&csr, &id, &[ip], DEFAULT_NODE_CERT_EXPIRY)
                .unwrap();
            let der = der_of(&pem);
            assert_eq!(NodeIdentity::from_cert_der(&der).unwrap(), id);
            let cert = parse_cert(&der).unwrap();
            assert!(!cert.is_ca());
            assert_eq!(cert.issuer(), parse_cert(ca.cert_der()).unwrap().subject());
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && eku.client_auth);
            let ku = cert.key_usage().unwrap().unwrap().value;
            assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
            let sans = &cert.subject_alternative_name().unwrap().unwrap().value;
            let names = &sans.general_names;
            assert!(names.contains(&GeneralName::DNSName(&id.node_id)));
            assert!(names.contains(&GeneralName::DNSName(role.as_ou())));
            assert!(names.contains(&GeneralName::IPAddress(&[10, 0, 0, 7])));
            let days = (to_datetime(cert.validity().not_after).unwrap()
                - OffsetDateTime::now_utc())
            .whole_days();
            assert!((89..=90).contains(&days), "{days}");
        }
    }

    #[test]
    fn csr_subject_is_ignored() {
        let ca = RootCa::generate("cluster1").unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "evil");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "swarm-manager");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let id = identity(NodeRole::Worker);
        let der = der_of(&ca.issue(&csr, &id, &[], DEFAULT_NODE_CERT_EXPIRY).unwrap());
        assert_eq!(NodeIdentity::from_cert_der(&der).unwrap(), id);
        let cert = parse_cert(&der).unwrap();
        assert!(!cert.is_ca(), "a CSR cannot ask to be a CA");
        let sans = &cert.subject_alternative_name().unwrap().unwrap().value;
        assert!(
            !sans
                .general_names
                .contains(&GeneralName::DNSName("evil.example"))
        );
        // The certificate is for the CSR's key.
        assert_eq!(
            cert.public_key().raw,
            key.subject_public_key_info().as_slice()
        );
    }

    #[test]
    fn forged_csr_is_refused() {
        let ca = RootCa::generate("cluster1").unwrap();
        let csr = NodeKey::generate().unwrap().csr_pem().unwrap();
        let mut der = pem::parse(&csr).unwrap().into_contents();
        let last = der.len() - 1;
        der[last] ^= 0x01; // corrupt the signature
        let forged = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
        let id = identity(NodeRole::Worker);
        let err = ca
            .issue(&forged, &id, &[], DEFAULT_NODE_CERT_EXPIRY)
            .unwrap_err();
        assert!(matches!(err, CaError::CsrSignature), "{err}");
        let err = ca
            .issue("junk", &id, &[], DEFAULT_NODE_CERT_EXPIRY)
            .unwrap_err();
        assert!(matches!(err, CaError::BadCsr(_)), "{err}");
    }

    #[test]
    fn bad_identities_and_expiries_are_refused() {
        let ca = RootCa::generate("cluster1").unwrap();
        let csr = NodeKey::generate().unwrap().csr_pem().unwrap();
        let mut id = identity(NodeRole::Worker);
        id.node_id = "not a dns name!".into();
        let err = ca
            .issue(&csr, &id, &[], DEFAULT_NODE_CERT_EXPIRY)
            .unwrap_err();
        assert!(matches!(err, CaError::BadIdentity(_)), "{err}");
        let id = identity(NodeRole::Worker);
        let err = ca.issue(&csr, &id, &[], Duration::MAX).unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
        // A lifetime past the root's is cut to the root's.
        let long = Duration::from_secs(30 * 365 * 24 * 3600);
        let der = der_of(&ca.issue(&csr, &id, &[], long).unwrap());
        let not_after = to_datetime(parse_cert(&der).unwrap().validity().not_after).unwrap();
        assert_eq!(not_after, ca.not_after());
    }

    #[test]
    fn cross_signed_root_has_the_new_subject_and_key_under_the_old_issuer() {
        let old = RootCa::generate("cluster1").unwrap();
        let new = RootCa::generate("cluster1").unwrap();
        let der = der_of(&old.cross_sign(&new).unwrap());
        let cross = parse_cert(&der).unwrap();
        let new_cert = parse_cert(new.cert_der()).unwrap();
        let old_cert = parse_cert(old.cert_der()).unwrap();
        assert!(cross.is_ca());
        assert_eq!(cross.subject().as_raw(), new_cert.subject().as_raw());
        assert_eq!(cross.public_key().raw, new_cert.public_key().raw);
        assert_eq!(cross.issuer().as_raw(), old_cert.subject().as_raw());
        assert!(cross.verify_signature(Some(old_cert.public_key())).is_ok());
    }
}
