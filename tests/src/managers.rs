//! Managers' replicated state as tests see it: clusters of managers, what
//! `shoal info` says of a manager's store (applied index and digest),
//! waiting for every manager to agree, clients that run inside a host's
//! namespace while the test kills and cuts daemons, and a seeded random
//! generator so a failing run can be replayed.

use std::time::Duration;

use anyhow::Context;
use shoal_proto::credentials::NodeCredentials;

use crate::{Cluster, eventually};

/// `n` hosts, all managers, all Ready.
pub fn managers(n: usize) -> anyhow::Result<Cluster> {
    let cluster = Cluster::start(n)?;
    cluster.init_swarm(0)?;
    for i in 1..n {
        cluster.join(i, 0, "manager")?;
    }
    cluster.wait_nodes_ready(0, n, Duration::from_secs(30))?;
    Ok(cluster)
}

/// What `shoal info` says of a manager's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// `Swarm.RaftAppliedIndex`.
    pub applied: u64,
    /// `Swarm.StoreDigest`.
    pub digest: String,
}

/// `shoal info` of host `i`: its applied index and store digest.
pub fn store_info(cluster: &Cluster, i: usize) -> anyhow::Result<StoreInfo> {
    let out = cluster.shoal(i, &["info", "--format", "json"]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).context("info json")?;
    let swarm = &v["Swarm"];
    Ok(StoreInfo {
        applied: swarm["RaftAppliedIndex"]
            .as_u64()
            .context("no Swarm.RaftAppliedIndex")?,
        digest: swarm["StoreDigest"]
            .as_str()
            .context("no Swarm.StoreDigest")?
            .to_string(),
    })
}

/// Waits until every host in `hosts` has applied the same index, at least
/// `at_least`, and holds a store with the same digest; returns what they
/// agree on. (Managers restarted together agree on their snapshot for a
/// moment before they replay their logs: hence the floor.)
pub fn converged(
    cluster: &Cluster,
    hosts: &[usize],
    at_least: u64,
    within: Duration,
) -> anyhow::Result<StoreInfo> {
    eventually("managers converge", within, || {
        let infos = hosts
            .iter()
            .map(|&i| store_info(cluster, i).map(|s| (i, s)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let first = &infos[0].1;
        anyhow::ensure!(
            first.applied >= at_least.max(2) && infos.iter().all(|(_, s)| s == first),
            "not yet: {infos:?}"
        );
        Ok(first.clone())
    })
}

/// Host `i`'s node credentials (a manager's certificate).
pub fn credentials(cluster: &Cluster, i: usize) -> anyhow::Result<NodeCredentials> {
    NodeCredentials::load(&NodeCredentials::dir(cluster.state_dir(i)))?
        .context("no node credentials")
}

/// Runs `f` on a new thread inside host `i`'s network namespace, without
/// waiting for it (for a client that runs while the test kills daemons).
/// The thread is no process of its own, so killing the host spares it.
pub fn spawn_in_netns<R: Send + 'static>(
    cluster: &Cluster,
    i: usize,
    f: impl FnOnce() -> R + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<R>>> {
    let path = format!("/var/run/netns/{}", cluster.netns(i));
    let ns = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
    Ok(std::thread::spawn(move || {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| anyhow::anyhow!("setns: {e}"))?;
        Ok(f())
    }))
}

/// A runtime for clients; its threads inherit the caller's namespace.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A small xorshift generator: random enough to pick victims and moments,
/// and reproducible from the seed it prints (`SHOAL_TEST_SEED`).
pub struct Rng(u64);

impl Rng {
    /// Seeded from `SHOAL_TEST_SEED`, else the clock (printed).
    pub fn from_env() -> Rng {
        let seed = std::env::var("SHOAL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        eprintln!("random seed {seed} (set SHOAL_TEST_SEED={seed} to replay)");
        Rng(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A duration from `from` to `to` milliseconds.
    pub fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}
