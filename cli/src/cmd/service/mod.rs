//! `shoal service create|inspect|ls|logs|ps|rm|scale|update|rollback`, as
//! `docker service`. Specs are built from flags offline ([`to_spec`]); names
//! of secrets, configs and networks are resolved to ids here, before the
//! request, so a typo is a clear error rather than a failing task. Without
//! `-d`, changes are followed until the service converges ([`progress`]).

mod api;
mod args;
mod inspect;
mod logs;
mod progress;
pub mod resolve;
mod to_spec;
pub(super) mod view;

#[cfg(test)]
mod tests;

use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use shoal_proto::control::{CreateServiceRequest, ListFilters, RemoveServiceRequest};
use shoal_proto::objects::ServiceSpec;
use shoal_proto::objects::service_spec::Mode;

use self::args::{CreateArgs, UpdateArgs};
use self::progress::Expect;
use super::common::{Api, Failures, InspectFormat, ListArgs};
use super::filter::{Filters, parse_filter};
use crate::client::status_error;
use crate::host::Host;
use crate::output::listing::render_inspect;

pub(super) use self::api::{
    names as table_names, nodes as list_nodes, services as list_services, services_with_counts,
    tasks as list_tasks, update as update_service,
};

/// `shoal service ...`
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a new service.
    Create(Box<CreateArgs>),
    /// Display detailed information on one or more services.
    Inspect(InspectArgs),
    /// List services.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// List the tasks of one or more services.
    Ps(PsArgs),
    /// Fetch the logs of a service or task.
    Logs(logs::LogsArgs),
    /// Remove one or more services.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Scale one or more replicated services (`web=3 api=5`).
    Scale(ScaleArgs),
    /// Update a service.
    Update(Box<UpdateArgs>),
    /// Revert changes to a service's configuration.
    Rollback(RollbackArgs),
}

/// `service inspect` flags.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    format: InspectFormat,
    /// Print the information in a human friendly format.
    #[arg(long, conflicts_with = "format")]
    pretty: bool,
    /// Services: name, id or id prefix.
    #[arg(required = true, value_name = "SERVICE")]
    services: Vec<String>,
}

/// The flags of every task table (`service ps`, `node ps`).
#[derive(Debug, Clone, Args)]
pub struct TaskListArgs {
    /// Do not truncate the output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display task IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output (`desired-state=running`, `node=`, `name=`, `id=`).
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = parse_filter)]
    pub filter: Vec<(String, String)>,
    /// Format output: `table` (default), `json`, or a template such as `{{.Name}}`.
    #[arg(long)]
    pub format: Option<String>,
}

/// `service ps` flags.
#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    list: TaskListArgs,
    /// Services: name, id or id prefix.
    #[arg(required = true, value_name = "SERVICE")]
    services: Vec<String>,
}

/// `service rm` arguments.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Services: name, id or id prefix.
    #[arg(required = true, value_name = "SERVICE")]
    services: Vec<String>,
}

/// `service scale` arguments.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Exit immediately instead of waiting for the services to converge.
    #[arg(short, long)]
    detach: bool,
    /// `SERVICE=REPLICAS` pairs.
    #[arg(required = true, value_name = "SERVICE=REPLICAS", value_parser = parse_scale)]
    scales: Vec<(String, u64)>,
}

/// `service rollback` flags.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Exit immediately instead of waiting for the service to converge.
    #[arg(short, long)]
    detach: bool,
    /// Suppress progress output.
    #[arg(short, long)]
    quiet: bool,
    /// The service: name, id or id prefix.
    service: String,
}

fn parse_scale(s: &str) -> Result<(String, u64), String> {
    let (name, n) = s
        .split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| {
            format!("invalid scale specifier '{s}': expected SERVICE=REPLICAS, e.g. web=3")
        })?;
    let n = n
        .parse::<u64>()
        .map_err(|_| format!("invalid replicas value {n:?} in '{s}': expected a whole number"))?;
    Ok((name.to_string(), n))
}

/// Runs `shoal service ...`.
pub async fn run(host: &Host, cmd: ServiceCommand) -> anyhow::Result<()> {
    match cmd {
        ServiceCommand::Create(args) => create(host, *args).await,
        ServiceCommand::Inspect(args) => inspect(host, args).await,
        ServiceCommand::Ls(args) => ls(host, args).await,
        ServiceCommand::Ps(args) => ps(host, args).await,
        ServiceCommand::Logs(args) => logs::run(host, args).await,
        ServiceCommand::Rm(args) => rm(host, args).await,
        ServiceCommand::Scale(args) => scale(host, args).await,
        ServiceCommand::Update(args) => update(host, *args).await,
        ServiceCommand::Rollback(args) => rollback(host, args).await,
    }
}

