//! `shoal image pull|ls|inspect|rm|prune|load`, as `docker image`, on the
//! node the daemon runs: its embedded engine's image store. A node whose
//! engine is Docker answers with the `docker image` command to use.

mod pull;
pub(crate) mod view;

#[cfg(test)]
mod tests;

use crate::cmd::common::local;
use std::io::{IsTerminal, Read};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use shoal_proto::local::{
    ImageInspectRequest, ImageListRequest, ImageLoadChunk, ImagePruneRequest, ImagePullRequest,
    ImageRemoveRequest, ImageRemoveResponse, image_pull_event::Event,
};

use crate::client::status_error;
use crate::host::Host;
use crate::output::listing::render_inspect;

use super::common::{Failures, InspectFormat, confirm};
use super::filter::{Filters, parse_filter};

/// `shoal image ...`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Download an image from a registry.
    Pull(PullArgs),
    /// List images.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more images.
    Inspect(InspectArgs),
    /// Remove one or more images.
    #[command(alias = "remove", alias = "rmi")]
    Rm(RmArgs),
    /// Remove unused images.
    Prune(PruneArgs),
    /// Load an image from a tar archive or STDIN.
    Load(LoadArgs),
}

/// `image pull` flags.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository.
    #[arg(short, long = "all-tags")]
    pub all_tags: bool,
    /// Skip image verification.
    #[arg(long = "disable-content-trust", default_value_t = true, hide = true)]
    pub disable_content_trust: bool,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
}

/// `image ls` flags.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Show all images (there are no intermediate images here).
    #[arg(short, long)]
    pub all: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided (`dangling=true`,
    /// `label=k[=v]`, `reference=PATTERN`).
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = parse_filter)]
    pub filter: Vec<(String, String)>,
    /// Format output: `table` (default), `json`, or a template such as
    /// `{{.Repository}}:{{.Tag}}`.
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Only images of this repository (and tag).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

/// `image inspect` flags.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub format: InspectFormat,
    /// Images: name, id or id prefix.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// `image rm` flags.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force removal of an image referenced by several names, by its id.
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents (there are none here).
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    /// Images: name, id or id prefix.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// `image prune` flags.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all images not used by a task, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// `image load` flags.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN.
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<String>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// What `image prune` asks without `--force`.
pub const PRUNE_WARNING: &str =
    "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N]";
/// What `image prune -a` asks without `--force`.
pub const PRUNE_ALL_WARNING: &str = "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue? [y/N]";

/// Runs `shoal image ...`.
pub async fn run(host: &Host, cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Pull(args) => pull(host, args).await,
        ImageCommand::Ls(args) => ls(host, args).await,
        ImageCommand::Inspect(args) => inspect(host, args).await,
        ImageCommand::Rm(args) => rm(host, args).await,
        ImageCommand::Prune(args) => prune(host, args).await,
        ImageCommand::Load(args) => load(host, args).await,
    }
}

/// `--platform` names this node's, or is refused: the store keeps one.
fn check_platform(platform: Option<&str>) -> anyhow::Result<()> {
    let here = format!(
        "{}/{}",
        shoal_proto::build_info::os(),
        shoal_proto::build_info::arch()
    );
    match platform {
        Some(p) if p != here && !here.starts_with(&format!("{p}/")) && p != "linux" => bail!(
            "--platform {p}: this node's image store holds images for its own platform ({here}) only"
        ),
        _ => Ok(()),
    }
}

