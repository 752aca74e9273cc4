//! `shoal swarm ...`: init, join, join-token and leave, with Docker's
//! flags and words. Init, join and leave are asked of the local daemon;
//! join-token reads (and rotates) the tokens through the control API.

use clap::{Args, Subcommand};
use shoal_proto::control::control_client::ControlClient;
use shoal_proto::control::{GetClusterRequest, GetNodeRequest, UpdateClusterRequest};
use shoal_proto::listing::Joined as _;
use shoal_proto::local::local_client::LocalClient;
use shoal_proto::local::{InfoRequest, SwarmInitRequest, SwarmJoinRequest, SwarmLeaveRequest};

use crate::client::{self, status_error};
use crate::host::Host;

mod backup;

/// `shoal swarm ...`
#[derive(Debug, Subcommand)]
pub enum SwarmCommand {
    /// Initialize a swarm: this node becomes its first manager.
    Init(InitArgs),
    /// Join a swarm as a worker or a manager, by token.
    Join(JoinArgs),
    /// Manage join tokens.
    #[command(name = "join-token")]
    JoinToken(JoinTokenArgs),
    /// Leave the swarm.
    Leave(LeaveArgs),
    /// Update the swarm.
    Update(UpdateArgs),
    /// Unlock a locked manager (reads the key from standard input).
    Unlock,
    /// Manage the unlock key.
    #[command(name = "unlock-key")]
    UnlockKey(UnlockKeyArgs),
    /// Display and rotate the root CA.
    Ca(CaArgs),
    /// Write a sealed backup of the swarm's services, networks, secrets,
    /// configs and settings (run on a manager, while it serves).
    Backup(backup::BackupArgs),
}

/// `swarm init` flags.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Advertised address (format: <ip|interface>[:port]).
    #[arg(long, default_value = "")]
    advertise_addr: String,
    /// Listen address (format: <ip|interface>[:port]).
    #[arg(long, default_value = "0.0.0.0:2377")]
    listen_addr: String,
    /// Validity period for node certificates (e.g. 2160h, 90m, 30s).
    #[arg(long, value_parser = parse_duration)]
    cert_expiry: Option<std::time::Duration>,
    /// Task history retention limit.
    #[arg(long, default_value_t = 5)]
    task_history_limit: i64,
    /// Default address pool in CIDR format (repeatable).
    #[arg(long = "default-addr-pool")]
    default_addr_pool: Vec<String>,
    /// Subnet mask length of networks allocated from the default pool.
    #[arg(long = "default-addr-pool-mask-length", default_value_t = 24)]
    subnet_size: u32,
    /// Port used for data path traffic (VXLAN).
    #[arg(long, default_value_t = 4789)]
    data_path_port: u32,
    /// Enable manager autolocking (requiring an unlock key to start a stopped manager).
    #[arg(long)]
    autolock: bool,
    /// Force create a new cluster from current state.
    #[arg(long)]
    force_new_cluster: bool,
    /// With --force-new-cluster: start the new cluster from a backup made
    /// by `swarm backup`.
    #[arg(long, value_name = "FILE", requires = "force_new_cluster")]
    restore: Option<std::path::PathBuf>,
    /// The backup's passphrase, from this file ("-" for standard input;
    /// default: $SHOAL_BACKUP_PASSPHRASE).
    #[arg(long, value_name = "FILE", requires = "restore")]
    passphrase_file: Option<std::path::PathBuf>,
}

/// `swarm join` flags.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Token for entry into the swarm.
    #[arg(long)]
    token: String,
    /// Advertised address (format: <ip|interface>[:port]).
    #[arg(long, default_value = "")]
    advertise_addr: String,
    /// Listen address (format: <ip|interface>[:port]).
    #[arg(long, default_value = "0.0.0.0:2377")]
    listen_addr: String,
    /// A manager's address (HOST:PORT).
    remote: String,
}

/// `swarm join-token` flags.
#[derive(Debug, Args)]
pub struct JoinTokenArgs {
    /// Only display the token.
    #[arg(short, long)]
    quiet: bool,
    /// Rotate the join token.
    #[arg(long)]
    rotate: bool,
    /// `worker` or `manager`.
    #[arg(value_parser = ["worker", "manager"])]
    role: String,
}

