//! The command tree, mirroring Docker's: `swarm`, `node`, `service`,
//! `stack`, `network`, `secret`, `config`, the node-local `image` and
//! `volume`, plus `daemon`, `version`, `info`, `events` and `completion`.
//! Each noun's client lives in its own module.

mod blob;
mod common;
mod config;
mod events;
mod filter;
mod image;
mod info;
mod network;
mod node;
mod payload;
mod secret;
mod service;
mod stack;
mod stored;
mod swarm;
mod version;
mod volume;

use clap::{Parser, Subcommand};

use crate::daemon::DaemonArgs;
use crate::host::{DEFAULT_HOST, Host};

/// Shoal: a Swarm-mode cluster orchestrator.
///
/// Same nouns, commands and compose files as `docker swarm`; one binary,
/// Raft-replicated managers, mutual TLS everywhere, and a routing mesh that
/// works with or without IPVS.
#[derive(Debug, Parser)]
#[command(
    name = "shoal",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Daemon socket to connect to (or to serve, for `shoal daemon`). Given
    /// before the command, as Docker's `-H`: after it, `--host` is the
    /// command's own (`service create --host db:10.0.0.5`).
    #[arg(short = 'H', long = "host", env = "SHOAL_HOST", default_value = DEFAULT_HOST)]
    pub host: Host,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Shoal node: the worker always, the manager when the node is one.
    Daemon(DaemonArgs),
    /// Show the Shoal version information of the client and the daemon.
    Version(version::VersionArgs),
    /// Display system-wide information.
    Info(info::InfoArgs),
    /// Get real-time events from the cluster.
    Events(events::EventsArgs),
    /// Manage the swarm.
    #[command(subcommand)]
    Swarm(swarm::SwarmCommand),
    /// Manage swarm nodes.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Manage swarm services.
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Manage stacks (compose v3 files).
    #[command(subcommand)]
    Stack(stack::StackCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Manage swarm secrets.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Manage swarm configs.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Manage this node's images (embedded engine).
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Manage this node's volumes (embedded engine).
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Daemon(args) => crate::daemon::run(args, cli.host).await,
        Command::Version(args) => version::run(&cli.host, args).await,
        Command::Info(args) => info::run(&cli.host, args).await,
        Command::Completion { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            // Generated into memory first: a reader that stops early
            // (`| head`) is not an error worth a panic.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "shoal", &mut script);
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            }
        }
        Command::Node(cmd) => node::run(&cli.host, cmd).await,
        Command::Network(cmd) => network::run(&cli.host, cmd).await,
        Command::Secret(cmd) => secret::run(&cli.host, cmd).await,
        Command::Config(cmd) => config::run(&cli.host, cmd).await,
        Command::Image(cmd) => image::run(&cli.host, cmd).await,
        Command::Volume(cmd) => volume::run(&cli.host, cmd).await,
        Command::Swarm(cmd) => swarm::run(&cli.host, cmd).await,
        Command::Service(cmd) => service::run(&cli.host, cmd).await,
        Command::Stack(cmd) => stack::run(&cli.host, cmd).await,
        Command::Events(args) => events::run(&cli.host, args).await,
    }
}
