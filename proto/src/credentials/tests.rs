//! Saving and loading credentials, with a crash acted out after every step
//! of a save.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let mut bytes = [0u8; 8];
        crate::identity::random_bytes(&mut bytes);
        let dir = std::env::temp_dir().join(format!(
            "shoal-creds-{}",
            crate::identity::to_base36(&bytes)
        ));
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn certs(&self) -> PathBuf {
        self.0.join("certificates")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A root and a way to issue node credentials under it.
struct Ca {
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "swarm-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca { key, cert }
    }

    fn issue(&self, node: &str) -> NodeCredentials {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for (ty, v) in [
            (DnType::CommonName, node),
            (DnType::OrganizationalUnitName, "swarm-worker"),
            (DnType::OrganizationName, "cluster1"),
        ] {
            params.distinguished_name.push(ty, v);
        }
        let issuer = rcgen::Issuer::from_ca_cert_der(self.cert.der(), &self.key).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        NodeCredentials {
            key_pem: key.serialize_pem(),
            cert_pem: cert.pem(),
            roots_pem: self.cert.pem(),
        }
    }
}

fn same(a: &NodeCredentials, b: &NodeCredentials) -> bool {
    a.key_pem == b.key_pem && a.cert_pem == b.cert_pem && a.roots_pem == b.roots_pem
}

const STEPS: [Step; 8] = [
    Step::Cleaned,
    Step::Key,
    Step::Roots,
    Step::Cert,
    Step::Generation,
    Step::Link,
    Step::Switched,
    Step::Done,
];

#[test]
fn saves_and_loads_a_matching_set() {
    let scratch = Scratch::new();
    let dir = scratch.certs();
    assert!(NodeCredentials::load(&dir).unwrap().is_none());
    let creds = Ca::new().issue("node1");
    creds.save(&dir).unwrap();
    let loaded = NodeCredentials::load(&dir).unwrap().unwrap();
    assert!(same(&loaded, &creds));
    assert_eq!(
        fs::read_link(dir.join(CURRENT)).unwrap(),
        Path::new("gen-1")
    );
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("gen-1/node.key")), 0o600);
}

#[test]
fn a_crash_at_any_step_leaves_one_whole_set() {
    let ca = Ca::new();
    for step in STEPS {
        let scratch = Scratch::new();
        let dir = scratch.certs();
        let old = ca.issue("node1");
        let new = ca.issue("node1");
        old.save(&dir).unwrap();
        new.save_until(&dir, step).unwrap();
        // "Restart": load what is on disk.
        let loaded = NodeCredentials::load(&dir).unwrap().unwrap();
        let expect = if step >= Step::Switched { &new } else { &old };
        assert!(same(&loaded, expect), "crash after {step:?}");
        // The next save cleans up and switches.
        let next = ca.issue("node1");
        next.save(&dir).unwrap();
        assert!(same(&NodeCredentials::load(&dir).unwrap().unwrap(), &next));
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "after {step:?}: {names:?}");
        assert_eq!(names[0], CURRENT);
        assert!(names[1].starts_with(GEN_PREFIX), "{names:?}");
    }
}

/// Writes the layout nodes used before generations: the files directly
/// in `certificates/`.
fn save_flat(creds: &NodeCredentials, dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    for (name, text) in [
        (KEY, &creds.key_pem),
        (ROOTS, &creds.roots_pem),
        (CERT, &creds.cert_pem),
    ] {
        fs::write(dir.join(name), text).unwrap();
    }
}

#[test]
fn the_flat_layout_loads_and_moves_into_a_generation_on_save() {
    let ca = Ca::new();
    for step in STEPS {
        let scratch = Scratch::new();
        let dir = scratch.certs();
        let old = ca.issue("node1");
        save_flat(&old, &dir);
        // A leftover temp file of the old per-file writer.
        fs::write(dir.join(".node.key.tmp"), "partial").unwrap();
        assert!(same(&NodeCredentials::load(&dir).unwrap().unwrap(), &old));
        let new = ca.issue("node1");
        new.save_until(&dir, step).unwrap();
        let expect = if step >= Step::Switched { &new } else { &old };
        let loaded = NodeCredentials::load(&dir).unwrap().unwrap();
        assert!(same(&loaded, expect), "crash after {step:?}");
        if step == Step::Done {
            assert!(!dir.join(CERT).exists() && !dir.join(KEY).exists());
            assert!(!dir.join(".node.key.tmp").exists());
        }
    }
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused() {
    let scratch = Scratch::new();
    let dir = scratch.certs();
    let ca = Ca::new();
    let mut creds = ca.issue("node1");
    creds.key_pem = ca.issue("node1").key_pem;
    creds.save(&dir).unwrap();
    let err = NodeCredentials::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("gen-1/node.key") && err.contains("does not match the certificate"),
        "{err}"
    );
}

#[test]
fn damaged_files_are_named_not_panicked_on() {
    let ca = Ca::new();
    for (file, damage) in [
        (CERT, "truncate"),
        (CERT, "garbage"),
        (KEY, "truncate"),
        (KEY, "garbage"),
        (ROOTS, "garbage"),
        (KEY, "missing"),
    ] {
        let scratch = Scratch::new();
        let dir = scratch.certs();
        ca.issue("node1").save(&dir).unwrap();
        let path = dir.join("gen-1").join(file);
        match damage {
            "truncate" => {
                let text = fs::read(&path).unwrap();
                fs::write(&path, &text[..text.len() / 2]).unwrap();
            }
            "garbage" => fs::write(&path, b"\x00\xffnot pem at all").unwrap(),
            _ => fs::remove_file(&path).unwrap(),
        }
        let err = NodeCredentials::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&*path.to_string_lossy()),
            "{file} {damage}: {err}"
        );
    }
    // A `current` link naming something else.
    let scratch = Scratch::new();
    let dir = scratch.certs();
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join(CURRENT)).unwrap();
    let err = NodeCredentials::load(&dir).unwrap_err().to_string();
    assert!(err.contains("not a generation"), "{err}");
}
