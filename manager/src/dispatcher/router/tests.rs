//! Which streams a commit reaches.

use std::sync::Arc;
use std::time::Duration;

use shoal_proto::objects::{Network, NetworkAttachment, Node, Secret, Service, Task};

use super::*;
use crate::store::{Store, StoreError, Tx};

fn task(id: &str, node: &str, networks: &[&str]) -> Task {
    Task {
        id: id.into(),
        node_id: node.into(),
        networks: networks
            .iter()
            .map(|n| NetworkAttachment {
                network: Some(Network {
                    id: n.to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Applies a batch and returns its commit.
fn commit(store: &Store, f: impl FnOnce(&mut Tx<'_>) -> Result<(), StoreError>) -> Arc<Commit> {
    let mut commits = store.watch();
    let (batch, ()) = store.build(f).expect("build");
    store
        .apply(store.applied_index() + 1, batch)
        .expect("apply");
    commits.try_recv().expect("a commit")
}

fn network_inbox(streams: &mut Streams, node: &str, interest: Interest) -> Arc<NetworkInbox> {
    let inbox = Arc::new(NetworkInbox::default());
    inbox.set_interest(interest);
    streams.add(Subscription::Networks(node.into(), inbox.clone()));
    inbox
}

fn interested_in(networks: &[&str], nodes: &[&str], every_node: bool) -> Interest {
    Interest {
        networks: networks.iter().map(|s| s.to_string()).collect(),
        nodes: nodes.iter().map(|s| s.to_string()).collect(),
        every_node,
    }
}

#[test]
fn a_task_reaches_its_node_and_the_node_it_left_and_a_secret_reaches_every_node() {
    let store = Store::new();
    let (mut streams, n1) = Streams::for_assignments("n1", &store);
    let n2 = Arc::new(Inbox::default());
    streams.add(Subscription::Assignments("n2".into(), n2.clone()));

    let c = commit(&store, |tx| tx.create(task("t1", "n1", &[])));
    streams.route(&c, &store);
    assert!(!n1.take().is_empty());
    assert!(n2.take().is_empty(), "n2 has nothing to do with t1");

    let c = commit(&store, |tx| {
        let mut t = tx.tables().get::<Task>("t1").cloned().unwrap();
        t.node_id = "n2".into();
        tx.update(t)
    });
    streams.route(&c, &store);
    assert!(!n1.take().is_empty(), "n1 must drop t1");
    assert!(!n2.take().is_empty(), "n2 must get t1");

    let c = commit(&store, |tx| {
        tx.create(Secret {
            id: "s1".into(),
            ..Default::default()
        })
    });
    streams.route(&c, &store);
    assert!(!n1.take().is_empty() && !n2.take().is_empty());
}

#[test]
fn network_views_wake_only_for_what_they_show() {
    let store = Store::new();
    let mut streams = Streams::default();
    let front = network_inbox(
        &mut streams,
        "n1",
        interested_in(&["ingress", "front"], &["n1", "n3"], false),
    );
    let idle = network_inbox(&mut streams, "n2", interested_in(&["ingress"], &[], false));
    let mesh = network_inbox(
        &mut streams,
        "n3",
        interested_in(&["ingress", "front"], &["n1", "n3"], true),
    );
    let woken = |streams: &mut Streams, c: &Commit| -> [bool; 3] {
        streams.route(c, &store);
        [front.inbox.take(), idle.inbox.take(), mesh.inbox.take()]
    };

    let c = commit(&store, |tx| tx.create(task("plain", "n2", &[])));
    assert_eq!(
        woken(&mut streams, &c),
        [false; 3],
        "a task on no network shows nowhere"
    );

    let c = commit(&store, |tx| tx.create(task("web", "n3", &["front"])));
    assert_eq!(woken(&mut streams, &c), [true, false, true]);

    let c = commit(&store, |tx| tx.create(task("db", "n2", &["back"])));
    assert_eq!(
        woken(&mut streams, &c),
        [false, true, false],
        "n2's own task: its networks change"
    );

    let c = commit(&store, |tx| {
        tx.create(Node {
            id: "n9".into(),
            ..Default::default()
        })
    });
    assert_eq!(
        woken(&mut streams, &c),
        [false, false, true],
        "a new node concerns the node that lists every sandbox"
    );

    let c = commit(&store, |tx| {
        tx.create(Service {
            id: "svc".into(),
            ..Default::default()
        })
    });
    assert_eq!(woken(&mut streams, &c), [true; 3]);
}

#[tokio::test]
async fn a_subscriber_hears_every_commit_after_it_subscribed() {
    let store = Arc::new(Store::new());
    let shutdown = CancellationToken::new();
    let router = Router::start(store.clone(), shutdown.clone());
    let inbox = router.assignments("n1").await.expect("router running");
    commit(&store, |tx| tx.create(task("t1", "n1", &[])));
    tokio::time::timeout(Duration::from_secs(5), inbox.wait())
        .await
        .expect("woken");
    assert!(!inbox.take().is_empty());
    shutdown.cancel();
}
