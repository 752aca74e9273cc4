//! Raft and its membership, attacked with real certificates of the
//! cluster: two real managers on loopback, and crafted messages sent to
//! their Raft service. A message counts only from the member whose
//! certificate sends it, only of the kinds members send each other, and
//! nothing a peer sends stops a member. A manager joining through a
//! follower is recorded as itself; `Leave` removes only the caller.

mod common;

use std::time::Duration;

use common::{Port, channel, eventually, id_of, retrying};
use protobuf::Message as _;
use raft::prelude::{Message, MessageType};
use shoal_manager::context::CommitError;
use shoal_proto::identity::NodeRole;
use shoal_proto::objects::{Annotations, Secret, SecretSpec};
use shoal_proto::raft::raft_client::RaftClient;
use shoal_proto::raft::raft_membership_client::RaftMembershipClient;
use shoal_proto::raft::{JoinRequest, LeaveRequest, RaftMember, RaftMessage};
use tokio::sync::mpsc;
use tonic::Code;

fn message(
    kind: MessageType,
    from: u64,
    to: u64,
    term: u64,
    f: impl FnOnce(&mut Message),
) -> Vec<u8> {
    let mut m = Message::default();
    m.set_msg_type(kind);
    m.from = from;
    m.to = to;
    m.term = term;
    f(&mut m);
    m.write_to_bytes().unwrap()
}

/// Sends one batch down a fresh pipe and closes it: the service's verdict.
async fn pipe(
    addr: &str,
    creds: &shoal_proto::credentials::NodeCredentials,
    messages: Vec<Vec<u8>>,
) -> Result<(), tonic::Status> {
    RaftClient::new(channel(addr, creds))
        .pipe_raft_messages(tokio_stream::iter([RaftMessage { messages }]))
        .await
        .map(|_| ())
}

