//! The PKI end to end: a root CA issues node certificates from CSRs and
//! real TLS handshakes (over in-memory pipes) use the configs from
//! `shoal_proto::tls`, as nodes will on the cluster port.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use shoal_manager::ca::{DEFAULT_NODE_CERT_EXPIRY, JoinToken, JoinTokens, RootCa};
use shoal_proto::identity::{NodeIdentity, NodeKey, NodeRole, new_node_id};
use shoal_proto::tls::{
    ClientAuth, DenyList, bootstrap_client_config, certs_from_pem, client_config, key_from_pem,
    peer_identity, server_config,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const CLUSTER: &str = "cluster1";

/// A node as it would be after joining: identity, chain and key.
struct Node {
    id: NodeIdentity,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Issues a certificate for a fresh key through the CSR path; the chain
/// is the leaf, then `extra` (e.g. a cross-signed root), then the root.
fn node_with(ca: &RootCa, role: NodeRole, extra: &[CertificateDer<'static>]) -> Node {
    let key = NodeKey::generate().unwrap();
    let id = NodeIdentity {
        node_id: new_node_id(),
        role,
        cluster_id: CLUSTER.into(),
    };
    let pem = ca
        .issue(&key.csr_pem().unwrap(), &id, &[], DEFAULT_NODE_CERT_EXPIRY)
        .unwrap();
    let mut chain = certs_from_pem(&pem).unwrap();
    chain.extend(extra.iter().cloned());
    chain.push(ca.cert_der().clone());
    Node {
        id,
        chain,
        // As stored on disk and read back.
        key: key_from_pem(&key.to_pem()).unwrap(),
    }
}

fn node(ca: &RootCa, role: NodeRole) -> Node {
    node_with(ca, role, &[])
}

fn server(roots: &[&RootCa], node: &Node, deny: &DenyList, auth: ClientAuth) -> Arc<ServerConfig> {
    let roots: Vec<_> = roots.iter().map(|r| r.cert_der().clone()).collect();
    Arc::new(server_config(&roots, node.chain.clone(), node.key.clone_key(), deny, auth).unwrap())
}

fn client(roots: &[&RootCa], node: &Node) -> Arc<ClientConfig> {
    let roots: Vec<_> = roots.iter().map(|r| r.cert_der().clone()).collect();
    Arc::new(client_config(&roots, node.chain.clone(), node.key.clone_key()).unwrap())
}

/// What each side saw of one connection.
struct Outcome {
    /// The identity the server read from the client certificate.
    server: Result<Option<NodeIdentity>, String>,
    /// Whether the client completed the handshake and got the server's
    /// first bytes (TLS 1.3 clients learn of a refused certificate only
    /// when they read).
    client: Result<(), String>,
}

async fn connect(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Outcome {
    let (c, s) = tokio::io::duplex(16 * 1024);
    let server_side = async move {
        let mut tls = TlsAcceptor::from(server)
            .accept(s)
            .await
            .map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
        let id = peer_identity(conn.peer_certificates().unwrap_or_default());
        tls.write_all(b"ok").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok(id)
    };
    let client_side = async move {
        // Nodes dial managers by IP; the certificate names no address.
        let name = ServerName::try_from("10.0.0.1").unwrap();
        let mut tls = TlsConnector::from(client)
            .connect(name, c)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 2];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"ok");
        Ok(())
    };
    let both = async { tokio::join!(server_side, client_side) };
    let (server, client) = tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("handshake timed out");
    Outcome { server, client }
}

#[tokio::test]
async fn mutual_tls_shows_each_side_the_others_identity() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let manager = node(&ca, NodeRole::Manager);
    let worker = node(&ca, NodeRole::Worker);
    let deny = DenyList::new();
    let out = connect(
        server(&[&ca], &manager, &deny, ClientAuth::Required),
        client(&[&ca], &worker),
    )
    .await;
    assert_eq!(out.client, Ok(()));
    assert_eq!(out.server, Ok(Some(worker.id.clone())));
    assert_eq!(worker.id.role, NodeRole::Worker);
}

#[tokio::test]
async fn client_without_certificate_is_refused_unless_optional() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let manager = node(&ca, NodeRole::Manager);
    let deny = DenyList::new();
    let anonymous = Arc::new(bootstrap_client_config(ca.digest()).unwrap());
    let out = connect(
        server(&[&ca], &manager, &deny, ClientAuth::Required),
        anonymous.clone(),
    )
    .await;
    let err = out.server.unwrap_err();
    assert!(err.contains("peer sent no certificates"), "{err}");
    assert!(out.client.is_err());

    // The join path: allowed in, but with no identity to authorize.
    let out = connect(
        server(&[&ca], &manager, &deny, ClientAuth::Optional),
        anonymous,
    )
    .await;
    assert_eq!(out.client, Ok(()));
    assert_eq!(out.server, Ok(None));
}

