//! In-process Raft clusters: real nodes on real (sealed, on-disk) storage in
//! temp dirs, joined by an in-memory transport that can cut links. Fast
//! enough to test elections, failover, snapshots and restarts in detail;
//! the namespace tests in `tests/` cover the same over real gRPC and mTLS.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft::prelude::Message;
use shoal_proto::objects::{Annotations, Secret, SecretSpec};
use shoal_proto::raft::RaftMember;
use tokio_util::sync::CancellationToken;

use super::node::{self, ProposeError, RaftConfig, RaftHandle, Transport};
use super::storage::DiskStorage;
use crate::seal::DataKey;
use crate::store::{Store, Stored};

#[derive(Clone, Default)]
struct Hub {
    nodes: Arc<Mutex<HashMap<u64, RaftHandle>>>,
    cut: Arc<Mutex<HashSet<(u64, u64)>>>,
}

impl Hub {
    fn isolate(&self, id: u64, others: &[u64]) {
        let mut cut = self.cut.lock().unwrap();
        for &o in others {
            cut.insert((id, o));
            cut.insert((o, id));
        }
    }
    fn heal(&self) {
        self.cut.lock().unwrap().clear();
    }
}

struct HubTransport {
    me: u64,
    hub: Hub,
}

impl Transport for HubTransport {
    fn send(&mut self, messages: Vec<Message>) {
        let nodes = self.hub.nodes.lock().unwrap();
        let cut = self.hub.cut.lock().unwrap();
        for m in messages {
            let to = m.to;
            let snapshot = m.get_msg_type() == raft::prelude::MessageType::MsgSnapshot;
            let target = nodes.get(&to).filter(|_| !cut.contains(&(self.me, to)));
            let sent = target.is_some();
            if let Some(h) = target {
                h.try_step(m);
            }
            // As the gRPC transport does: raft-rs waits for this before it
            // tries a member that missed a snapshot again.
            if snapshot && let Some(me) = nodes.get(&self.me).cloned() {
                tokio::spawn(async move { me.report_snapshot(to, sent).await });
            }
        }
    }
    fn set_members(&mut self, _: &BTreeMap<u64, RaftMember>) {}
}

struct TestNode {
    id: u64,
    dir: tempfile::TempDir,
    key: DataKey,
    store: Arc<Store>,
    handle: RaftHandle,
    stop: CancellationToken,
}

fn config(id: u64) -> RaftConfig {
    RaftConfig {
        tick: Duration::from_millis(20),
        snapshot_interval: 200,
        keep_entries: 20,
        ..RaftConfig::new(id)
    }
}

fn member(id: u64) -> RaftMember {
    RaftMember {
        raft_id: id,
        node_id: format!("node{id}"),
        addr: format!("mem:{id}"),
    }
}

fn launch(hub: &Hub, id: u64, dir: tempfile::TempDir, key: DataKey, cfg: RaftConfig) -> TestNode {
    let storage = DiskStorage::open(dir.path(), key.clone()).expect("open storage");
    let store = Arc::new(Store::new());
    let stop = CancellationToken::new();
    let t_hub = hub.clone();
    let (handle, _task) = node::start(
        cfg,
        storage,
        store.clone(),
        Vec::new(),
        move |_| HubTransport { me: id, hub: t_hub },
        stop.clone(),
    )
    .expect("start");
    hub.nodes.lock().unwrap().insert(id, handle.clone());
    TestNode {
        id,
        dir,
        key,
        store,
        handle,
        stop,
    }
}

fn bootstrap(hub: &Hub, id: u64) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::generate();
    let storage = DiskStorage::open(dir.path(), key.clone()).unwrap();
    storage
        .persist_ready(&[], None, Some(node::bootstrap_snapshot(member(id))))
        .unwrap();
    drop(storage);
    launch(hub, id, dir, key, config(id))
}

async fn join(hub: &Hub, leader: &TestNode, id: u64) -> TestNode {
    let joiner = launch(
        hub,
        id,
        tempfile::tempdir().unwrap(),
        DataKey::generate(),
        config(id),
    );
    leader
        .handle
        .add_member(member(id))
        .await
        .expect("add member");
    joiner
}

/// Member 1 founds the cluster and leads; 2 and 3 join it.
async fn three_members(hub: &Hub) -> (TestNode, TestNode, TestNode) {
    let n1 = bootstrap(hub, 1);
    leader_among(&[&n1], Duration::from_secs(2)).await;
    let n2 = join(hub, &n1, 2).await;
    let n3 = join(hub, &n1, 3).await;
    (n1, n2, n3)
}