async fn create(host: &Host, args: CreateArgs) -> anyhow::Result<()> {
    // Everything that needs no daemon is checked first.
    to_spec::create_spec(&nameless(&args), &to_spec::Lookup::default())?;
    let mut api = Api::connect(host).await?;
    let lookup = api::lookup(
        &mut api,
        !args.secret.is_empty(),
        !args.config.is_empty(),
        !args.network.is_empty(),
    )
    .await?;
    let mut spec = to_spec::create_spec(&args, &lookup)?;
    resolve::pin(
        &api,
        &mut spec,
        args.common.resolve_image.unwrap_or_default(),
        None,
    )
    .await?;
    if args.common.with_registry_auth {
        crate::registry_auth::attach(&mut spec)?;
    }
    let service = api
        .control
        .create_service(CreateServiceRequest { spec: Some(spec) })
        .await
        .map_err(status_error)?
        .into_inner()
        .service
        .context("the daemon created the service but did not return it")?;
    println!("{}", service.id);
    if args.common.detach {
        return Ok(());
    }
    progress::follow(&mut api, &service.id, &Expect::default(), args.common.quiet).await
}

/// `args` without the references that need the daemon to resolve.
fn nameless(args: &CreateArgs) -> CreateArgs {
    CreateArgs {
        common: args.common.clone(),
        name: args.name.clone(),
        mode: args.mode,
        env: args.env.clone(),
        env_file: args.env_file.clone(),
        label: args.label.clone(),
        container_label: args.container_label.clone(),
        publish: args.publish.clone(),
        network: Vec::new(),
        mount: args.mount.clone(),
        secret: Vec::new(),
        config: Vec::new(),
        constraint: args.constraint.clone(),
        placement_pref: args.placement_pref.clone(),
        container: args.container.clone(),
        host: args.host.clone(),
        image: args.image.clone(),
        args: args.args.clone(),
    }
}

async fn update(host: &Host, args: UpdateArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let id = api::resolve_one(&mut api, &args.service).await?;
    let lookup = api::lookup(
        &mut api,
        !args.secret_add.is_empty() || !args.secret_rm.is_empty(),
        !args.config_add.is_empty() || !args.config_rm.is_empty(),
        !args.network_add.is_empty() || !args.network_rm.is_empty(),
    )
    .await?;
    // The image the update deploys, pinned first (pinning asks a registry,
    // which the update's retry loop should not do again).
    let pinned = if args.rollback {
        None
    } else {
        let current = api::get(&mut api, &id).await?;
        let before = current.spec.clone().unwrap_or_default();
        let mut next = before.clone();
        let image = |s: &ServiceSpec| {
            s.task
                .as_ref()
                .and_then(|t| t.container.as_ref())
                .map(|c| c.image.clone())
        };
        if let (Some(i), Some(c)) = (
            args.image.clone(),
            next.task.as_mut().and_then(|t| t.container.as_mut()),
        ) {
            c.image = i;
        }
        let mode = args.common.resolve_image.unwrap_or_default();
        resolve::pin(&api, &mut next, mode, image(&before).as_deref()).await?;
        image(&next)
    };
    let before = api::update(&mut api, &id, args.rollback, |svc, spec| {
        if args.rollback {
            if svc.previous_spec.is_none() {
                bail!(
                    "service {} does not have a previous spec to roll back to",
                    args.service
                );
            }
            return Ok(());
        }
        to_spec::update_spec(spec, &args, &lookup)?;
        if let (Some(image), Some(c)) = (
            pinned.clone(),
            spec.task.as_mut().and_then(|t| t.container.as_mut()),
        ) {
            c.image = image;
        }
        if args.common.with_registry_auth {
            crate::registry_auth::attach(spec)?;
        }
        Ok(())
    })
    .await?;
    println!("{}", args.service);
    if args.common.detach {
        return Ok(());
    }
    let expect = Expect {
        baseline: before.update_status,
        rollback: args.rollback,
    };
    progress::follow(&mut api, &id, &expect, args.common.quiet).await
}

async fn rollback(host: &Host, args: RollbackArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let id = api::resolve_one(&mut api, &args.service).await?;
    let before = api::update(&mut api, &id, true, |svc, _| match svc.previous_spec {
        Some(_) => Ok(()),
        None => bail!(
            "service {} does not have a previous spec to roll back to",
            args.service
        ),
    })
    .await?;
    println!("{}", args.service);
    if args.detach {
        return Ok(());
    }
    let expect = Expect {
        baseline: before.update_status,
        rollback: true,
    };
    progress::follow(&mut api, &id, &expect, args.quiet).await
}

