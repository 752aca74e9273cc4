//! etcd as the yardstick: a 3-member cluster on loopback (distinct ports,
//! a temporary data dir per member, etcd's defaults, so it fsyncs its WAL
//! before acknowledging), driven with the same closed-loop shape through
//! the `etcd-client` crate: a put per request, or a txn of puts.
//!
//! With `--etcd-tls` every member serves, and talks to its peers, over
//! mutual TLS (certificates from [`crate::certs`]), as Shoal's managers
//! always do; by default etcd runs plaintext, its own default.
//!
//! The benchmark installs nothing: it needs an `etcd` binary (Debian's
//! `etcd-server`). [`Etcd`] stops the members and removes their data when
//! dropped — also when the run fails halfway.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use etcd_client::{
    Certificate, Client, ConnectOptions, Identity, KvClient, TlsOptions, Txn, TxnOp,
};

use crate::certs::{self, Certs};
use crate::load;
use crate::plan::{Mode, Plan, Row};

/// A running etcd cluster on loopback.
pub struct Etcd {
    members: Vec<Child>,
    /// Client URLs, one per member.
    pub endpoints: Vec<String>,
    /// Set when the members speak mutual TLS.
    certs: Option<Certs>,
    dir: tempfile::TempDir,
}

/// Finds `etcd`: the given path, else on `PATH`.
pub fn binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
        .context(
            "no `etcd` on PATH: install Debian's etcd-server (apt-get install etcd-server), \
             pass --etcd-bin, or skip it with --skip-etcd",
        )
}

/// `etcd --version`'s first line.
pub fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "etcd (version unknown)".into())
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Etcd {
    /// Starts `n` members in a fresh temporary directory, over mutual TLS
    /// if `tls`.
    pub fn start(bin: &Path, n: usize, tls: bool) -> anyhow::Result<Etcd> {
        let dir = tempfile::Builder::new()
            .prefix("raft-bench-etcd-")
            .tempdir()?;
        let certs = tls.then(|| certs::make(dir.path())).transpose()?;
        let scheme = if tls { "https" } else { "http" };
        let ports: Vec<(u16, u16)> = (0..n)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}={scheme}://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut etcd = Etcd {
            members: Vec::new(),
            endpoints: Vec::new(),
            certs,
            dir,
        };
        for (i, (client, peer)) in ports.into_iter().enumerate() {
            let log = std::fs::File::create(etcd.dir.path().join(format!("m{i}.log")))?;
            let client_url = format!("{scheme}://127.0.0.1:{client}");
            let peer_url = format!("{scheme}://127.0.0.1:{peer}");
            let mut command = Command::new(bin);
            if let Some(c) = &etcd.certs {
                for (flag, file) in [
                    ("--cert-file", &c.cert_file),
                    ("--key-file", &c.key_file),
                    ("--trusted-ca-file", &c.ca_file),
                    ("--peer-cert-file", &c.cert_file),
                    ("--peer-key-file", &c.key_file),
                    ("--peer-trusted-ca-file", &c.ca_file),
                ] {
                    command.arg(flag).arg(file);
                }
                command.args(["--client-cert-auth", "--peer-client-cert-auth"]);
            }
            let child = command
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(etcd.dir.path().join(format!("m{i}.etcd")))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &cluster])
                .args(["--initial-cluster-token", "raft-bench"])
                .args(["--initial-cluster-state", "new"])
                .args(["--logger", "zap", "--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start {}", bin.display()))?;
            etcd.members.push(child);
            etcd.endpoints.push(client_url);
        }
        Ok(etcd)
    }

    /// Waits for a leader; returns its client URL.
    pub async fn leader(&mut self) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (i, child) in self.members.iter_mut().enumerate() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "etcd member m{i} exited with {status}; its log:\n{}",
                        self.log_tail(i)
                    );
                }
            }
            for ep in &self.endpoints {
                let options = self
                    .options()
                    .with_connect_timeout(Duration::from_secs(1))
                    .with_timeout(Duration::from_secs(2));
                if let Ok(mut c) = Client::connect([ep.as_str()], Some(options)).await
                    && let Ok(status) = c.status().await
                    && status.leader() != 0
                    && status.header().map(|h| h.member_id()) == Some(status.leader())
                {
                    return Ok(ep.clone());
                }
            }
            if Instant::now() > deadline {
                bail!("the etcd cluster elected no leader within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How a client connects: with the member certificate and the CA
    /// when the members speak TLS.
    fn options(&self) -> ConnectOptions {
        let options = ConnectOptions::new();
        match &self.certs {
            Some(c) => options.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(&c.ca_pem))
                    .identity(Identity::from_pem(&c.cert_pem, &c.key_pem)),
            ),
            None => options,
        }
    }

    fn log_tail(&self, i: usize) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join(format!("m{i}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // SIGTERM, a grace period, then SIGKILL; the TempDir goes after.
        for child in &self.members {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for child in &mut self.members {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts etcd, runs every step of `plan` against its leader, stops it.
pub async fn run(bin: &Path, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let mut etcd = Etcd::start(bin, 3, plan.etcd_tls)?;
    let leader = etcd.leader().await?;
    let mut kvs = Vec::new();
    for _ in 0..plan.conns.max(1) {
        let client = Client::connect([leader.as_str()], Some(etcd.options()))
            .await
            .context("connecting to etcd")?;
        kvs.push(client.kv_client());
    }
    let kvs = Arc::new(kvs);
    kvs[0]
        .clone()
        .put("/raft-bench/warm-0", plan.value(), None)
        .await
        .context("first write to etcd")?;
    let mut rows = Vec::new();
    for (mode, n) in plan.steps() {
        let stats = step(&kvs, plan, mode, n).await;
        crate::report::progress("etcd", mode, n, &stats);
        rows.push(Row {
            system: "etcd",
            mode,
            clients: n,
            stats,
        });
    }
    drop(etcd);
    Ok(rows)
}

async fn step(kvs: &Arc<Vec<KvClient>>, plan: &Plan, mode: Mode, n: usize) -> load::Stats {
    let kvs = kvs.clone();
    let (value, batch) = (plan.value(), plan.per_request(mode));
    load::run(n, batch as u64, plan.phase, move |client, seq| {
        let mut kv = kvs[client % kvs.len()].clone();
        let value = value.clone();
        async move {
            let key = |item| format!("/raft-bench/{}", Plan::name(mode, n, client, seq, item));
            let result = match mode {
                Mode::Single => kv.put(key(0), value, None).await.map(drop),
                Mode::Batched => {
                    let ops: Vec<TxnOp> = (0..batch)
                        .map(|item| TxnOp::put(key(item), value.clone(), None))
                        .collect();
                    kv.txn(Txn::new().and_then(ops)).await.map(drop)
                }
            };
            result.map_err(|e| e.to_string())
        }
    })
    .await
}
