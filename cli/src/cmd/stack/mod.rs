//! `shoal stack deploy|diff|ls|services|ps|rm`, as `docker stack`. A stack
//! is the set of objects labelled `com.docker.stack.namespace=NAME`; the
//! compose side lives in [`crate::compose`].

mod deploy;
mod plan;

#[cfg(test)]
mod tests;

use shoal_proto::listing::Joined as _;
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use clap::{ArgAction, Args, Subcommand};
use shoal_proto::control::{
    ListConfigsRequest, ListFilters, ListNetworksRequest, ListSecretsRequest, RemoveConfigRequest,
    RemoveNetworkRequest, RemoveSecretRequest, RemoveServiceRequest,
};
use shoal_proto::objects::{Annotations, Service};

use super::common::{Api, Failures, ListArgs, natural_cmp};
use super::filter::Filters;
use super::service::{self, TaskListArgs};
use crate::client::status_error;
use crate::compose::NAMESPACE_LABEL;
use crate::host::Host;
use crate::output::listing::Listing;

/// `shoal stack ...`
#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Deploy a new stack or update an existing one (compose v3).
    #[command(alias = "up")]
    Deploy(DeployArgs),
    /// List stacks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// List the services in a stack.
    Services(ServicesArgs),
    /// List the tasks in a stack.
    Ps(PsArgs),
    /// Remove one or more stacks.
    #[command(alias = "remove", alias = "down")]
    Rm(RmArgs),
    /// Show what a deploy would create, update and remove, changing nothing
    /// (beyond Docker; the same as `stack deploy --dry-run`).
    Diff(DeployArgs),
}

/// `stack deploy` / `stack diff` flags.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Path to a compose file, or `-` for standard input; repeat to merge
    /// several files in order.
    #[arg(
        short = 'c',
        long = "compose-file",
        required = true,
        value_name = "FILE"
    )]
    pub compose_file: Vec<PathBuf>,
    /// Prune services that are no longer referenced.
    #[arg(long)]
    pub prune: bool,
    /// Exit immediately instead of waiting for the stack services to
    /// converge (default true, as Docker; `--detach=false` to wait).
    #[arg(short, long, default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub detach: bool,
    /// Print what would be created, updated (field by field) and removed,
    /// and change nothing (beyond Docker).
    #[arg(long)]
    pub dry_run: bool,
    /// Query the registry to resolve image digests ("always", "changed",
    /// "never"; default always).
    #[arg(long, value_enum)]
    pub resolve_image: Option<crate::cmd::service::resolve::ResolveImage>,
    /// Send registry authentication details to Swarm agents (the login of
    /// each image's registry in the docker config).
    #[arg(long)]
    pub with_registry_auth: bool,
    /// Stack name.
    pub stack: String,
}

/// `stack ls` flags.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Format output: `table` (default), `json`, or a template such as `{{.Name}}`.
    #[arg(long)]
    format: Option<String>,
}

/// `stack services` flags.
#[derive(Debug, Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    list: ListArgs,
    /// Stack name.
    stack: String,
}

/// `stack ps` flags.
#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    list: TaskListArgs,
    /// Stack name.
    stack: String,
}

/// `stack rm` arguments.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Stack names.
    #[arg(required = true, value_name = "STACK")]
    stacks: Vec<String>,
}

/// Runs `shoal stack ...`.
pub async fn run(host: &Host, cmd: StackCommand) -> anyhow::Result<()> {
    match cmd {
        StackCommand::Deploy(args) => deploy::deploy(host, args).await,
        StackCommand::Diff(args) => deploy::diff(host, args).await,
        StackCommand::Ls(args) => ls(host, args).await,
        StackCommand::Services(args) => services(host, args).await,
        StackCommand::Ps(args) => ps(host, args).await,
        StackCommand::Rm(args) => rm(host, args).await,
    }
}

/// Docker's rule for stack names (they prefix every object name).
pub(crate) fn check_stack_name(name: &str) -> anyhow::Result<()> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        bail!(
            "invalid stack name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        );
    }
    Ok(())
}

fn name(a: &Option<Annotations>) -> String {
    a.as_ref().map(|a| a.name.clone()).unwrap_or_default()
}

fn namespace(a: Option<&Annotations>) -> Option<&str> {
    a.and_then(|a| a.labels.get(NAMESPACE_LABEL))
        .map(String::as_str)
}

fn stack_filter(stack: &str) -> Option<ListFilters> {
    Some(ListFilters {
        labels: vec![format!("{NAMESPACE_LABEL}={stack}")],
        ..ListFilters::default()
    })
}

async fn stack_services(api: &mut Api, stack: &str) -> anyhow::Result<Vec<Service>> {
    Ok(service::list_services(api)
        .await?
        .into_iter()
        .filter(|s| namespace(s.spec.as_ref().and_then(|s| s.annotations.as_ref())) == Some(stack))
        .collect())
}

/// `stack ls`: Docker's columns and template fields.
const LS: Listing = Listing {
    default_table: "table {{.Name}}\t{{.Services}}",
    fields: &["Name", "Services"],
    headers: &[],
};