async fn pull(host: &Host, args: PullArgs) -> anyhow::Result<()> {
    if args.all_tags {
        bail!("--all-tags is not supported: pull each tag by name");
    }
    check_platform(args.platform.as_deref())?;
    let (username, password) = login_for(&args.name)?;
    let mut api = local(host).await?;
    let mut events = api
        .image_pull(ImagePullRequest {
            reference: args.name.clone(),
            username,
            password,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut screen = pull::PullScreen::new(stdout.lock(), tty);
    if !args.quiet && !pull::has_tag_or_digest(&args.name) {
        println!("Using default tag: latest");
    }
    while let Some(event) = events.message().await.map_err(status_error)? {
        let Some(event) = event.event else { continue };
        if args.quiet {
            if let Event::Done(done) = &event {
                println!("{}", done.reference);
            }
            continue;
        }
        screen.event(&event)?;
    }
    Ok(())
}

/// The caller's `docker login` for the image's registry, as `docker pull`
/// uses it (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`);
/// empty without one.
fn login_for(image: &str) -> anyhow::Result<(String, String)> {
    let auth = crate::registry_auth::login_for(image)?;
    Ok(auth.map_or_else(Default::default, |a| (a.username, a.password)))
}

async fn ls(host: &Host, args: LsArgs) -> anyhow::Result<()> {
    let filters = Filters::new(args.filter, view::FILTER_KEYS)?;
    // A bad --format fails before the daemon is asked anything.
    view::LISTING.template(args.format.as_deref())?;
    let images = local(host)
        .await?
        .image_list(ImageListRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .images;
    let rows = view::select(
        &images,
        &filters,
        args.repository.as_deref(),
        args.no_trunc,
        std::time::SystemTime::now(),
    )?;
    let out = view::render_list(&rows, args.quiet, args.digests, args.format.as_deref())?;
    print!("{out}");
    Ok(())
}

async fn inspect(host: &Host, args: InspectArgs) -> anyhow::Result<()> {
    let mut api = local(host).await?;
    let mut failures = Failures::default();
    let mut views = Vec::new();
    for reference in args.images {
        let got = api
            .image_inspect(ImageInspectRequest { reference })
            .await
            .map_err(status_error);
        if let Some(reply) = failures.note(got) {
            views.push(view::inspect_view(
                &reply.into_inner().image.unwrap_or_default(),
            ));
        }
    }
    print!("{}", render_inspect(args.format.format.as_deref(), &views)?);
    failures.finish()
}

/// `Untagged: busybox:latest` and `Deleted: sha256:...` lines.
pub fn removed_lines(reply: &ImageRemoveResponse, untagged: &str, deleted: &str) -> String {
    let mut out = String::new();
    for name in &reply.untagged {
        out.push_str(&format!("{untagged}: {}\n", view::familiar(name)));
    }
    for id in &reply.deleted {
        out.push_str(&format!("{deleted}: {id}\n"));
    }
    out
}

async fn rm(host: &Host, args: RmArgs) -> anyhow::Result<()> {
    let mut api = local(host).await?;
    let mut failures = Failures::default();
    for reference in args.images {
        let removed = api
            .image_remove(ImageRemoveRequest {
                reference,
                force: args.force,
            })
            .await
            .map_err(status_error);
        if let Some(reply) = failures.note(removed) {
            print!(
                "{}",
                removed_lines(&reply.into_inner(), "Untagged", "Deleted")
            );
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
        .image_prune(ImagePruneRequest { all: args.all })
        .await
        .map_err(status_error)?
        .into_inner();
    print!("{}", prune_report(&reply));
    Ok(())
}

/// What `image prune` prints, as Docker's.
pub fn prune_report(reply: &shoal_proto::local::ImagePruneResponse) -> String {
    let mut out = String::new();
    if !reply.images.is_empty() {
        out.push_str("Deleted Images:\n");
        for image in &reply.images {
            out.push_str(&removed_lines(image, "untagged", "deleted"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        view::human_size(reply.reclaimed, 4)
    ));
    out
}

/// Chunks of the tarball sent to the daemon.
const CHUNK: usize = 1 << 20;

async fn load(host: &Host, args: LoadArgs) -> anyhow::Result<()> {
    let mut source: Box<dyn Read + Send> = match &args.input {
        Some(path) => Box::new(std::fs::File::open(path).with_context(|| format!("open {path}"))?),
        None if std::io::stdin().is_terminal() => {
            bail!("requested load from stdin, but stdin is empty")
        }
        None => Box::new(std::io::stdin()),
    };
    let mut api = local(host).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<ImageLoadChunk>(4);
    // Read on a blocking thread; an error ends the stream early and is
    // reported in place of whatever the daemon makes of the short tarball.
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        loop {
            let mut data = vec![0; CHUNK];
            let n = source.read(&mut data)?;
            if n == 0 {
                return Ok(());
            }
            data.truncate(n);
            if tx.blocking_send(ImageLoadChunk { data }).is_err() {
                return Ok(());
            }
        }
    });
    let reply = api
        .image_load(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    let input = args.input.as_deref().unwrap_or("stdin");
    reader
        .await
        .context("reading the tarball")?
        .with_context(|| format!("reading {input}"))?;
    let images = reply.map_err(status_error)?.into_inner().images;
    print!("{}", loaded_lines(&images));
    Ok(())
}

/// `Loaded image: NAME` per name, `Loaded image ID: sha256:..` for an
/// image without one.
pub fn loaded_lines(images: &[shoal_proto::local::Image]) -> String {
    let mut out = String::new();
    for image in images {
        if image.repo_tags.is_empty() {
            out.push_str(&format!("Loaded image ID: {}\n", image.id));
        }
        for name in &image.repo_tags {
            out.push_str(&format!("Loaded image: {}\n", view::familiar(name)));
        }
    }
    out
}
