//! `shoal version`: the client's build, then the daemon's, like
//! `docker version`. The client part prints even when no daemon answers;
//! the command then fails.

use serde::Serialize;
use shoal_proto::build_info;
use shoal_proto::local::{VersionInfo, VersionRequest, local_client::LocalClient};

use crate::client;
use crate::host::Host;
use crate::output::{Format, print_json};

/// `shoal version` flags.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Part {
    version: String,
    api_version: u32,
    git_commit: String,
    rust: String,
    os: String,
    arch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_version: Option<String>,
}

impl From<VersionInfo> for Part {
    fn from(v: VersionInfo) -> Self {
        Part {
            version: v.version,
            api_version: v.api_version,
            git_commit: v.git_commit,
            rust: v.rustc,
            os: v.os,
            arch: v.arch,
            engine: None,
            kernel_version: None,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Versions {
    client: Part,
    server: Option<Part>,
}

/// Runs `shoal version`.
pub async fn run(host: &Host, args: VersionArgs) -> anyhow::Result<()> {
    let client_part = Part::from(build_info::version_info());
    let server = fetch(host).await;
    let (server_part, error) = match server {
        Ok(part) => (Some(part), None),
        Err(err) => (None, Some(err)),
    };
    let versions = Versions {
        client: client_part,
        server: server_part,
    };
    match args.format {
        Format::Json => print_json(&versions)?,
        Format::Text => print_text(&versions),
    }
    match error {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

async fn fetch(host: &Host) -> anyhow::Result<Part> {
    let channel = client::connect(host).await?;
    let reply = LocalClient::new(channel)
        .version(VersionRequest {})
        .await
        .map_err(client::status_error)?
        .into_inner();
    let mut part = Part::from(reply.daemon.unwrap_or_default());
    part.engine = Some(match reply.engine_version.as_str() {
        "" => reply.engine,
        v => format!("{} {v}", reply.engine),
    });
    part.kernel_version = Some(reply.kernel_version);
    Ok(part)
}

fn print_text(v: &Versions) {
    println!("Client:");
    print_part(&v.client);
    if let Some(server) = &v.server {
        println!();
        println!("Server: Shoal daemon");
        print_part(server);
    }
}

fn print_part(p: &Part) {
    println!(" Version:           {}", p.version);
    println!(" API version:       {}", p.api_version);
    println!(" Git commit:        {}", p.git_commit);
    println!(" Rust:              {}", p.rust);
    println!(" OS/Arch:           {}/{}", p.os, p.arch);
    if let Some(engine) = &p.engine {
        println!(" Engine:            {engine}");
    }
    if let Some(kernel) = &p.kernel_version {
        println!(" Kernel version:    {kernel}");
    }
}
