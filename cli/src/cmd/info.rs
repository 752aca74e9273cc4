//! `shoal info`: what the daemon and its node are, like `docker info`.

use serde::Serialize;
use shoal_proto::local::{InfoRequest, InfoResponse, local_client::LocalClient};

use crate::client;
use crate::host::Host;
use crate::output::{Format, human_bytes, print_json};

/// `shoal info` flags.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SwarmView {
    local_node_state: String,
    #[serde(rename = "NodeID")]
    node_id: String,
    node_addr: String,
    control_available: bool,
    #[serde(rename = "ClusterID")]
    cluster_id: String,
    managers: u32,
    nodes: u32,
    raft_applied_index: u64,
    store_digest: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InfoView {
    name: String,
    server_version: String,
    engine: String,
    engine_version: String,
    operating_system: String,
    architecture: String,
    kernel_version: String,
    #[serde(rename = "NCPU")]
    ncpu: u32,
    mem_total: u64,
    shoal_root_dir: String,
    cgroup_version: String,
    load_balancer: String,
    daemon_pid: u32,
    swarm: SwarmView,
}

impl From<InfoResponse> for InfoView {
    fn from(r: InfoResponse) -> Self {
        let swarm = r.swarm.unwrap_or_default();
        InfoView {
            name: r.hostname,
            server_version: r.server_version,
            engine: r.engine,
            engine_version: r.engine_version,
            operating_system: r.os,
            architecture: r.arch,
            kernel_version: r.kernel_version,
            ncpu: r.ncpu,
            mem_total: r.mem_total,
            shoal_root_dir: r.state_dir,
            cgroup_version: r.cgroup_version,
            load_balancer: r.load_balancer,
            daemon_pid: r.pid,
            swarm: SwarmView {
                local_node_state: swarm.local_node_state,
                node_id: swarm.node_id,
                node_addr: swarm.node_addr,
                control_available: swarm.control_available,
                cluster_id: swarm.cluster_id,
                managers: swarm.managers,
                nodes: swarm.nodes,
                raft_applied_index: swarm.raft_applied_index,
                store_digest: swarm.store_digest,
            },
        }
    }
}

/// Runs `shoal info`.
pub async fn run(host: &Host, args: InfoArgs) -> anyhow::Result<()> {
    let channel = client::connect(host).await?;
    let reply = LocalClient::new(channel)
        .info(InfoRequest { brief: false })
        .await
        .map_err(client::status_error)?
        .into_inner();
    let view = InfoView::from(reply);
    match args.format {
        Format::Json => print_json(&view),
        Format::Text => {
            print_text(&view);
            Ok(())
        }
    }
}

fn print_text(v: &InfoView) {
    println!("Server:");
    println!(" Server Version: {}", v.server_version);
    let engine = match v.engine_version.as_str() {
        "" => v.engine.clone(),
        ver => format!("{} {ver}", v.engine),
    };
    println!(" Engine: {engine}");
    println!(" Swarm: {}", v.swarm.local_node_state);
    if v.swarm.local_node_state == "active" {
        println!("  NodeID: {}", v.swarm.node_id);
        println!("  Is Manager: {}", v.swarm.control_available);
        println!("  ClusterID: {}", v.swarm.cluster_id);
        println!("  Managers: {}", v.swarm.managers);
        println!("  Nodes: {}", v.swarm.nodes);
        println!("  Node Address: {}", v.swarm.node_addr);
        if v.swarm.control_available {
            println!("  Raft Applied Index: {}", v.swarm.raft_applied_index);
            println!("  Store Digest: {}", v.swarm.store_digest);
        }
    }
    println!(" Load Balancer: {}", v.load_balancer);
    println!(" Cgroup Version: {}", v.cgroup_version);
    println!(" Kernel Version: {}", v.kernel_version);
    println!(" Operating System: {}", v.operating_system);
    println!(" Architecture: {}", v.architecture);
    println!(" CPUs: {}", v.ncpu);
    println!(" Total Memory: {}", human_bytes(v.mem_total));
    println!(" Name: {}", v.name);
    println!(" Shoal Root Dir: {}", v.shoal_root_dir);
    println!(" Daemon PID: {}", v.daemon_pid);
}