fn stop(hub: &Hub, node: TestNode) -> (u64, tempfile::TempDir, DataKey) {
    node.stop.cancel();
    hub.nodes.lock().unwrap().remove(&node.id);
    (node.id, node.dir, node.key)
}

fn secret(name: &str) -> Secret {
    Secret {
        id: format!("id-{name}"),
        spec: Some(SecretSpec {
            annotations: Some(Annotations {
                name: name.into(),
                ..Default::default()
            }),
            data: name.as_bytes().to_vec(),
        }),
        ..Default::default()
    }
}

async fn write(node: &TestNode, name: &str) -> Result<u64, ProposeError> {
    let (batch, ()) = node
        .store
        .build(|tx| tx.create(secret(name)).map_err(ProposeError::from))?;
    node.handle.propose(batch).await
}

async fn leader_among<'a>(nodes: &[&'a TestNode], within: Duration) -> &'a TestNode {
    let deadline = Instant::now() + within;
    loop {
        if let Some(n) = nodes.iter().find(|n| n.handle.status().is_leader()) {
            return n;
        }
        assert!(Instant::now() < deadline, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn converge(nodes: &[&TestNode], count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counts: Vec<usize> = nodes
            .iter()
            .map(|n| n.store.view(|t| t.all::<Secret>().count()))
            .collect();
        if counts.iter().all(|&c| c == count) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stores did not converge to {count}: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_lone_founder_leads_at_once_and_commits() {
    let hub = Hub::default();
    let n1 = bootstrap(&hub, 1);
    leader_among(&[&n1], Duration::from_secs(2)).await;
    let index = write(&n1, "a").await.unwrap();
    assert!(index >= 2);
    let stored = n1.store.view(|t| t.get::<Secret>("id-a").cloned()).unwrap();
    assert_eq!(stored.version(), index, "version is the log index");
    let dup = write(&n1, "a").await.unwrap_err();
    assert!(matches!(dup, ProposeError::Store(_)), "{dup}");
}

#[tokio::test]
async fn three_members_replicate_and_survive_losing_the_leader() {
    let hub = Hub::default();
    let (n1, n2, n3) = three_members(&hub).await;
    for i in 0..20 {
        write(&n1, &format!("s{i}")).await.unwrap();
    }
    converge(&[&n1, &n2, &n3], 20).await;
    assert_eq!(n2.handle.status().members.len(), 3);

    // The leader dies; the others elect one and keep every acknowledged write.
    let started = Instant::now();
    stop(&hub, n1);
    let leader = leader_among(&[&n2, &n3], Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    write(leader, "after").await.unwrap();
    converge(&[&n2, &n3], 21).await;
    assert!(
        elapsed < Duration::from_secs(3),
        "election took {elapsed:?}"
    );
}

#[tokio::test]
async fn a_minority_leader_cannot_commit_and_steps_down_after_healing() {
    let hub = Hub::default();
    let (n1, n2, n3) = three_members(&hub).await;
    write(&n1, "before").await.unwrap();
    converge(&[&n1, &n2, &n3], 1).await;
    hub.isolate(1, &[2, 3]);
    let new_leader = leader_among(&[&n2, &n3], Duration::from_secs(5)).await;
    write(new_leader, "majority").await.unwrap();

    // Check-quorum makes the isolated leader step down; it refuses writes
    // and linearizable reads.
    let deadline = Instant::now() + Duration::from_secs(5);
    while n1.handle.status().is_leader() {
        assert!(
            Instant::now() < deadline,
            "isolated leader never stepped down"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(write(&n1, "minority").await.is_err());
    assert!(
        n1.handle.read_barrier().await.is_err(),
        "no stale reads from the old leader"
    );

    hub.heal();
    converge(&[&n1, &n2, &n3], 2).await;
    assert!(n1.store.view(|t| t.get::<Secret>("id-minority").is_none()));
}

#[tokio::test]
async fn a_follower_far_behind_catches_up_by_snapshot_and_restarts_from_disk() {
    let hub = Hub::default();
    let (n1, n2, n3) = three_members(&hub).await;
    converge(&[&n1, &n2, &n3], 0).await;

    let (id3, dir3, key3) = stop(&hub, n3);
    // Far more than snapshot_interval (200) + keep_entries (20): the log
    // the follower needs is compacted away.
    for i in 0..600 {
        write(&n1, &format!("w{i}")).await.unwrap();
    }
    let first = raft::Storage::first_index(
        &DiskStorage::open(tempfile::tempdir().unwrap().path(), DataKey::generate()).unwrap(),
    )
    .unwrap();
    assert_eq!(first, 1, "sanity: an empty log starts at 1");

    let n3 = launch(&hub, id3, dir3, key3, config(id3));
    converge(&[&n1, &n2, &n3], 600).await;

    // Everyone stops; everyone restarts from disk to the same state.
    // The same objects (a snapshot's order is its writer's own).
    let before = n1.store.digest().1;
    let saved: Vec<_> = [n1, n2, n3].into_iter().map(|n| stop(&hub, n)).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let restarted: Vec<TestNode> = saved
        .into_iter()
        .map(|(id, dir, key)| launch(&hub, id, dir, key, config(id)))
        .collect();
    let refs: Vec<&TestNode> = restarted.iter().collect();
    converge(&refs, 600).await;
    for n in &refs {
        assert_eq!(
            n.store.digest().1,
            before,
            "node {} restarted to a different state",
            n.id
        );
    }
    let leader = leader_among(&refs, Duration::from_secs(5)).await;
    write(leader, "after-restart").await.unwrap();
}

#[tokio::test]
async fn proposals_on_a_follower_are_refused_with_the_leader() {
    let hub = Hub::default();
    let n1 = bootstrap(&hub, 1);
    leader_among(&[&n1], Duration::from_secs(2)).await;
    let n2 = join(&hub, &n1, 2).await;
    converge(&[&n1, &n2], 0).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while n2.handle.status().leader != 1 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        write(&n2, "x").await.unwrap_err(),
        ProposeError::NotLeader { leader: Some(1) }
    );
}

#[tokio::test]
async fn proposals_arriving_together_share_an_entry_with_their_own_verdicts() {
    let hub = Hub::default();
    let (n1, n2, n3) = three_members(&hub).await;
    let build = |id: String, name: &str| {
        let mut s = secret(name);
        s.id = id;
        n1.store
            .build(|tx| tx.create(s).map_err(ProposeError::from))
            .unwrap()
            .0
    };
    // 40 distinct names, and two creates of one more name: both pass the
    // proposer's check (neither exists yet); the log decides.
    let mut batches: Vec<_> = (0..40)
        .map(|i| build(format!("id-g{i}"), &format!("g{i}")))
        .collect();
    batches.push(build("id-dup-a".into(), "dup"));
    batches.push(build("id-dup-b".into(), "dup"));
    let tasks: Vec<_> = batches
        .into_iter()
        .map(|b| {
            let h = n1.handle.clone();
            tokio::spawn(async move { h.propose_marked(b).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let (dup_a, dup_b) = (&results[40], &results[41]);
    assert!(dup_a.is_ok(), "{dup_a:?}");
    assert!(
        matches!(dup_b, Err(ProposeError::Store(_))),
        "the second create of one name is refused: {dup_b:?}"
    );
    let landed: Vec<_> = results[..41].iter().map(|r| *r.as_ref().unwrap()).collect();
    let distinct: HashSet<(u64, u32)> = landed.iter().map(|a| (a.index, a.part)).collect();
    assert_eq!(distinct.len(), 41, "every proposal has its own place");
    assert!(
        landed.iter().any(|a| a.part > 0),
        "proposals queued together share an entry: {landed:?}"
    );
    // Versions are the entry's index, on every manager alike.
    converge(&[&n1, &n2, &n3], 41).await;
    for (i, a) in landed[..40].iter().enumerate() {
        for n in [&n1, &n2, &n3] {
            let s = n
                .store
                .view(|t| t.get::<Secret>(&format!("id-g{i}")).cloned())
                .unwrap();
            assert_eq!(s.version(), a.index);
        }
    }
}

#[tokio::test]
async fn a_read_barrier_asked_the_moment_a_node_leads_is_answered() {
    // raft-rs drops a ReadIndex until the leader commits an entry of its
    // own term; with the disk off the loop, that first commit comes a sync
    // after the node is already leader. The node holds such reads.
    for _ in 0..10 {
        let hub = Hub::default();
        let n1 = bootstrap(&hub, 1);
        let mut status = n1.handle.watch_status();
        status.wait_for(|s| s.is_leader()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(2), n1.handle.read_barrier())
            .await
            .expect("the read barrier was answered")
            .unwrap();
    }
}
