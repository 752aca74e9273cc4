//! `shoal volume create|ls|inspect|rm|prune`, as `docker volume`, on the
//! node the daemon runs: its embedded engine's `local` volumes. A node
//! whose engine is Docker answers with the `docker volume` command to use.

pub(crate) mod view;

#[cfg(test)]
mod tests;

use crate::cmd::common::local;
use anyhow::bail;
use clap::{Args, Subcommand};
use shoal_proto::local::{
    VolumeCreateRequest, VolumeInspectRequest, VolumeListRequest, VolumePruneRequest,
    VolumePruneResponse, VolumeRemoveRequest,
};

use crate::client::status_error;
use crate::host::Host;
use crate::output::listing::render_inspect;

use super::common::{Failures, InspectFormat, ListArgs, confirm};
use super::filter::Filters;
use super::image::view::human_size;
use super::payload;

/// `shoal volume ...`
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more volumes.
    Inspect(InspectArgs),
    /// Remove one or more volumes.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes.
    Prune(PruneArgs),
}

/// `volume create` flags.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name.
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume (`key=value`).
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// Set driver specific options (`type`, `device`, `o`).
    #[arg(short, long = "opt", value_name = "OPT")]
    pub opts: Vec<String>,
    /// Specify volume name.
    #[arg(long = "name", hide = true, conflicts_with = "volume")]
    pub name: Option<String>,
    /// The volume's name; a random one when not given.
    #[arg(value_name = "VOLUME")]
    pub volume: Option<String>,
}

/// `volume inspect` flags.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub format: InspectFormat,
    /// Volume names.
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

/// `volume rm` flags.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes (no error for missing ones).
    #[arg(short, long)]
    pub force: bool,
    /// Volume names.
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

/// `volume prune` flags.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// What `volume prune` asks without `--force`.
pub const PRUNE_WARNING: &str = "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N]";
/// What `volume prune -a` asks without `--force`.
pub const PRUNE_ALL_WARNING: &str = "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N]";

/// Runs `shoal volume ...`.
pub async fn run(host: &Host, cmd: VolumeCommand) -> anyhow::Result<()> {
    match cmd {
        VolumeCommand::Create(args) => create(host, args).await,
        VolumeCommand::Ls(args) => ls(host, args).await,
        VolumeCommand::Inspect(args) => inspect(host, args).await,
        VolumeCommand::Rm(args) => rm(host, args).await,
        VolumeCommand::Prune(args) => prune(host, args).await,
    }
}

/// The request `volume create` sends; flag mistakes fail here.
pub fn create_request(args: CreateArgs) -> anyhow::Result<VolumeCreateRequest> {
    let options = payload::labels(&args.opts).map_err(|e| anyhow::anyhow!("invalid --opt: {e}"))?;
    let name = args.volume.or(args.name).unwrap_or_default();
    if args.driver.is_empty() {
        bail!("--driver must not be empty");
    }
    Ok(VolumeCreateRequest {
        name,
        driver: args.driver,
        labels: payload::labels(&args.labels)?,
        options,
    })
}

async fn create(host: &Host, args: CreateArgs) -> anyhow::Result<()> {
    let request = create_request(args)?;
    let volume = local(host)
        .await?
        .volume_create(request)
        .await
        .map_err(status_error)?
        .into_inner()
        .volume
        .unwrap_or_default();
    println!("{}", volume.name);
    Ok(())
}

async fn ls(host: &Host, args: ListArgs) -> anyhow::Result<()> {
    let filters = Filters::new(args.filter, view::FILTER_KEYS)?;
    // A bad --format fails before the daemon is asked anything.
    view::LISTING.template(args.format.as_deref())?;
    let volumes = local(host)
        .await?
        .volume_list(VolumeListRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .volumes;
    let volumes = view::select(volumes, &filters)?;
    print!(
        "{}",
        view::render_list(&volumes, args.quiet, args.format.as_deref())?
    );
    Ok(())
}

async fn inspect(host: &Host, args: InspectArgs) -> anyhow::Result<()> {
    let mut api = local(host).await?;
    let mut failures = Failures::default();
    let mut views = Vec::new();
    for name in args.volumes {
        let got = api
            .volume_inspect(VolumeInspectRequest { name })
            .await
            .map_err(status_error);
        if let Some(reply) = failures.note(got) {
            views.push(view::inspect_view(
                &reply.into_inner().volume.unwrap_or_default(),
            ));
        }
    }
    print!("{}", render_inspect(args.format.format.as_deref(), &views)?);
    failures.finish()
}

async fn rm(host: &Host, args: RmArgs) -> anyhow::Result<()> {
    let mut api = local(host).await?;
    let mut failures = Failures::default();
    for name in args.volumes {
        let removed = api
            .volume_remove(VolumeRemoveRequest {
                name: name.clone(),
                force: args.force,
            })
            .await
            .map_err(status_error);
        if failures.note(removed).is_some() {
            println!("{name}");
        }
    }
    failures.finish()
}

async fn prune(host: &Host, args: PruneArgs) -> anyhow::Result<()> {
    let warning = if args.all {
        PRUNE_ALL_WARNING
    } else {
        PRUNE_WARNING
    };
    if !args.force && !confirm(warning)? {
        return Ok(());
    }
    let reply = local(host)
        .await?
        .volume_prune(VolumePruneRequest { all: args.all })
        .await
        .map_err(status_error)?
        .into_inner();
    print!("{}", prune_report(&reply));
    Ok(())
}

/// What `volume prune` prints, as Docker's.
pub fn prune_report(reply: &VolumePruneResponse) -> String {
    let mut out = String::new();
    if !reply.deleted.is_empty() {
        out.push_str("Deleted Volumes:\n");
        for name in &reply.deleted {
            out.push_str(name);
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reply.reclaimed, 4)
    ));
    out
}
