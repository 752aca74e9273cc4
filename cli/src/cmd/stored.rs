//! The commands secrets and configs share (`create`, `ls`, `inspect`,
//! `rm`), written once over [`StoredKind`]: the two differ only in their
//! four RPCs, their size limit, and whether `inspect` may show the data
//! (that is decided by [`Blob`], which drops a secret's).

use clap::Args;
use shoal_proto::control::ListFilters;
use shoal_proto::objects::Annotations;

use super::blob::{self, Blob};
use super::common::{Api, Failures, InspectFormat, ListArgs, resolve};
use super::filter::Filters;
use super::payload;
use crate::host::Host;

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

/// What differs between secrets and configs.
pub trait StoredKind {
    /// `secret` or `config`, for messages.
    const NAME: &'static str;
    /// The largest data accepted.
    const MAX_SIZE: usize;
    /// Creates one; returns its id.
    async fn create(
        api: &mut Api,
        annotations: Annotations,
        data: Vec<u8>,
    ) -> anyhow::Result<String>;
    /// Lists them.
    async fn list(api: &mut Api, filters: ListFilters) -> anyhow::Result<Vec<Blob>>;
    /// Reads one by id.
    async fn get(api: &mut Api, id: String) -> anyhow::Result<Blob>;
    /// Removes one by id.
    async fn remove(api: &mut Api, id: String) -> anyhow::Result<()>;
}

/// `create`: everything the user can get wrong is checked before connecting.
pub async fn create<K: StoredKind>(host: &Host, args: CreateArgs) -> anyhow::Result<()> {
    let data = payload::read(K::NAME, &args.file, K::MAX_SIZE)?;
    let labels = payload::labels(&args.labels)?;
    let mut api = Api::connect(host).await?;
    let id = K::create(
        &mut api,
        Annotations {
            name: args.name,
            labels,
        },
        data,
    )
    .await?;
    println!("{id}");
    Ok(())
}

/// `ls`.
pub async fn ls<K: StoredKind>(host: &Host, args: ListArgs) -> anyhow::Result<()> {
    let filters = Filters::new(args.filter, blob::FILTER_KEYS)?;
    // A bad --format fails before the daemon is asked anything.
    blob::LISTING.template(args.format.as_deref())?;
    let mut api = Api::connect(host).await?;
    let all = K::list(&mut api, filters.to_proto(true, true)).await?;
    let blobs = blob::select(all, &filters);
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
async fn resolve_all<K: StoredKind>(
    api: &mut Api,
    names: &[String],
) -> anyhow::Result<Vec<anyhow::Result<String>>> {
    let all = K::list(api, Filters::default().to_proto(true, true)).await?;
    let pairs: Vec<(&str, &str)> = all
        .iter()
        .map(|b| (b.id.as_str(), b.name.as_str()))
        .collect();
    Ok(names
        .iter()
        .map(|n| resolve(K::NAME, n, pairs.iter().copied()))
        .collect())
}

/// `inspect`: every name is tried; failures are reported together.
pub async fn inspect<K: StoredKind>(host: &Host, args: InspectArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let mut found = Vec::new();
    let mut failures = Failures::default();
    for id in resolve_all::<K>(&mut api, &args.names).await? {
        let got = match id {
            Ok(id) => K::get(&mut api, id).await,
            Err(err) => Err(err),
        };
        if let Some(blob) = failures.note(got) {
            found.push(blob);
        }
    }
    print!(
        "{}",
        blob::render_inspect_blobs(&found, args.format.format.as_deref(), args.pretty)?
    );
    failures.finish()
}

/// `rm`: prints each name removed, reports failures together.
pub async fn rm<K: StoredKind>(host: &Host, args: RmArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let ids = resolve_all::<K>(&mut api, &args.names).await?;
    let mut failures = Failures::default();
    for (name, id) in args.names.iter().zip(ids) {
        let removed = match id {
            Ok(id) => K::remove(&mut api, id).await,
            Err(err) => Err(err),
        };
        if failures.note(removed).is_some() {
            println!("{name}");
        }
    }
    failures.finish()
}
