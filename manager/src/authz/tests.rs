//! Manager authority as the store decides it. The same rules over real
//! mutual TLS are in `manager/tests/authority.rs`.

use std::sync::Arc;
use std::time::Duration;

use shoal_proto::identity::{NodeIdentity, NodeRole};
use shoal_proto::objects::{self, Cluster, Node, NodeSpec};
use shoal_proto::tls::DenyList;
use tokio_stream::StreamExt;
use tonic::Code;

use super::*;
use crate::store::{Store, Tx};

fn commit(store: &Store, f: impl FnOnce(&mut Tx<'_>) -> Result<(), crate::store::StoreError>) {
    let (batch, ()) = store.build(f).expect("build");
    store
        .apply(store.applied_index() + 1, batch)
        .expect("apply");
}

fn node(id: &str, desired: objects::NodeRole, current: objects::NodeRole) -> Node {
    Node {
        id: id.into(),
        spec: Some(NodeSpec {
            desired_role: desired as i32,
            ..Default::default()
        }),
        role: current as i32,
        ..Default::default()
    }
}

fn cert(id: &str, role: NodeRole) -> NodeIdentity {
    NodeIdentity {
        node_id: id.into(),
        role,
        cluster_id: "c".into(),
    }
}

use objects::NodeRole::{Manager as M, Worker as W};

/// A store with a cluster and: m (manager), demoted (desired worker,
/// still a manager until it renews), promoted (desired manager, not yet
/// renewed), gone (removed).
fn world() -> Arc<Store> {
    let store = Arc::new(Store::new());
    commit(&store, |tx| {
        tx.create(Cluster {
            id: "c".into(),
            removed_nodes: vec!["gone".into()],
            ..Default::default()
        })?;
        tx.create(node("m", M, M))?;
        tx.create(node("demoted", W, M))?;
        tx.create(node("promoted", M, W))?;
        Ok(())
    });
    store
}

fn denied(r: Result<(), tonic::Status>, words: &str) {
    let status = r.expect_err("denied");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains(words), "{status:?}");
}

#[test]
fn manager_authority_needs_the_certificate_and_the_store_to_agree() {
    let authority = Authority::new(world(), DenyList::new());
    authority.manager(&cert("m", NodeRole::Manager)).unwrap();
    denied(
        authority.manager(&cert("m", NodeRole::Worker)),
        "only managers",
    );
    denied(
        authority.manager(&cert("demoted", NodeRole::Manager)),
        "was demoted",
    );
    denied(
        authority.manager(&cert("promoted", NodeRole::Manager)),
        "not a manager yet",
    );
    denied(
        authority.manager(&cert("gone", NodeRole::Manager)),
        "was removed",
    );
    denied(
        authority.manager(&cert("stranger", NodeRole::Manager)),
        "not part of the cluster",
    );
    // Raft peers are judged by the log's membership, not by a store that
    // may lag it (a catching-up member must accept a leader its store
    // does not know as a manager yet); a removal still counts.
    authority
        .check(&cert("demoted", NodeRole::Manager), Scope::Raft)
        .unwrap();
    authority
        .check(&cert("stranger", NodeRole::Manager), Scope::Raft)
        .unwrap();
    denied(
        authority.check(&cert("gone", NodeRole::Manager), Scope::Raft),
        "was removed",
    );
}

#[test]
fn a_denied_node_has_no_authority_before_the_store_says_so() {
    let deny = DenyList::new();
    let authority = Authority::new(world(), deny.clone());
    deny.deny("m");
    denied(
        authority.manager(&cert("m", NodeRole::Manager)),
        "was removed",
    );
}

#[test]
fn a_store_without_the_cluster_yet_admits_raft_peers_only() {
    // A manager that just joined, before its first snapshot: its peers are
    // judged by Raft membership (the raft service's check).
    let authority = Authority::new(Arc::new(Store::new()), DenyList::new());
    let id = cert("m", NodeRole::Manager);
    authority.check(&id, Scope::Raft).unwrap();
    let status = authority.manager(&id).unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn a_revocable_stream_ends_when_its_caller_is_demoted() {
    let store = world();
    let authority = Authority::new(store.clone(), DenyList::new());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<u32, tonic::Status>>(4);
    let revoked = Box::pin(authority.revoked(cert("m", NodeRole::Manager), Scope::Control));
    let mut stream = Revocable {
        inner: tokio_stream::wrappers::ReceiverStream::new(rx),
        revoked: Some(revoked),
        ended: false,
    };
    tx.send(Ok(1)).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), 1);
    // Commits that change no authority leave it open.
    commit(&store, |tx| tx.create(node("other", W, W)));
    tx.send(Ok(2)).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), 2);

    commit(&store, |tx| {
        let mut m = tx.tables().get::<Node>("m").cloned().unwrap();
        m.spec.as_mut().unwrap().desired_role = W as i32;
        tx.update(m)
    });
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream ends");
    let status = ended.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("demoted"), "{status:?}");
    tx.send(Ok(3)).await.unwrap();
    assert!(stream.next().await.is_none(), "nothing after the end");
}

#[tokio::test]
async fn the_local_cli_never_loses_its_stream() {
    let leader = crate::testing::leader().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<u32, tonic::Status>>(1);
    let mut stream = Revocable::new(
        &leader.ctx,
        &Caller::Local,
        tokio_stream::wrappers::ReceiverStream::new(rx),
    );
    tx.send(Ok(7)).await.unwrap();
    drop(tx);
    assert_eq!(stream.next().await.unwrap().unwrap(), 7);
    assert!(stream.next().await.is_none());
    leader.stop.cancel();
}