async fn scale(host: &Host, args: ScaleArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let all = api::services(&mut api).await?;
    let names: Vec<String> = args.scales.iter().map(|(n, _)| n.clone()).collect();
    let mut failures = Failures::default();
    let mut follow = Vec::new();
    for ((name, n), id) in args.scales.iter().zip(api::resolve_services(&all, &names)) {
        let scaled = match id {
            Ok(id) => api::update(&mut api, &id, false, |_, spec| set_scale(spec, *n))
                .await
                .map(|before| (id, before)),
            Err(e) => Err(e),
        };
        if let Some((id, before)) = failures.note(scaled) {
            println!("{name} scaled to {n}");
            follow.push((id, before.update_status));
        }
    }
    if !args.detach {
        for (id, baseline) in follow {
            let expect = Expect {
                baseline,
                rollback: false,
            };
            failures.note(progress::follow(&mut api, &id, &expect, false).await);
        }
    }
    failures.finish()
}

/// Sets the replicas (or a job's completions); refused for global modes
/// with Docker's message.
fn set_scale(spec: &mut shoal_proto::objects::ServiceSpec, n: u64) -> anyhow::Result<()> {
    match &mut spec.mode {
        Some(Mode::Replicated(r)) => r.replicas = n,
        Some(Mode::ReplicatedJob(j)) => j.total_completions = n,
        _ => bail!("scale can only be used with replicated or replicated-job mode"),
    }
    Ok(())
}

async fn rm(host: &Host, args: RmArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let all = api::services(&mut api).await?;
    let mut failures = Failures::default();
    for (name, id) in args
        .services
        .iter()
        .zip(api::resolve_services(&all, &args.services))
    {
        let removed = match id {
            Ok(service_id) => api
                .control
                .remove_service(RemoveServiceRequest { service_id })
                .await
                .map_err(status_error)
                .map(drop),
            Err(e) => Err(e),
        };
        if failures.note(removed).is_some() {
            println!("{name}");
        }
    }
    failures.finish()
}

async fn inspect(host: &Host, args: InspectArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let all = api::services(&mut api).await?;
    let mut found = Vec::new();
    let mut failures = Failures::default();
    for id in api::resolve_services(&all, &args.services) {
        let got = match id {
            Ok(id) => api::get(&mut api, &id).await,
            Err(e) => Err(e),
        };
        if let Some(s) = failures.note(got) {
            found.push(s);
        }
    }
    if args.pretty {
        let texts: Vec<String> = found.iter().map(inspect::pretty).collect();
        print!("{}", texts.join("\n"));
    } else {
        let views: Vec<_> = found.iter().map(inspect::view).collect();
        print!("{}", render_inspect(args.format.format.as_deref(), &views)?);
    }
    failures.finish()
}

async fn ls(host: &Host, args: ListArgs) -> anyhow::Result<()> {
    let filters = Filters::new(args.filter, view::LS_FILTER_KEYS)?;
    view::LS.template(args.format.as_deref())?;
    let mut api = Api::connect(host).await?;
    let (services, counts) = api::services_with_counts(&mut api).await?;
    let services = view::select_services(services, &filters);
    print!(
        "{}",
        view::render_ls(&services, &counts, args.quiet, args.format.as_deref())?
    );
    Ok(())
}

async fn ps(host: &Host, args: PsArgs) -> anyhow::Result<()> {
    let filters = Filters::new(args.list.filter.clone(), view::PS_FILTER_KEYS)?;
    view::PS.template(args.list.format.as_deref())?;
    let mut api = Api::connect(host).await?;
    let all = api::services(&mut api).await?;
    let mut ids = Vec::new();
    for id in api::resolve_services(&all, &args.services) {
        ids.push(id?);
    }
    let tasks = api::tasks(
        &mut api,
        ListFilters {
            service_ids: ids,
            ..ListFilters::default()
        },
    )
    .await?;
    let names = api::names(&all, &api::nodes(&mut api).await?);
    print_tasks(tasks, &filters, &names, &args.list)
}

/// Follows one service until it converges, as `service update` does
/// without `-d`; `baseline` is its update status before the change.
pub(super) async fn follow(
    api: &mut super::common::Api,
    id: &str,
    baseline: Option<shoal_proto::objects::UpdateStatus>,
) -> anyhow::Result<()> {
    let expect = Expect {
        baseline,
        rollback: false,
    };
    progress::follow(api, id, &expect, false).await
}

/// Prints a task table (`service ps`, `node ps`).
pub(super) fn print_tasks(
    tasks: Vec<shoal_proto::objects::Task>,
    filters: &Filters,
    names: &view::Names,
    list: &TaskListArgs,
) -> anyhow::Result<()> {
    let tasks = view::select_tasks(tasks, filters, names);
    let out = view::render_ps(
        &tasks,
        names,
        list.no_trunc,
        list.quiet,
        list.format.as_deref(),
        SystemTime::now(),
    )?;
    print!("{out}");
    Ok(())
}