#[tokio::test]
async fn client_certificate_from_another_root_is_refused() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let other = RootCa::generate(CLUSTER).unwrap();
    let manager = node(&ca, NodeRole::Manager);
    let intruder = node(&other, NodeRole::Manager);
    // The intruder trusts our root, so only the server's check stops it.
    for auth in [ClientAuth::Required, ClientAuth::Optional] {
        let out = connect(
            server(&[&ca], &manager, &DenyList::new(), auth),
            client(&[&ca], &intruder),
        )
        .await;
        let err = out.server.unwrap_err();
        assert!(err.contains("invalid peer certificate"), "{err}");
        assert!(out.client.is_err());
    }
}

#[tokio::test]
async fn denied_node_is_refused_from_the_next_handshake() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let manager = node(&ca, NodeRole::Manager);
    let worker = node(&ca, NodeRole::Worker);
    let deny = DenyList::new();
    let config = server(&[&ca], &manager, &deny, ClientAuth::Required);
    let client = client(&[&ca], &worker);
    assert!(connect(config.clone(), client.clone()).await.server.is_ok());

    deny.deny(worker.id.node_id.clone());
    let out = connect(config.clone(), client.clone()).await;
    let err = out.server.unwrap_err();
    assert!(err.contains("invalid peer certificate: Revoked"), "{err}");
    let err = out.client.unwrap_err();
    assert!(
        err.contains("CertificateRevoked"),
        "the removed node is told: {err}"
    );

    deny.allow(&worker.id.node_id);
    assert!(connect(config, client).await.server.is_ok());
}

#[tokio::test]
async fn clients_accept_only_managers() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let worker = node(&ca, NodeRole::Worker);
    let other_worker = node(&ca, NodeRole::Worker);
    let out = connect(
        server(&[&ca], &worker, &DenyList::new(), ClientAuth::Required),
        client(&[&ca], &other_worker),
    )
    .await;
    let err = out.client.unwrap_err();
    assert!(
        err.contains("certificate not valid for name \"swarm-manager\""),
        "{err}"
    );
}

#[tokio::test]
async fn bootstrap_pins_the_root_from_the_join_token() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let manager = node(&ca, NodeRole::Manager);
    let tokens = JoinTokens::generate(ca.digest());
    // The joining side has only the token text.
    let token: JoinToken = tokens.worker.to_string().parse().unwrap();
    let out = connect(
        server(&[&ca], &manager, &DenyList::new(), ClientAuth::Optional),
        Arc::new(bootstrap_client_config(token.root_digest()).unwrap()),
    )
    .await;
    assert_eq!(out.client, Ok(()));
    assert_eq!(
        tokens.role_for(&token.to_string()).unwrap(),
        NodeRole::Worker
    );
}

#[tokio::test]
async fn bootstrap_refuses_a_manager_with_another_root() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let impostor_ca = RootCa::generate(CLUSTER).unwrap();
    let impostor = node(&impostor_ca, NodeRole::Manager);
    let out = connect(
        server(
            &[&impostor_ca],
            &impostor,
            &DenyList::new(),
            ClientAuth::Optional,
        ),
        Arc::new(bootstrap_client_config(ca.digest()).unwrap()),
    )
    .await;
    let err = out.client.unwrap_err();
    assert!(
        err.contains(&format!(
            "the cluster CA presented by the manager ({}) does not match the CA digest in the \
             join token ({})",
            impostor_ca.digest(),
            ca.digest()
        )),
        "{err}"
    );
    assert!(err.contains("man-in-the-middle"), "{err}");
}

#[tokio::test]
async fn cross_signed_root_bridges_a_root_rotation() {
    let old = RootCa::generate(CLUSTER).unwrap();
    let new = RootCa::generate(CLUSTER).unwrap();
    let cross = certs_from_pem(&old.cross_sign(&new).unwrap()).unwrap();
    // Certificates from the new root, sent with the cross-signed one.
    let manager = node_with(&new, NodeRole::Manager, &cross);
    let worker = node_with(&new, NodeRole::Worker, &cross);
    let not_rotated = node(&old, NodeRole::Worker);
    let deny = DenyList::new();

    // A node still trusting only the old root accepts the new manager
    // (leaf <- cross-signed new root <- old root).
    let out = connect(
        server(&[&new, &old], &manager, &deny, ClientAuth::Required),
        client(&[&old], &not_rotated),
    )
    .await;
    assert_eq!(out.client, Ok(()));
    assert_eq!(out.server, Ok(Some(not_rotated.id.clone())));

    // A manager still trusting only the old root accepts the new worker.
    let old_manager = node(&old, NodeRole::Manager);
    let out = connect(
        server(&[&old], &old_manager, &deny, ClientAuth::Required),
        client(&[&old], &worker),
    )
    .await;
    assert_eq!(out.server, Ok(Some(worker.id.clone())));

    // Without the cross-signed certificate the old root cannot verify it.
    let bare = node(&new, NodeRole::Manager);
    let out = connect(
        server(&[&new, &old], &bare, &deny, ClientAuth::Required),
        client(&[&old], &not_rotated),
    )
    .await;
    assert!(out.client.is_err());
}
