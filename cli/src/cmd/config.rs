//! `shoal config create|ls|inspect|rm`, as `docker config`. The data is
//! checked (non-empty, at most 1000 KB as Docker's) before the daemon is
//! contacted; unlike a secret's, `inspect` shows it (base64 in JSON).

use clap::Subcommand;
use shoal_proto::control::{
    CreateConfigRequest, GetConfigRequest, ListConfigsRequest, RemoveConfigRequest,
};
use shoal_proto::objects::{Annotations, ConfigSpec};

use crate::client::status_error;
use crate::host::Host;

use super::blob::{self, Blob};
use super::common::{Api, Failures, ListArgs, resolve};
use super::filter::Filters;
use super::payload;
use super::secret::{CreateArgs, InspectArgs, RmArgs};

/// `shoal config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Create a config from a file or STDIN (`-`); at most 1000 KB.
    Create(CreateArgs),
    /// List configs.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more configs.
    Inspect(InspectArgs),
    /// Remove one or more configs.
    #[command(alias = "remove")]
    Rm(RmArgs),
}

/// Runs `shoal config ...`.
pub async fn run(host: &Host, cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Create(args) => create(host, args).await,
        ConfigCommand::Ls(args) => ls(host, args).await,
        ConfigCommand::Inspect(args) => inspect(host, args).await,
        ConfigCommand::Rm(args) => rm(host, args).await,
    }
}

async fn create(host: &Host, args: CreateArgs) -> anyhow::Result<()> {
    // Everything the user can get wrong is checked before connecting.
    let data = payload::read("config", &args.file, payload::MAX_CONFIG_SIZE)?;
    let labels = payload::labels(&args.labels)?;
    let mut api = Api::connect(host).await?;
    let spec = ConfigSpec {
        annotations: Some(Annotations {
            name: args.name,
            labels,
        }),
        data,
    };
    let config = api
        .control
        .create_config(CreateConfigRequest { spec: Some(spec) })
        .await
        .map_err(status_error)?
        .into_inner()
        .config
        .unwrap_or_default();
    println!("{}", config.id);
    Ok(())
}

async fn list(api: &mut Api, filters: &Filters) -> anyhow::Result<Vec<Blob>> {
    let configs = api
        .control
        .list_configs(ListConfigsRequest {
            filters: Some(filters.to_proto(true, true)),
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .configs;
    Ok(configs.into_iter().map(Blob::from).collect())
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
        .map(|n| resolve("config", n, pairs.iter().copied()))
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
                .get_config(GetConfigRequest { config_id: id })
                .await
                .map_err(status_error),
            Err(err) => Err(err),
        };
        if let Some(reply) = failures.note(got) {
            found.push(Blob::from(reply.into_inner().config.unwrap_or_default()));
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
            Ok(config_id) => api
                .control
                .remove_config(RemoveConfigRequest { config_id })
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
