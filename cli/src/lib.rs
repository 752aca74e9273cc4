//! `shoal`: the command line and the daemon in one binary. The binary
//! (`src/main.rs`) is only its allocator and [`main`]; everything else is
//! this library, so that the fuzz targets (`fuzz/`) can reach the compose
//! loader ([`fuzzing`]).
//!
//! # Layout
//! - `cmd`: the command tree (clap) and one thin client module per noun.
//! - `daemon`: `shoal daemon`: starts a node (`shoal_node`, which composes
//!   the worker, always, and the manager, by role) and serves the local API
//!   on a Unix socket.
//! - `client`, `host`: how a command reaches its daemon.
//! - `compose`: compose files for `shoal stack deploy`.
//! - `spec`: service-spec values as users write them (flags and compose
//!   keys alike), and the default policies.
//! - `output`: tables, JSON and `--format`.
//! - `web`: `shoal daemon --web-addr`, a live web view of the cluster.

mod client;
mod cmd;
mod compose;
mod daemon;
mod docker_api;
mod host;
mod output;
mod registry_auth;
mod spec;
mod web;

/// The compose loader's fuzz harness (not an API).
#[doc(hidden)]
pub use compose::fuzzing;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// Runs `shoal` with the process's arguments.
pub fn main() -> ExitCode {
    // The process engine's task shim re-execs this binary: run it before
    // clap or any thread starts (it forks and enters namespaces).
    if let Some(code) = shoal_worker::exec::process::hidden_main() {
        std::process::exit(code);
    }
    let matches = cmd::Cli::command().get_matches();
    let cli = match cmd::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("Error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
