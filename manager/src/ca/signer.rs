//! Which root signs, and which roots nodes should trust, given the cluster
//! object. Outside a rotation: the root signs and is the only one trusted.
//! During `swarm ca --rotate`: the new root signs, each certificate comes
//! with the new root cross-signed by the old one (so nodes that trust only
//! the old root still accept it), and nodes trust both roots until every
//! node holds a certificate from the new one.

use shoal_proto::objects::Cluster;

use super::{CaError, RootCa};

/// The CA that signs now.
#[derive(Debug)]
pub struct Signer {
    /// The signing root (the new one during a rotation).
    pub ca: RootCa,
    /// The new root cross-signed by the old one, during a rotation (PEM).
    pub cross_signed: Option<String>,
    /// The roots nodes should trust (PEM, current root first).
    pub bundle: String,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The roots nodes should trust, as PEM.
pub fn trust_bundle(cluster: &Cluster) -> String {
    let Some(root) = cluster.root_ca.as_ref() else {
        return String::new();
    };
    let mut bundle = text(&root.ca_cert);
    if let Some(rotation) = root.root_rotation.as_ref() {
        if !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str(&text(&rotation.ca_cert));
    }
    bundle
}

/// The signer for `cluster`.
pub fn signer(cluster: &Cluster) -> Result<Signer, CaError> {
    let root = cluster
        .root_ca
        .as_ref()
        .ok_or_else(|| CaError::BadIdentity("the cluster has no root CA".into()))?;
    let bundle = trust_bundle(cluster);
    match root.root_rotation.as_ref() {
        Some(rotation) => Ok(Signer {
            ca: RootCa::from_pem(&text(&rotation.ca_cert), &text(&rotation.ca_key))?,
            cross_signed: Some(text(&rotation.cross_signed_ca_cert)),
            bundle,
        }),
        None => Ok(Signer {
            ca: RootCa::from_pem(&text(&root.ca_cert), &text(&root.ca_key))?,
            cross_signed: None,
            bundle,
        }),
    }
}

impl Signer {
    /// A node's certificate chain: the leaf, plus the cross-signed new
    /// root during a rotation.
    pub fn chain(&self, leaf: String) -> String {
        match &self.cross_signed {
            Some(cross) => {
                let mut chain = leaf;
                if !chain.ends_with('\n') {
                    chain.push('\n');
                }
                chain.push_str(cross);
                chain
            }
            None => leaf,
        }
    }
}
