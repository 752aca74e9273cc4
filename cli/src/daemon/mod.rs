//! `shoal daemon`: one per machine (or per network namespace in tests).
//!
//! The node itself (state dir, engine, swarm membership, manager and
//! worker) is `shoal_node`'s: [`Node::start`] starts it in one call. What
//! is left here is the daemon's faces: its flags, the local socket and the
//! `Local` gRPC service over the node (`local_api`, `socket`), the Docker
//! API, web view and metrics over HTTP, and signals.
//!
//! Start-up order matters: the node first (it takes the state dir's lock:
//! two daemons must never share state), then the socket last, so a client
//! that connects finds a daemon that is ready. One shutdown tree: the
//! root token, the servers' branch under it, the node's under it too.
//! SIGTERM/SIGINT cancel the servers' branch: they drain, then the root
//! stops the node, which is waited for; the socket file is removed and the
//! lock released.

mod local_api;
mod metrics;
mod socket;

use std::path::PathBuf;
use std::time::SystemTime;

use shoal_manager::controlapi::ControlApi;
use shoal_manager::logbroker::LogsApi;
use shoal_node::{Node, NodeConfig};
use shoal_proto::local::local_server::LocalServer;
use shoal_proto::logs::logs_server::LogsServer;
use shoal_proto::shutdown::{CancellationToken, TaskTracker, cancel_on_signal};
use shoal_proto::telemetry::{self, LogFormat};
use shoal_worker::engine_choice::{DEFAULT_DOCKER_SOCKET, EngineChoice};

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

    let engine: EngineChoice = args.engine.parse()?;
    // The shutdown tree's root, and the servers' branch: a signal cancels
    // the servers first, so requests in flight finish while the node still
    // runs; then the root stops the node.
    let shutdown = CancellationToken::new();
    let serving = shutdown.child_token();
    let signals = tokio::spawn(cancel_on_signal(serving.clone()));
    let config = NodeConfig {
        state_dir: args.state_dir.clone(),
        engine,
        docker_socket: args.docker_socket.clone(),
        insecure_registries: args.insecure_registries.clone(),
    };
    let node = Node::start(config, &shutdown).await?;
    let stores = local_api::Stores::new(
        node.engine().kind,
        node.state_dir().to_path_buf(),
        node.images().cloned(),
        node.volumes().cloned(),
    );
    let slot = node.slot().clone();

    let (listener, socket_file) = socket::bind(&host)?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    tracing::info!(%host, "serving the local API");
    let api = local_api::LocalApi::new(
        node.state_dir().to_path_buf(),
        node.engine().clone(),
        SystemTime::now(),
        node.swarm().clone(),
        stores,
    );
    // The HTTP faces, each on a branch of the shutdown tree; waited for
    // before the node stops, since they call it.
    let faces = TaskTracker::new();
    let docker_api_file = match &args.docker_api {
        Some(at) => {
            let (listener, file) = socket::bind(at)?;
            tracing::info!(host = %at, "serving the Docker Engine API");
            let daemon =
                crate::docker_api::Daemon::new(crate::docker_api::channel_to(host.socket()));
            faces.spawn(crate::docker_api::serve(
                listener,
                daemon,
                serving.child_token(),
            ));
            Some(file)
        }
        None => None,
    };
    if let Some(addr) = args.web_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot serve the web view on {addr}: {e}"))?;
        tracing::info!(%addr, "serving the web view");
        let channel = crate::docker_api::channel_to(host.socket());
        faces.spawn(crate::web::serve(listener, channel, serving.child_token()));
    }
    if let Some(addr) = args.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
        tracing::info!(%addr, "serving Prometheus metrics on /metrics");
        let registry = metrics::registry(slot.clone());
        faces.spawn(metrics::serve(listener, registry, serving.child_token()));
    }
    faces.close();
    let served = tonic::transport::Server::builder()
        .add_service(LocalServer::new(api))
        .add_service(ControlApi::new(slot.clone()).server())
        .add_service(LogsServer::new(LogsApi::new(slot)))
        .serve_with_incoming_shutdown(incoming, serving.clone().cancelled_owned())
        .await;

    serving.cancel();
    faces.wait().await;
    drop(docker_api_file);
    shutdown.cancel();
    node.stop().await;
    if let Ok(Some(signal)) = signals.await {
        tracing::info!(signal, "shutting down");
    }
    drop(socket_file);
    served?;
    tracing::info!("shoal daemon stopped");
    Ok(())
}