/// A write through `ctx` succeeds: the member serves.
async fn writes(ctx: &shoal_manager::context::ManagerContext, name: &str) {
    let secret = Secret {
        id: shoal_proto::identity::new_id(),
        spec: Some(SecretSpec {
            annotations: Some(Annotations {
                name: name.into(),
                labels: Default::default(),
            }),
            data: b"x".to_vec(),
        }),
        ..Default::default()
    };
    tokio::time::timeout(
        Duration::from_secs(10),
        ctx.update(|tx| Ok::<_, CommitError>(tx.create(secret)?)),
    )
    .await
    .expect("a write within 10 s")
    .expect("the write commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_raft_messages_are_refused_and_members_keep_serving() {
    let mut port = Port::start().await;
    let leader_addr = port.addr().to_string();
    let i = port.add_manager(&leader_addr).await;
    let (m1, m2) = (&port.founder, &port.members[i]);
    let leader = m1.manager.context().clone();
    let follower = m2.manager.context().clone();
    let term = leader.raft.status().term;

    // A manager Raft does not know yet may speak for an id nobody has (a
    // lagging member must hear a newer leader), never for a member's.
    let outsider = port.join(NodeRole::Manager).await;
    let err = pipe(
        &m1.addr,
        &outsider,
        vec![message(
            MessageType::MsgHeartbeat,
            m2.raft_id,
            m1.raft_id,
            term,
            |_| {},
        )],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("sent with node"), "{err:?}");

    // A member speaking as another member (the leader, to the follower).
    let err = pipe(
        &m2.addr,
        &m2.creds,
        vec![message(
            MessageType::MsgHeartbeat,
            m1.raft_id,
            m2.raft_id,
            term,
            |_| {},
        )],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains(&format!("{:x}", m1.raft_id)),
        "{err:?}"
    );
    let err = pipe(
        &m1.addr,
        &m2.creds,
        vec![message(
            MessageType::MsgHeartbeat,
            m1.raft_id,
            m1.raft_id,
            term,
            |_| {},
        )],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // Kinds no member sends another: an empty proposal would be raft-rs's
    // `fatal!` on the leader; a filled one would land in its log.
    for kind in [
        MessageType::MsgPropose,
        MessageType::MsgReadIndex,
        MessageType::MsgTransferLeader,
        MessageType::MsgHup,
        MessageType::MsgBeat,
        MessageType::MsgUnreachable,
        MessageType::MsgSnapStatus,
        MessageType::MsgCheckQuorum,
    ] {
        let err = pipe(
            &m1.addr,
            &m2.creds,
            vec![message(kind, m2.raft_id, m1.raft_id, term, |_| {})],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{kind:?}: {err:?}");
    }

    // From the leader's own certificate, messages raft-rs would panic on:
    // a heartbeat committing past the follower's log, an append anchored
    // past it. The service passes them (they are the leader's to send);
    // the follower's node drops them and runs on.
    pipe(
        &m2.addr,
        &m1.creds,
        vec![
            message(
                MessageType::MsgHeartbeat,
                m1.raft_id,
                m2.raft_id,
                term,
                |m| m.commit = u64::MAX,
            ),
            message(MessageType::MsgAppend, m1.raft_id, m2.raft_id, term, |m| {
                m.index = 1 << 40;
                m.entries = vec![raft::prelude::Entry {
                    index: (1 << 40) + 1,
                    term,
                    ..Default::default()
                }]
                .into();
            }),
        ],
    )
    .await
    .expect("the leader's certificate may send these kinds");

    writes(&leader, "after-crafted-messages").await;
    eventually("the follower applies it", || {
        follower.store.view(|t| t.all::<Secret>().count()) == 1
    })
    .await;
    assert!(leader.raft.status().is_leader());
    assert_eq!(follower.raft.status().leader, m1.raft_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_is_by_certificate_and_demotion_ends_raft_streams() {
    let mut port = Port::start().await;
    let leader_addr = port.addr().to_string();
    let i = port.add_manager(&leader_addr).await;
    let leader = port.founder.manager.context().clone();
    let (m1_id, m1_raft) = (port.founder.node_id.clone(), port.founder.raft_id);
    let m2 = &port.members[i];
    let (m2_addr, m2_creds, m2_raft) = (m2.addr.clone(), m2.creds.clone(), m2.raft_id);

    // A manager joining through the follower is recorded as itself.
    let joiner = port.join(NodeRole::Manager).await;
    let joined = RaftMembershipClient::new(channel(&m2_addr, &joiner))
        .join(JoinRequest {
            addr: "127.0.0.1:9".into(),
        })
        .await
        .expect("join through a follower")
        .into_inner();
    let recorded = settled(&leader, |s| s.members.get(&joined.raft_id).cloned()).await;
    assert_eq!(recorded.map(|m| m.node_id), Some(id_of(&joiner)));

    // Leave names another node's member: refused, whoever forwards it.
    for via in [&leader_addr, &m2_addr] {
        let err = RaftMembershipClient::new(channel(via, &joiner))
            .leave(LeaveRequest {
                node: Some(RaftMember {
                    raft_id: m1_raft,
                    node_id: m1_id.clone(),
                    addr: String::new(),
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    assert!(leader.raft.status().members.contains_key(&m1_raft));
    // Its own member, through the follower: gone.
    RaftMembershipClient::new(channel(&m2_addr, &joiner))
        .leave(LeaveRequest { node: None })
        .await
        .expect("leave through a follower");
    let gone = settled(&leader, |s| {
        (!s.members.contains_key(&joined.raft_id)).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the joiner's member is removed");

    // A Raft stream the follower opened as a manager ends when it is
    // demoted, and no new one opens.
    let (tx, rx) = mpsc::channel(1);
    let mut client = RaftClient::new(channel(&leader_addr, &m2_creds));
    let open = tokio::spawn(async move {
        client
            .pipe_raft_messages(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(RaftMessage { messages: vec![] }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!open.is_finished());
    port.demote(&id_of(&m2_creds)).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), open)
        .await
        .expect("the stream ends")
        .unwrap()
        .unwrap_err();
    assert_eq!(ended.code(), Code::PermissionDenied, "{ended:?}");
    let err = pipe(
        &leader_addr,
        &m2_creds,
        vec![message(
            MessageType::MsgHeartbeatResponse,
            m2_raft,
            m1_raft,
            1,
            |_| {},
        )],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    drop(tx);
    writes(&leader, "after-demotion").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_forwarded_by_a_follower_is_the_node_s_own() {
    let mut port = Port::start().await;
    let leader_addr = port.addr().to_string();
    let i = port.add_manager(&leader_addr).await;
    let w = port.join(NodeRole::Worker).await;
    let key = shoal_proto::identity::NodeKey::generate().unwrap();
    let csr = key.csr_pem().unwrap();
    let proof = shoal_proto::identity::NodeKey::from_pem(&w.key_pem)
        .unwrap()
        .sign_renewal(csr.as_bytes())
        .unwrap();
    let ca = shoal_proto::ca::node_ca_client::NodeCaClient::new(channel(&port.members[i].addr, &w));
    let request = shoal_proto::ca::IssueNodeCertificateRequest {
        csr: csr.into_bytes(),
        proof,
        ..Default::default()
    };
    let issued = retrying(|| {
        let (mut ca, request) = (ca.clone(), request.clone());
        async move { ca.issue_node_certificate(request).await }
    })
    .await
    .expect("renewal through a follower")
    .into_inner();
    let der = shoal_proto::tls::certs_from_pem(&issued.certificate).unwrap();
    let id = shoal_proto::identity::NodeIdentity::from_cert_der(&der[0]).unwrap();
    assert_eq!((id.node_id, id.role), (id_of(&w), NodeRole::Worker));
}

/// What `look` finds in the leader's Raft status within 5 s: the status is
/// published from the Raft thread, a moment after a change applies.
async fn settled<T>(
    leader: &shoal_manager::context::ManagerContext,
    look: impl Fn(&shoal_manager::raft::node::RaftStatus) -> Option<T>,
) -> Option<T> {
    for _ in 0..50 {
        if let Some(found) = look(&leader.raft.status()) {
            return Some(found);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
