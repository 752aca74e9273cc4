//! Shoal as the system under test: three managers in network namespaces
//! (the test harness, default settings, so the WAL fsyncs every Raft Ready),
//! driven from inside node-0's namespace with node-0's own manager
//! certificate — the way the CLI's daemon or another manager reaches the
//! control API over mutual TLS. node-0 founded the swarm and leads unless
//! an election moved the leadership (then calls are forwarded).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shoal_proto::control::control_client::ControlClient;
use shoal_proto::control::{BatchRequest, CreateConfigRequest};
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::objects::{Annotations, ConfigSpec};
use shoal_tests::Cluster;
use tonic::transport::Channel;

use crate::load;
use crate::plan::{Mode, Plan, Row};

/// Starts `n` managers: node-0 inits, the others join as managers.
pub fn start(n: usize) -> anyhow::Result<Cluster> {
    let cluster = Cluster::start(n)?;
    cluster.init_swarm(0)?;
    for i in 1..n {
        cluster.join(i, 0, "manager")?;
    }
    cluster.wait_nodes_ready(0, n, Duration::from_secs(60))?;
    Ok(cluster)
}

/// Runs every step of `plan` against `cluster`, from node-0's namespace.
pub fn run(cluster: &Cluster, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    shoal_proto::tls::install_default_provider();
    let creds = NodeCredentials::load(&NodeCredentials::dir(cluster.state_dir(0)))?
        .context("node-0 has no credentials")?;
    let tls = creds.client_config()?;
    let addr = cluster.manager_addr(0);
    let plan = plan.clone();
    cluster.in_netns(0, move || {
        // Built on the namespaced thread: its workers inherit the namespace.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let clients: Vec<ControlClient<Channel>> = (0..plan.conns.max(1))
                .map(|_| ControlClient::new(shoal_proto::net::channel(&addr, tls.clone())))
                .collect();
            let clients = Arc::new(clients);
            // One write first: connections up, leader answering.
            create(&clients[0], "warm-0".into(), plan.value())
                .await
                .map_err(anyhow::Error::msg)
                .context("first write to Shoal")?;
            let mut rows = Vec::new();
            for (mode, n) in plan.steps() {
                let stats = step(&clients, &plan, mode, n).await;
                crate::report::progress("Shoal", mode, n, &stats);
                rows.push(Row {
                    system: "Shoal",
                    mode,
                    clients: n,
                    stats,
                });
            }
            Ok(rows)
        })
    })?
}

async fn step(
    clients: &Arc<Vec<ControlClient<Channel>>>,
    plan: &Plan,
    mode: Mode,
    n: usize,
) -> load::Stats {
    let clients = clients.clone();
    let (value, batch) = (plan.value(), plan.per_request(mode));
    load::run(n, batch as u64, plan.phase, move |client, seq| {
        let c = clients[client % clients.len()].clone();
        let value = value.clone();
        async move {
            match mode {
                Mode::Single => create(&c, Plan::name(mode, n, client, seq, 0), value).await,
                Mode::Batched => {
                    let configs = (0..batch)
                        .map(|item| spec(Plan::name(mode, n, client, seq, item), value.clone()))
                        .collect();
                    let request = BatchRequest {
                        configs,
                        ..Default::default()
                    };
                    let mut c = c;
                    c.batch(request).await.map(drop).map_err(|s| s.to_string())
                }
            }
        }
    })
    .await
}

fn spec(name: String, data: Vec<u8>) -> ConfigSpec {
    ConfigSpec {
        annotations: Some(Annotations {
            name,
            ..Default::default()
        }),
        data,
    }
}

async fn create(c: &ControlClient<Channel>, name: String, data: Vec<u8>) -> Result<(), String> {
    let request = CreateConfigRequest {
        spec: Some(spec(name, data)),
    };
    c.clone()
        .create_config(request)
        .await
        .map(drop)
        .map_err(|s| s.to_string())
}
