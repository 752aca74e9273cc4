//! `shoal daemon`: one per machine (or per network namespace in tests).
//!
//! Start-up order matters: take the state dir's lock first (two daemons
//! must never share state), resolve the engine, then bind the socket last
//! so a client that connects finds a daemon that is ready. SIGTERM/SIGINT
//! cancel the shutdown tree; the server drains, the socket file is removed
//! and the lock released.

mod addr;
mod local_api;
mod metrics;
mod renew;
mod socket;
mod state_dir;
mod swarm;
mod swarm_file;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use shoal_manager::controlapi::{ControlApi, ManagerSlot};
use shoal_manager::logbroker::LogsApi;
use shoal_proto::local::local_server::LocalServer;
use shoal_proto::logs::logs_server::LogsServer;
use shoal_proto::shutdown::{CancellationToken, cancel_on_signal};
use shoal_proto::telemetry::{self, LogFormat};
use shoal_worker::engine::{self, DEFAULT_DOCKER_SOCKET, EngineChoice, EngineKind};
use shoal_worker::image::{ImageStore, RegistryConfig};
use shoal_worker::volume::VolumeStore;

use crate::host::Host;

/// `shoal daemon` flags.
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Where this node keeps its state (certificates, Raft log, tasks).
    #[arg(long, env = "SHOAL_STATE_DIR", default_value = "/var/lib/shoal")]
    state_dir: PathBuf,

    /// Engine that runs tasks: auto picks docker when its socket answers,
    /// else embedded (OCI images). `process` runs host commands without an
    /// image, and only when asked for.
    #[arg(long, default_value = "auto", value_parser = ["auto", "docker", "embedded", "process", "sim"])]
    engine: String,

    /// A registry (host:port) the embedded engine reaches over plain HTTP,
    /// as dockerd's --insecure-registry; repeatable. Loopback registries
    /// always are.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure_registries: Vec<String>,

    /// The Docker Engine's socket, for the docker engine.
    #[arg(long, default_value = DEFAULT_DOCKER_SOCKET)]
    docker_socket: PathBuf,

    /// Also serve the Docker Engine API's swarm subset on this Unix socket
    /// (mode 0600), so the `docker` CLI and SDKs drive the cluster:
    /// `DOCKER_HOST=unix:///run/shoal/docker.sock docker service ls`.
    #[arg(long, value_name = "unix:///PATH")]
    docker_api: Option<Host>,

    /// Serve Prometheus metrics on GET /metrics at this TCP address, e.g.
    /// 127.0.0.1:9323 (plain HTTP, no authentication: they show the
    /// cluster's shape and activity, not its data).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_addr: Option<std::net::SocketAddr>,

    /// Serve a live, read-only web view of the cluster (a column per node,
    /// a card per task) at this TCP address, e.g. 127.0.0.1:8080. Only a
    /// manager has data to show (plain HTTP, no authentication: listen
    /// where only trusted users reach it).
    #[arg(long, value_name = "ADDR:PORT")]
    web_addr: Option<std::net::SocketAddr>,

    /// Default log level (overridden by SHOAL_LOG, same syntax as RUST_LOG).
    #[arg(long, default_value = "info")]
    log_level: String,

    /// Log lines as text or JSON.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(args: DaemonArgs, host: Host) -> anyhow::Result<()> {
    let format = if args.log_format == "json" {
        LogFormat::Json
    } else {
        LogFormat::Text
    };
    telemetry::init(&args.log_level, format);

    let state = state_dir::StateDir::open(&args.state_dir)?;
    let choice: EngineChoice = args.engine.parse()?;
    let engine = engine::resolve(choice, &args.docker_socket).await?;
    tracing::info!(
        version = shoal_proto::build_info::VERSION,
        commit = shoal_proto::build_info::GIT_COMMIT,
        state_dir = %state.path().display(),
        engine = %engine.display(),
        "shoal daemon starting"
    );

    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(cancel_on_signal(shutdown.clone()));

    shoal_proto::tls::install_default_provider();
    let images = match engine.kind {
        EngineKind::Embedded => Some(Arc::new(ImageStore::open(
            state.path().join("images"),
            RegistryConfig {
                insecure: args.insecure_registries.clone(),
            },
        )?)),
        _ => None,
    };
    // One volume store for the engine's mounts and `shoal volume`.
    let volumes = match engine.kind {
        EngineKind::Embedded => Some(Arc::new(VolumeStore::open(state.path().join("volumes"))?)),
        _ => None,
    };
    let node = local_api::Node::new(
        engine.kind,
        state.path().to_path_buf(),
        images.clone(),
        volumes.clone(),
    );
    let slot = ManagerSlot::default();
    let swarm = swarm::SwarmNode::new(
        state.path().to_path_buf(),
        engine.clone(),
        args.docker_socket.clone(),
        images,
        volumes,
        slot.clone(),
    );
    swarm.resume().await?;

    let (listener, socket_file) = socket::bind(&host)?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    tracing::info!(%host, "serving the local API");
    let api = local_api::LocalApi::new(
        state.path().to_path_buf(),
        engine,
        SystemTime::now(),
        swarm.clone(),
        node,
    );
    let docker_api = match &args.docker_api {
        Some(at) => {
            let (listener, file) = socket::bind(at)?;
            tracing::info!(host = %at, "serving the Docker Engine API");
            let daemon =
                crate::docker_api::Daemon::new(crate::docker_api::channel_to(host.socket()));
            let served = tokio::spawn(crate::docker_api::serve(listener, daemon, shutdown.clone()));
            Some((served, file))
        }
        None => None,
    };
    let web = match args.web_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot serve the web view on {addr}: {e}"))?;
            tracing::info!(%addr, "serving the web view");
            let channel = crate::docker_api::channel_to(host.socket());
            Some(tokio::spawn(crate::web::serve(
                listener,
                channel,
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let metrics_served = match args.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
            tracing::info!(%addr, "serving Prometheus metrics on /metrics");
            let registry = metrics::registry(slot.clone());
            Some(tokio::spawn(metrics::serve(
                listener,
                registry,
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let served = tonic::transport::Server::builder()
        .add_service(LocalServer::new(api))
        .add_service(ControlApi::new(slot.clone()).server())
        .add_service(LogsServer::new(LogsApi::new(slot)))
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned())
        .await;

    shutdown.cancel();
    if let Some((served, file)) = docker_api {
        let _ = served.await;
        drop(file);
    }
    if let Some(served) = web {
        let _ = served.await;
    }
    if let Some(served) = metrics_served {
        let _ = served.await;
    }
    swarm.stop().await;
    if let Ok(Some(signal)) = signals.await {
        tracing::info!(signal, "shutting down");
    }
    drop(socket_file);
    drop(state);
    served?;
    tracing::info!("shoal daemon stopped");
    Ok(())
}
