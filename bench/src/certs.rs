//! Certificates for etcd over mutual TLS (`--etcd-tls`): a throwaway CA
//! and one certificate for 127.0.0.1 that every member serves, presents
//! to its peers and the benchmark's client presents to the members. Shoal
//! runs mutual TLS on every connection; this lets etcd be measured the
//! same way.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The files etcd reads and the PEM the client uses.
pub struct Certs {
    /// The CA certificate (file).
    pub ca_file: PathBuf,
    /// The member (and client) certificate (file).
    pub cert_file: PathBuf,
    /// Its key (file).
    pub key_file: PathBuf,
    /// The same three as PEM, for the client.
    pub ca_pem: String,
    /// Certificate PEM.
    pub cert_pem: String,
    /// Key PEM.
    pub key_pem: String,
}

/// Makes a CA and a certificate for 127.0.0.1, written into `dir`.
pub fn make(dir: &Path) -> anyhow::Result<Certs> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])?;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &issuer)?;

    let certs = Certs {
        ca_file: dir.join("ca.pem"),
        cert_file: dir.join("member.pem"),
        key_file: dir.join("member-key.pem"),
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    std::fs::write(&certs.ca_file, &certs.ca_pem)?;
    std::fs::write(&certs.cert_file, &certs.cert_pem)?;
    std::fs::write(&certs.key_file, &certs.key_pem)?;
    Ok(certs)
}
