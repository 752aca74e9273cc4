//! `shoal secret create|ls|inspect|rm`, as `docker secret`. The data is
//! checked (non-empty, at most 500 KB) before the daemon is contacted, and
//! is never printed: views are built from [`Blob`], which drops it.

use clap::{Args, Subcommand};
use shoal_proto::control::{
    CreateSecretRequest, GetSecretRequest, ListSecretsRequest, RemoveSecretRequest,
};
use shoal_proto::objects::{Annotations, SecretSpec};

use crate::client::status_error;
use crate::host::Host;

use super::blob::{self, Blob};
use super::common::{Api, Failures, InspectFormat, ListArgs, resolve};
use super::filter::Filters;
use super::payload;

/// `shoal secret ...`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret from a file or STDIN (`-`); at most 500 KB.
    Create(CreateArgs),
    /// List secrets.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more secrets (never the data).
    Inspect(InspectArgs),
    /// Remove one or more secrets.
    #[command(alias = "remove")]
    Rm(RmArgs),
}

/// `secret create` / `config create` flags.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Labels (`key=value`).
    #[arg(short, long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// The name of the new object.
    pub name: String,
    /// The file holding the data, or `-` to read STDIN.
    pub file: String,
}

/// `secret inspect` / `config inspect` flags.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub format: InspectFormat,
    /// Print the information in a human friendly format.
    #[arg(long, conflicts_with = "format")]
    pub pretty: bool,
    /// Names or IDs.
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// `secret rm` / `config rm` arguments.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Names or IDs.
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// Runs `shoal secret ...`.
pub async fn run(host: &Host, cmd: SecretCommand) -> anyhow::Result<()> {
    match cmd {
        SecretCommand::Create(args) => create(host, args).await,
        SecretCommand::Ls(args) => ls(host, args).await,
        SecretCommand::Inspect(args) => inspect(host, args).await,
        SecretCommand::Rm(args) => rm(host, args).await,
    }
}

async fn create(host: &Host, args: CreateArgs) -> anyhow::Result<()> {
    // Everything the user can get wrong is checked before connecting.
    let data = payload::read("secret", &args.file, payload::MAX_SECRET_SIZE)?;
    let labels = payload::labels(&args.labels)?;
    let mut api = Api::connect(host).await?;
    let spec = SecretSpec {
        annotations: Some(Annotations {
            name: args.name,
            labels,
        }),
        data,
    };
    let secret = api
        .control
        .create_secret(CreateSecretRequest { spec: Some(spec) })
        .await
        .map_err(status_error)?
        .into_inner()
        .secret
        .unwrap_or_default();
    println!("{}", secret.id);
    Ok(())
}

async fn list(api: &mut Api, filters: &Filters) -> anyhow::Result<Vec<Blob>> {
    let secrets = api
        .control
        .list_secrets(ListSecretsRequest {
            filters: Some(filters.to_proto(true, true)),
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .secrets;
    Ok(secrets.into_iter().map(Blob::from).collect())
}

async fn ls(host: &Host, args: ListArgs) -> anyhow::Result<()> {
    let filters = Filters::new(args.filter, blob::FILTER_KEYS)?;
    // A bad --format fails before the daemon is asked anything.
    blob::LISTING.template(args.format.as_deref())?;
    let mut api = Api::connect(host).await?;
    let blobs = blob::select(list(&mut api, &filters).await?, &filters);
    let out = blob::render_list(
        &blobs,
        args.quiet,
        args.format.as_deref(),
        std::time::SystemTime::now(),
    )?;
    print!("{out}");
    Ok(())
}

/// The ids `names` resolve to, one error per name that resolves to none.
async fn resolve_all(
    api: &mut Api,
    names: &[String],
) -> anyhow::Result<Vec<anyhow::Result<String>>> {
    let all = list(api, &Filters::default()).await?;
    let pairs: Vec<(&str, &str)> = all
        .iter()
        .map(|b| (b.id.as_str(), b.name.as_str()))
        .collect();
    Ok(names
        .iter()
        .map(|n| resolve("secret", n, pairs.iter().copied()))
        .collect())
}

async fn inspect(host: &Host, args: InspectArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let mut found = Vec::new();
    let mut failures = Failures::default();
    for id in resolve_all(&mut api, &args.names).await? {
        let got = match id {
            Ok(id) => api
                .control
                .get_secret(GetSecretRequest { secret_id: id })
                .await
                .map_err(status_error),
            Err(err) => Err(err),
        };
        if let Some(reply) = failures.note(got) {
            found.push(Blob::from(reply.into_inner().secret.unwrap_or_default()));
        }
    }
    print!(
        "{}",
        blob::render_inspect_blobs(&found, args.format.format.as_deref(), args.pretty)?
    );
    failures.finish()
}

async fn rm(host: &Host, args: RmArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let ids = resolve_all(&mut api, &args.names).await?;
    let mut failures = Failures::default();
    for (name, id) in args.names.iter().zip(ids) {
        let removed = match id {
            Ok(secret_id) => api
                .control
                .remove_secret(RemoveSecretRequest { secret_id })
                .await
                .map_err(status_error),
            Err(err) => Err(err),
        };
        if failures.note(removed).is_some() {
            println!("{name}");
        }
    }
    failures.finish()
}
