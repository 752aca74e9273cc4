//! Swarm helpers on top of [`Cluster`]: init a manager, join others by
//! token, read `node ls` as a table, as a user would type them.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cluster::Cluster;
use crate::eventually::eventually;

/// The cluster port every host uses.
pub const PORT: u16 = 2377;

impl Cluster {
    /// `host:2377` of host `i`.
    pub fn manager_addr(&self, i: usize) -> String {
        format!("{}:{PORT}", self.addr(i))
    }

    /// A ready swarm on `workers + 1` fresh hosts: host 0 the manager, the
    /// others workers.
    pub fn manager_and_workers(workers: usize) -> anyhow::Result<Cluster> {
        let cluster = Cluster::start(workers + 1)?;
        cluster.init_swarm(0)?;
        for i in 1..=workers {
            cluster.join(i, 0, "worker")?;
        }
        cluster.wait_nodes_ready(0, workers + 1, std::time::Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// Drains host 0 (the manager), so tasks run on the workers only.
    pub fn drain_manager(&self) -> anyhow::Result<()> {
        self.shoal(0, &["node", "update", "--availability", "drain", "node-0"])
            .ok()?;
        Ok(())
    }

    /// `swarm init` on host `i`, advertising its underlay address.
    pub fn init_swarm(&self, i: usize) -> anyhow::Result<String> {
        let addr = self.addr(i).to_string();
        self.shoal(i, &["swarm", "init", "--advertise-addr", &addr])
            .ok()
            .context("swarm init")
    }

    /// The join token for `role` ("worker" or "manager"), asked of host `i`.
    pub fn join_token(&self, i: usize, role: &str) -> anyhow::Result<String> {
        Ok(self
            .shoal(i, &["swarm", "join-token", "-q", role])
            .ok()?
            .trim()
            .to_string())
    }

    /// Host `i` joins through host `via` with a `role` token.
    pub fn join(&self, i: usize, via: usize, role: &str) -> anyhow::Result<String> {
        let token = self.join_token(via, role)?;
        let addr = self.addr(i).to_string();
        let remote = self.manager_addr(via);
        self.shoal(
            i,
            &[
                "swarm",
                "join",
                "--token",
                &token,
                "--advertise-addr",
                &addr,
                &remote,
            ],
        )
        .ok()
        .with_context(|| format!("node-{i} joining as a {role}"))
    }

    /// `node ls` on host `i`, one map per row keyed by column header.
    pub fn node_ls(&self, i: usize) -> anyhow::Result<Vec<HashMap<String, String>>> {
        let out = self.shoal(i, &["node", "ls", "--format", "json"]).ok()?;
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: HashMap<String, serde_json::Value> =
                    serde_json::from_str(l).with_context(|| format!("node ls line {l:?}"))?;
                Ok(v.into_iter()
                    .map(|(k, v)| {
                        (
                            k,
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect())
            })
            .collect()
    }

    /// Waits until host `i`'s `node ls` shows `hosts` nodes all Ready.
    pub fn wait_nodes_ready(
        &self,
        i: usize,
        hosts: usize,
        within: Duration,
    ) -> anyhow::Result<Vec<HashMap<String, String>>> {
        eventually(&format!("{hosts} nodes ready on node-{i}"), within, || {
            let rows = self.node_ls(i)?;
            let ready = rows
                .iter()
                .filter(|r| r.get("Status").map(String::as_str) == Some("Ready"))
                .count();
            if rows.len() != hosts || ready != hosts {
                bail!("node ls: {rows:?}");
            }
            Ok(rows)
        })
    }

    /// The index of the host whose node is the Raft leader, as `node ls`
    /// on host `asker` says.
    pub fn leader(&self, asker: usize) -> anyhow::Result<usize> {
        let rows = self.node_ls(asker)?;
        let leader = rows
            .iter()
            .find(|r| r.get("ManagerStatus").map(String::as_str) == Some("Leader"))
            .and_then(|r| r.get("Hostname"))
            .context("no leader in node ls")?;
        (0..self.len())
            .find(|&h| self.hostname(h) == leader)
            .with_context(|| format!("leader {leader} is no host"))
    }

    /// (task id, host index) of every task of `service` that runs now, as
    /// `service ps` on host 0 shows them.
    pub fn running_tasks(&self, service: &str) -> anyhow::Result<Vec<(String, usize)>> {
        let out = self
            .shoal(
                0,
                &[
                    "service",
                    "ps",
                    service,
                    "--no-trunc",
                    "--filter",
                    "desired-state=running",
                    "--format",
                    "{{.ID}} {{.Node}} {{.CurrentState}}",
                ],
            )
            .ok()?;
        let mut tasks = Vec::new();
        for line in out.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [id, node, state, ..] = words[..]
                && state == "Running"
            {
                let host = (0..self.len())
                    .find(|&h| self.hostname(h) == node)
                    .with_context(|| format!("node {node} is no host"))?;
                tasks.push((id.to_string(), host));
            }
        }
        Ok(tasks)
    }
}
