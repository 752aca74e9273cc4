//! Manager authority follows the store, seen from outside: real managers
//! on loopback, real certificates of the cluster, real gRPC. A demoted
//! manager's certificate still says manager for 90 days; it must open
//! nothing a manager's would. A removed node's open streams end.
//! (Raft and membership: `raft_peers.rs`.)

mod common;

use std::time::Duration;

use common::{Port, channel, id_of, next, retrying};
use protobuf::Message as _;
use shoal_proto::ca::IssueNodeCertificateRequest;
use shoal_proto::ca::node_ca_client::NodeCaClient;
use shoal_proto::control::control_client::ControlClient;
use shoal_proto::control::{GetNodeRequest, RemoveNodeRequest, WatchRequest};
use shoal_proto::dispatcher::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::{AssignmentsRequest, SessionRequest};
use shoal_proto::identity::{NodeKey, NodeRole};
use shoal_proto::raft::RaftMessage;
use shoal_proto::raft::raft_client::RaftClient;
use tonic::Code;
use tonic::metadata::MetadataValue;

fn heartbeat(from: u64, to: u64) -> RaftMessage {
    let mut m = raft::prelude::Message::default();
    m.set_msg_type(raft::prelude::MessageType::MsgHeartbeat);
    m.from = from;
    m.to = to;
    m.term = 1;
    RaftMessage {
        messages: vec![m.write_to_bytes().unwrap()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_manager_loses_the_control_api_raft_and_its_watch_at_once() {
    let port = Port::start().await;
    let m = port.join(NodeRole::Manager).await;
    let id = id_of(&m);
    let mut control = ControlClient::new(channel(port.addr(), &m));
    let get = GetNodeRequest {
        node_id: id.clone(),
    };
    control
        .get_node(get.clone())
        .await
        .expect("a manager reads");
    let mut watch = control
        .watch(WatchRequest::default())
        .await
        .expect("a manager watches")
        .into_inner();

    port.demote(&id).await;

    // Its certificate still says manager; the store does not.
    assert_eq!(m.identity().unwrap().role, NodeRole::Manager);
    let err = control.get_node(get).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("demoted"), "{err:?}");
    let err = RaftClient::new(channel(port.addr(), &m))
        // It is no raft member: speaking as one (the founder) is refused.
        .pipe_raft_messages(tokio_stream::iter([heartbeat(
            port.founder.raft_id,
            port.founder.raft_id,
        )]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // The watch it opened as a manager ends too (the demotion's own event
    // may come first).
    let ended = loop {
        match next(&mut watch).await {
            Some(Ok(_)) => continue,
            other => break other,
        }
    };
    let err = ended.expect("an error, not a quiet end").unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_store_does_not_know_opens_nothing() {
    let port = Port::start().await;
    // Signed by the cluster's root, for a node id the store never had.
    let stranger = port.mint("strangerxxxxxxxxxxxxxxxxx", NodeRole::Manager);
    let err = ControlClient::new(channel(port.addr(), &stranger))
        .get_node(GetNodeRequest {
            node_id: port.founder.node_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("not part of the cluster"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_s_open_streams_end() {
    let port = Port::start().await;
    let w = port.join(NodeRole::Worker).await;
    let mut dispatcher = DispatcherClient::new(channel(port.addr(), &w));
    let mut session = dispatcher
        .session(SessionRequest::default())
        .await
        .expect("a session")
        .into_inner();
    let first = next(&mut session).await.unwrap().unwrap();
    let mut assignments = dispatcher
        .assignments(AssignmentsRequest {
            session_id: first.session_id,
        })
        .await
        .expect("assignments")
        .into_inner();
    next(&mut assignments).await.unwrap().unwrap();

    ControlClient::new(channel(port.addr(), &port.founder.creds))
        .remove_node(RemoveNodeRequest {
            node_id: id_of(&w),
            force: true,
        })
        .await
        .expect("node rm --force");

    let session_end = next(&mut session).await;
    let assignments_end = next(&mut assignments).await;
    assert!(
        matches!(session_end, Some(Err(_))),
        "a removed node's session still works: {session_end:?}"
    );
    assert!(
        matches!(assignments_end, Some(Err(_))),
        "a removed node's assignments still come: {assignments_end:?}"
    );
    // And nothing new opens.
    let again = dispatcher.session(SessionRequest::default()).await;
    assert!(again.is_err(), "a removed node opened a new session");
}

/// A renewal request for a fresh key, signed (or not) by `signer`.
fn renewal(signer: Option<&NodeKey>) -> (NodeKey, IssueNodeCertificateRequest) {
    let key = NodeKey::generate().unwrap();
    let csr = key.csr_pem().unwrap();
    let proof = signer.map_or(Vec::new(), |s| s.sign_renewal(csr.as_bytes()).unwrap());
    (
        key,
        IssueNodeCertificateRequest {
            csr: csr.into_bytes(),
            proof,
            ..Default::default()
        },
    )
}

fn issued_to(certificate: &str) -> String {
    let der = shoal_proto::tls::certs_from_pem(certificate).unwrap();
    shoal_proto::identity::NodeIdentity::from_cert_der(&der[0])
        .unwrap()
        .node_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_cannot_renew_for_another_node() {
    let port = Port::start().await;
    let m = port.join(NodeRole::Manager).await;
    let w = port.join(NodeRole::Worker).await;
    let m_key = NodeKey::from_pem(&m.key_pem).unwrap();
    let w_cert = shoal_proto::tls::certs_from_pem(&w.cert_pem).unwrap()[0].to_vec();
    let mut ca = NodeCaClient::new(channel(port.addr(), &m));

    // The old forwarding header named the node: it names nobody now, and
    // the renewal is the caller's own.
    let issued = retrying(|| {
        let (_, request) = renewal(None);
        let mut request = tonic::Request::new(request);
        request
            .metadata_mut()
            .insert("shoal-forwarded-renewal", id_of(&w).parse().unwrap());
        let mut ca = ca.clone();
        async move { ca.issue_node_certificate(request).await }
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(issued_to(&issued.certificate), id_of(&m));

    // Forwarded "for" the worker with its (public) certificate: refused
    // without the worker's signature, and with the manager's own.
    for signer in [None, Some(&m_key)] {
        let (_, request) = renewal(signer);
        let mut request = tonic::Request::new(request);
        request.metadata_mut().insert_bin(
            "shoal-forwarded-cert-bin",
            MetadataValue::from_bytes(&w_cert),
        );
        let err = ca.issue_node_certificate(request).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert!(
            err.message().contains("not signed by that node's key"),
            "{err:?}"
        );
    }

    // A worker cannot forward at all, even with a proper proof.
    let w_key = NodeKey::from_pem(&w.key_pem).unwrap();
    let (_, request) = renewal(Some(&w_key));
    let mut request = tonic::Request::new(request);
    request.metadata_mut().insert_bin(
        "shoal-forwarded-cert-bin",
        MetadataValue::from_bytes(&w_cert),
    );
    let err = NodeCaClient::new(channel(port.addr(), &w))
        .issue_node_certificate(request)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // Once demoted, the manager cannot pass on even a proper renewal.
    port.demote(&id_of(&m)).await;
    let (_, request) = renewal(Some(&w_key));
    let mut request = tonic::Request::new(request);
    request.metadata_mut().insert_bin(
        "shoal-forwarded-cert-bin",
        MetadataValue::from_bytes(&w_cert),
    );
    let err = ca.issue_node_certificate(request).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("demoted"), "{err:?}");
    // Its own renewal still works: it gets its worker certificate.
    let renew = retrying(|| {
        let (mut ca, request) = (ca.clone(), renewal(None).1);
        async move { ca.issue_node_certificate(request).await }
    });
    let issued = tokio::time::timeout(Duration::from_secs(10), renew)
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    let renewed = shoal_proto::tls::certs_from_pem(&issued.certificate).unwrap();
    let renewed = shoal_proto::identity::NodeIdentity::from_cert_der(&renewed[0]).unwrap();
    assert_eq!(
        (renewed.node_id, renewed.role),
        (id_of(&m), NodeRole::Worker)
    );
}