#[derive(serde::Serialize)]
struct StackRow {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Services")]
    services: String,
}

/// `NAME SERVICES` rows, sorted by name.
pub(crate) fn render_ls(services: &[Service], format: Option<&str>) -> anyhow::Result<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in services {
        if let Some(ns) = namespace(s.spec.as_ref().and_then(|s| s.annotations.as_ref())) {
            *counts.entry(ns.to_string()).or_default() += 1;
        }
    }
    let mut rows: Vec<StackRow> = counts
        .into_iter()
        .map(|(name, n)| StackRow {
            name,
            services: n.to_string(),
        })
        .collect();
    rows.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    LS.render(format, &rows)
}

async fn ls(host: &Host, args: LsArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let all = service::list_services(&mut api).await?;
    print!("{}", render_ls(&all, args.format.as_deref())?);
    Ok(())
}

async fn services(host: &Host, args: ServicesArgs) -> anyhow::Result<()> {
    let filters = Filters::new(args.list.filter, service::view::LS_FILTER_KEYS)?;
    service::view::LS.template(args.list.format.as_deref())?;
    let mut api = Api::connect(host).await?;
    let found = stack_services(&mut api, &args.stack).await?;
    if found.is_empty() {
        eprintln!("Nothing found in stack: {}", args.stack);
        return Ok(());
    }
    let found = service::view::select_services(found, &filters);
    let (_, counts) = service::services_with_counts(&mut api).await?;
    print!(
        "{}",
        service::view::render_ls(
            &found,
            &counts,
            args.list.quiet,
            args.list.format.as_deref()
        )?
    );
    Ok(())
}

async fn ps(host: &Host, args: PsArgs) -> anyhow::Result<()> {
    let filters = Filters::new(args.list.filter.clone(), service::view::PS_FILTER_KEYS)?;
    service::view::PS.template(args.list.format.as_deref())?;
    let mut api = Api::connect(host).await?;
    let all = service::list_services(&mut api).await?;
    let ids: Vec<String> = all
        .iter()
        .filter(|s| {
            namespace(s.spec.as_ref().and_then(|s| s.annotations.as_ref())) == Some(&args.stack)
        })
        .map(|s| s.id.clone())
        .collect();
    if ids.is_empty() {
        bail!("nothing found in stack: {}", args.stack);
    }
    let tasks = service::list_tasks(
        &mut api,
        ListFilters {
            service_ids: ids,
            ..ListFilters::default()
        },
    )
    .await?;
    let names = service::table_names(&all, &service::list_nodes(&mut api).await?);
    service::print_tasks(tasks, &filters, &names, &args.list)
}

/// Removes a stack's services, then its networks, secrets and configs;
/// nothing without the stack's label.
async fn rm(host: &Host, args: RmArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let mut failures = Failures::default();
    for stack in &args.stacks {
        failures.note(rm_one(&mut api, stack).await);
    }
    failures.finish()
}

async fn rm_one(api: &mut Api, stack: &str) -> anyhow::Result<()> {
    let services = stack_services(api, stack).await?;
    let c = &mut api.control;
    let networks = c
        .list_networks(ListNetworksRequest {
            filters: stack_filter(stack),
        })
        .joined()
        .await
        .map_err(status_error)?
        .networks;
    let secrets = c
        .list_secrets(ListSecretsRequest {
            filters: stack_filter(stack),
        })
        .joined()
        .await
        .map_err(status_error)?
        .secrets;
    let configs = c
        .list_configs(ListConfigsRequest {
            filters: stack_filter(stack),
        })
        .joined()
        .await
        .map_err(status_error)?
        .configs;
    if services.is_empty() && networks.is_empty() && secrets.is_empty() && configs.is_empty() {
        eprintln!("Nothing found in stack: {stack}");
        return Ok(());
    }
    let mut failures = Failures::default();
    for s in services {
        println!(
            "Removing service {}",
            name(&s.spec.and_then(|s| s.annotations))
        );
        let r = c
            .remove_service(RemoveServiceRequest { service_id: s.id })
            .await;
        failures.note(r.map(drop).map_err(status_error));
    }
    for s in secrets {
        println!(
            "Removing secret {}",
            name(&s.spec.and_then(|s| s.annotations))
        );
        let r = c
            .remove_secret(RemoveSecretRequest { secret_id: s.id })
            .await;
        failures.note(r.map(drop).map_err(status_error));
    }
    for s in configs {
        println!(
            "Removing config {}",
            name(&s.spec.and_then(|s| s.annotations))
        );
        let r = c
            .remove_config(RemoveConfigRequest { config_id: s.id })
            .await;
        failures.note(r.map(drop).map_err(status_error));
    }
    for n in networks {
        println!(
            "Removing network {}",
            name(&n.spec.and_then(|s| s.annotations))
        );
        let r = c
            .remove_network(RemoveNetworkRequest { network_id: n.id })
            .await;
        failures.note(r.map(drop).map_err(status_error));
    }
    failures.finish()
}
