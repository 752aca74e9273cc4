//! `node ps [NODE...]`: the tasks on nodes (default `self`), in the same
//! table as `service ps`.

use clap::Args;
use shoal_proto::control::ListFilters;

use super::resolve_all;
use crate::cmd::common::Api;
use crate::cmd::filter::Filters;
use crate::cmd::service::{self, TaskListArgs, view};
use crate::host::Host;

/// `node ps` flags.
#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    list: TaskListArgs,
    /// Nodes: id, id prefix, hostname, or `self` (the default).
    #[arg(value_name = "self|NODE")]
    nodes: Vec<String>,
}

/// Runs `node ps`.
pub async fn ps(host: &Host, args: PsArgs) -> anyhow::Result<()> {
    let filters = Filters::new(args.list.filter.clone(), view::PS_FILTER_KEYS)?;
    view::PS.template(args.list.format.as_deref())?;
    let mut api = Api::connect(host).await?;
    let wanted = match args.nodes.is_empty() {
        true => vec!["self".to_string()],
        false => args.nodes.clone(),
    };
    let mut node_ids = Vec::new();
    for id in resolve_all(&mut api, &wanted).await? {
        node_ids.push(id?);
    }
    let filter = ListFilters {
        node_ids,
        ..ListFilters::default()
    };
    let tasks = service::list_tasks(&mut api, filter).await?;
    let services = service::list_services(&mut api).await?;
    let nodes = service::list_nodes(&mut api).await?;
    let names = service::table_names(&services, &nodes);
    service::print_tasks(tasks, &filters, &names, &args.list)
}