/// `swarm update` flags.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Change manager autolocking (true|false).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    autolock: Option<bool>,
    /// Validity period for node certificates (e.g. 2160h, 90m, 30s).
    #[arg(long, value_parser = parse_duration)]
    cert_expiry: Option<std::time::Duration>,
    /// Task history retention limit.
    #[arg(long)]
    task_history_limit: Option<i64>,
}

/// `swarm unlock-key` flags.
#[derive(Debug, Args)]
pub struct UnlockKeyArgs {
    /// Only display the key.
    #[arg(short, long)]
    quiet: bool,
    /// Rotate the unlock key.
    #[arg(long)]
    rotate: bool,
}

/// `swarm ca` flags.
#[derive(Debug, Args)]
pub struct CaArgs {
    /// Rotate the swarm CA: a new root, every node's certificate reissued
    /// under it, without downtime.
    #[arg(long)]
    rotate: bool,
    /// Exit immediately instead of waiting for the rotation to finish.
    #[arg(short, long)]
    detach: bool,
    /// Suppress progress output.
    #[arg(short, long)]
    quiet: bool,
}

/// `swarm leave` flags.
#[derive(Debug, Args)]
pub struct LeaveArgs {
    /// Force this node to leave the swarm, ignoring warnings.
    #[arg(short, long)]
    force: bool,
}

/// Docker-style durations: `90s`, `30m`, `2160h`, `1h30m`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        number.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(format!("invalid duration {text:?}: use s, m or h units")),
        };
    }
    if !number.is_empty() || total == 0 {
        return Err(format!("invalid duration {text:?}: e.g. 90s, 30m, 2160h"));
    }
    Ok(std::time::Duration::from_secs(total))
}

/// Runs `shoal swarm ...`.
pub async fn run(host: &Host, cmd: SwarmCommand) -> anyhow::Result<()> {
    match cmd {
        SwarmCommand::Init(args) => init(host, args).await,
        SwarmCommand::Join(args) => join(host, args).await,
        SwarmCommand::JoinToken(args) => join_token(host, args).await,
        SwarmCommand::Leave(args) => leave(host, args).await,
        SwarmCommand::Ca(args) => ca(host, args).await,
        SwarmCommand::Update(args) => update(host, args).await,
        SwarmCommand::Unlock => unlock(host).await,
        SwarmCommand::UnlockKey(args) => unlock_key(host, args).await,
        SwarmCommand::Backup(args) => backup::backup(host, args).await,
    }
}

async fn init(host: &Host, args: InitArgs) -> anyhow::Result<()> {
    let request = SwarmInitRequest {
        listen_addr: args.listen_addr,
        advertise_addr: args.advertise_addr,
        force_new_cluster: args.force_new_cluster,
        autolock: args.autolock,
        cert_expiry_seconds: args.cert_expiry.map_or(0, |d| d.as_secs()),
        task_history_limit: args.task_history_limit,
        default_addr_pool: args.default_addr_pool,
        subnet_size: args.subnet_size,
        data_path_port: args.data_path_port,
    };
    let reply = match &args.restore {
        Some(file) => {
            let init = SwarmInitRequest {
                force_new_cluster: false,
                ..request
            };
            backup::restore(host, init, file, args.passphrase_file.as_deref()).await?
        }
        None => LocalClient::new(client::connect(host).await?)
            .swarm_init(request)
            .await
            .map_err(status_error)?
            .into_inner(),
    };
    println!(
        "Swarm initialized: current node ({}) is now a manager.",
        reply.node_id
    );
    println!();
    println!("To add a worker to this swarm, run the following command:");
    println!();
    println!(
        "    shoal swarm join --token {} {}",
        reply.worker_token, reply.manager_addr
    );
    println!();
    println!(
        "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions."
    );
    println!();
    if !reply.unlock_key.is_empty() {
        print_unlock_key(&reply.unlock_key);
    }
    Ok(())
}

