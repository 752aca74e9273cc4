//! Test helpers shared by the leader-only loops' tests: a single-node
//! Raft leader in process ([`leader`]), one on a Raft stand-in for tests
//! on paused time whose leadership the test moves ([`instant_leader`]),
//! a bounded wait, and a seeded random source for model tests ([`Rng`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_proto::raft::RaftMember;
use shoal_proto::tls::DenyList;
use shoal_proto::token::CaDigest;
use tokio_util::sync::CancellationToken;

use crate::context::ManagerContext;
use crate::raft::DiskStorage;
use crate::raft::node::{self, RaftConfig};
use crate::seal::DataKey;
use crate::store::Store;

/// A lone manager that leads: writes go through its log and come back as
/// committed events, as on a real leader.
pub struct Leader {
    pub ctx: ManagerContext,
    pub stop: CancellationToken,
    pub _dir: tempfile::TempDir,
}

pub async fn leader() -> Leader {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = DataKey::generate();
    let member = RaftMember {
        raft_id: 1,
        node_id: "m1".into(),
        addr: "mem:1".into(),
    };
    let storage = DiskStorage::open(dir.path(), key).expect("open storage");
    storage
        .persist_ready(&[], None, Some(node::bootstrap_snapshot(member)))
        .expect("bootstrap");
    let store = Arc::new(Store::new());
    let stop = CancellationToken::new();
    let config = RaftConfig {
        tick: Duration::from_millis(20),
        ..RaftConfig::new(1)
    };
    let (handle, _task) = node::start(
        config,
        storage,
        store.clone(),
        vec![],
        |_| NoPeers,
        stop.clone(),
    )
    .expect("start raft");
    let ctx = ManagerContext::new(
        store,
        handle,
        "m1".into(),
        DenyList::default(),
        client_tls(),
    );
    eventually("a leader", || ctx.raft.status().is_leader()).await;
    Leader {
        ctx,
        stop,
        _dir: dir,
    }
}

/// A lone manager on [`crate::raft::instant`]: writes apply at once on
/// the test's runtime, so it works on paused time, and the test takes
/// leadership away and gives it back.
pub struct InstantLeader {
    pub ctx: ManagerContext,
    status: tokio::sync::watch::Sender<crate::raft::node::RaftStatus>,
}

impl InstantLeader {
    /// Another member leads now.
    pub fn step_down(&self) {
        self.status.send_modify(|s| s.leader = 2);
    }

    /// This manager leads again, in a new term.
    pub fn lead_again(&self) {
        self.status.send_modify(|s| {
            s.leader = s.id;
            s.term += 1;
        });
    }
}

/// An [`InstantLeader`], leading. Must run inside a tokio runtime.
pub fn instant_leader() -> InstantLeader {
    let store = Arc::new(Store::new());
    let (handle, status) = crate::raft::instant::start(1, store.clone());
    InstantLeader {
        ctx: ManagerContext::new(
            store,
            handle,
            "m1".into(),
            DenyList::default(),
            client_tls(),
        ),
        status,
    }
}

fn client_tls() -> shoal_proto::net::ClientTls {
    let tls =
        shoal_proto::tls::bootstrap_client_config(CaDigest::of_der(b"unused")).expect("tls config");
    shoal_proto::net::ClientTls::new(Arc::new(tls))
}

/// A lone member has no one to send to.
struct NoPeers;

impl node::Transport for NoPeers {
    fn send(&mut self, _: Vec<raft::prelude::Message>) {}
    fn set_members(&mut self, _: &std::collections::BTreeMap<u64, RaftMember>) {}
}

/// Waits until `f` holds, failing the test after 10 s.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "not within 10s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A small xorshift: reproducible random cases without a crate.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