async fn join(host: &Host, args: JoinArgs) -> anyhow::Result<()> {
    let mut local = LocalClient::new(client::connect(host).await?);
    let reply = local
        .swarm_join(SwarmJoinRequest {
            remote_addr: args.remote,
            token: args.token,
            listen_addr: args.listen_addr,
            advertise_addr: args.advertise_addr,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    println!("This node joined a swarm as a {}.", reply.role);
    Ok(())
}

async fn join_token(host: &Host, args: JoinTokenArgs) -> anyhow::Result<()> {
    let channel = client::connect(host).await?;
    let mut control = ControlClient::new(channel.clone());
    if args.rotate {
        control
            .update_cluster(UpdateClusterRequest {
                rotate_worker_token: args.role == "worker",
                rotate_manager_token: args.role == "manager",
                ..Default::default()
            })
            .await
            .map_err(status_error)?;
        if !args.quiet {
            println!("Successfully rotated {} join token.", args.role);
            println!();
        }
    }
    let cluster = control
        .get_cluster(GetClusterRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .cluster;
    let tokens = cluster.and_then(|c| c.join_tokens).unwrap_or_default();
    let token = if args.role == "manager" {
        tokens.manager
    } else {
        tokens.worker
    };
    if args.quiet {
        println!("{token}");
        return Ok(());
    }
    let info = LocalClient::new(channel)
        .info(InfoRequest { brief: true })
        .await
        .map_err(status_error)?
        .into_inner();
    let node_id = info.swarm.map(|s| s.node_id).unwrap_or_default();
    let node = control
        .get_node(GetNodeRequest { node_id })
        .await
        .map_err(status_error)?
        .into_inner()
        .node;
    let addr = node
        .and_then(|n| n.manager_status)
        .map(|m| m.addr)
        .unwrap_or_default();
    println!(
        "To add a {} to this swarm, run the following command:",
        args.role
    );
    println!();
    println!("    shoal swarm join --token {token} {addr}");
    println!();
    Ok(())
}

async fn ca(host: &Host, args: CaArgs) -> anyhow::Result<()> {
    let mut control = ControlClient::new(client::connect(host).await?);
    let get = |c: &mut ControlClient<tonic::transport::Channel>| {
        let mut c = c.clone();
        async move {
            c.get_cluster(GetClusterRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .cluster
                .ok_or_else(|| anyhow::anyhow!("the manager returned no cluster"))
        }
    };
    let mut cluster = get(&mut control).await?;
    if args.rotate {
        let mut spec = cluster.spec.clone().unwrap_or_default();
        let ca = spec.ca_config.get_or_insert_default();
        ca.force_rotate += 1;
        let version = cluster.meta.as_ref().map_or(0, |m| m.version);
        control
            .update_cluster(UpdateClusterRequest {
                version,
                spec: Some(spec),
                ..Default::default()
            })
            .await
            .map_err(status_error)?;
        if args.detach {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let old = cluster
            .root_ca
            .as_ref()
            .map(|r| r.ca_cert_digest.clone())
            .unwrap_or_default();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            cluster = get(&mut control).await?;
            let root = cluster.root_ca.clone().unwrap_or_default();
            if root.root_rotation.is_none() && root.ca_cert_digest != old {
                break;
            }
            if !args.quiet {
                let nodes = control
                    .list_nodes(shoal_proto::control::ListNodesRequest::default())
                    .joined()
                    .await
                    .map_err(status_error)?
                    .nodes;
                let digest = root
                    .root_rotation
                    .as_ref()
                    .and_then(|r| first_cert_digest(&r.ca_cert))
                    .unwrap_or_default();
                let done = nodes
                    .iter()
                    .filter(|n| {
                        n.certificate
                            .as_ref()
                            .is_some_and(|c| !digest.is_empty() && c.issuer_digest == digest)
                    })
                    .count();
                eprint!("\rrotated TLS certificates: {done}/{} nodes", nodes.len());
                if started.elapsed() > std::time::Duration::from_secs(60) {
                    eprint!(" (waiting for every node, including any that is down)");
                }
            }
        }
        if !args.quiet {
            eprintln!("\rrotated CA certificates: done{:30}", "");
        }
    }
    let root = cluster.root_ca.unwrap_or_default();
    print!("{}", String::from_utf8_lossy(&root.ca_cert));
    Ok(())
}

/// The `sha256:<hex>` digest of the first certificate in a PEM bundle, as
/// the cluster records issuers.
fn first_cert_digest(pem: &[u8]) -> Option<String> {
    let certs = shoal_proto::tls::certs_from_pem(&String::from_utf8_lossy(pem)).ok()?;
    Some(shoal_proto::token::CaDigest::of_der(certs.first()?).to_string())
}

fn print_unlock_key(key: &str) {
    println!("To unlock a swarm manager after it restarts, run the `shoal swarm unlock`");
    println!("command and provide the following key:");
    println!();
    println!("    {key}");
    println!();
    println!("Please remember to store this key in a password manager, since without it you");
    println!("will not be able to restart the manager.");
}

async fn unlock(host: &Host) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let mut local = LocalClient::new(client::connect(host).await?);
    if std::io::stdin().is_terminal() {
        eprint!("Please enter unlock key: ");
        std::io::stderr().flush()?;
    }
    let mut key = String::new();
    std::io::stdin().lock().read_line(&mut key)?;
    local
        .swarm_unlock(shoal_proto::local::SwarmUnlockRequest {
            unlock_key: key.trim().to_string(),
        })
        .await
        .map_err(status_error)?;
    Ok(())
}

async fn unlock_key(host: &Host, args: UnlockKeyArgs) -> anyhow::Result<()> {
    let mut control = ControlClient::new(client::connect(host).await?);
    if args.rotate {
        let cluster = control
            .get_cluster(GetClusterRequest {})
            .await
            .map_err(status_error)?
            .into_inner()
            .cluster
            .unwrap_or_default();
        let on = cluster
            .spec
            .as_ref()
            .and_then(|s| s.encryption.as_ref())
            .is_some_and(|e| e.auto_lock_managers);
        anyhow::ensure!(on, "Cannot rotate because autolock is not turned on");
        control
            .update_cluster(UpdateClusterRequest {
                rotate_unlock_key: true,
                ..Default::default()
            })
            .await
            .map_err(status_error)?;
        if !args.quiet {
            println!("Successfully rotated manager unlock key.");
            println!();
        }
    }
    let key = control
        .get_unlock_key(shoal_proto::control::GetUnlockKeyRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .unlock_key;
    if key.is_empty() {
        if args.quiet {
            return Ok(());
        }
        println!("No unlock key is set.");
        return Ok(());
    }
    if args.quiet {
        println!("{key}");
    } else {
        print_unlock_key(&key);
    }
    Ok(())
}

async fn update(host: &Host, args: UpdateArgs) -> anyhow::Result<()> {
    let mut control = ControlClient::new(client::connect(host).await?);
    let cluster = control
        .get_cluster(GetClusterRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .cluster
        .unwrap_or_default();
    let mut spec = cluster.spec.clone().unwrap_or_default();
    let was_locked = spec
        .encryption
        .as_ref()
        .is_some_and(|e| e.auto_lock_managers);
    if let Some(on) = args.autolock {
        spec.encryption.get_or_insert_default().auto_lock_managers = on;
    }
    if let Some(expiry) = args.cert_expiry {
        spec.ca_config.get_or_insert_default().node_cert_expiry =
            prost_types::Duration::try_from(expiry).ok();
    }
    if let Some(limit) = args.task_history_limit {
        spec.orchestration
            .get_or_insert_default()
            .task_history_retention_limit = limit;
    }
    let version = cluster.meta.as_ref().map_or(0, |m| m.version);
    control
        .update_cluster(UpdateClusterRequest {
            version,
            spec: Some(spec),
            ..Default::default()
        })
        .await
        .map_err(status_error)?;
    println!("Swarm updated.");
    if args.autolock == Some(true) && !was_locked {
        let key = control
            .get_unlock_key(shoal_proto::control::GetUnlockKeyRequest {})
            .await
            .map_err(status_error)?
            .into_inner()
            .unlock_key;
        print_unlock_key(&key);
    }
    Ok(())
}

async fn leave(host: &Host, args: LeaveArgs) -> anyhow::Result<()> {
    let mut local = LocalClient::new(client::connect(host).await?);
    local
        .swarm_leave(SwarmLeaveRequest { force: args.force })
        .await
        .map_err(status_error)?;
    println!("Node left the swarm.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_like_docker() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("2160h").unwrap(),
            Duration::from_secs(2160 * 3600)
        );
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
