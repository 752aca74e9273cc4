//! `shoal node ls|inspect|ps|rm|update|promote|demote`, as `docker node`.
//! Nodes are named by id, id prefix, hostname, or `self` (the node whose
//! daemon the CLI talks to). Changes read the node first and send its
//! version back, so a concurrent change fails instead of being lost.

mod ps;
mod view;

#[cfg(test)]
mod tests;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use shoal_proto::control::{
    GetNodeRequest, ListNodesRequest, RemoveNodeRequest, UpdateNodeRequest,
};
use shoal_proto::listing::Joined as _;
use shoal_proto::objects::{Node, NodeRole, NodeSpec, node_spec::Availability};

use crate::client::status_error;
use crate::host::Host;
use crate::output::listing::render_inspect;

use super::common::{Api, Failures, InspectFormat, ListArgs, resolve};
use super::filter::Filters;
use super::payload;

/// `shoal node ...`
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes in the swarm.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more nodes (`self` for this one).
    Inspect(InspectArgs),
    /// List tasks running on one or more nodes (default: this node).
    Ps(ps::PsArgs),
    /// Remove one or more nodes from the swarm.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Update a node (availability, labels, role).
    Update(UpdateArgs),
    /// Promote one or more nodes to manager.
    Promote(NodesArgs),
    /// Demote one or more nodes from manager.
    Demote(NodesArgs),
}

/// `node inspect` flags.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    format: InspectFormat,
    /// Print the information in a human friendly format.
    #[arg(long, conflicts_with = "format")]
    pretty: bool,
    /// Nodes: id, id prefix, hostname, or `self`.
    #[arg(required = true, value_name = "self|NODE")]
    nodes: Vec<String>,
}

/// `node rm` flags.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force remove a node from the swarm.
    #[arg(short, long)]
    force: bool,
    /// Nodes: id, id prefix or hostname.
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<String>,
}

/// `node promote` / `node demote` arguments.
#[derive(Debug, Args)]
pub struct NodesArgs {
    /// Nodes: id, id prefix, hostname, or `self`.
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<String>,
}

/// A node's availability for new tasks.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AvailabilityArg {
    /// Tasks may be scheduled on the node.
    Active,
    /// No new tasks; running ones stay.
    Pause,
    /// No tasks: running ones are moved elsewhere.
    Drain,
}

/// A node's role.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Runs tasks only.
    Worker,
    /// Also takes part in Raft and serves the control API.
    Manager,
}

/// `node update` flags.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Availability of the node.
    #[arg(long, value_enum)]
    availability: Option<AvailabilityArg>,
    /// Add or update a node label (`key=value`).
    #[arg(long = "label-add", value_name = "LABEL")]
    label_add: Vec<String>,
    /// Remove a node label if it exists.
    #[arg(long = "label-rm", value_name = "KEY")]
    label_rm: Vec<String>,
    /// Role of the node.
    #[arg(long, value_enum)]
    role: Option<RoleArg>,
    /// The node: id, id prefix, hostname, or `self`.
    #[arg(value_name = "NODE")]
    node: String,
}

/// Runs `shoal node ...`.
pub async fn run(host: &Host, cmd: NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Ls(args) => ls(host, args).await,
        NodeCommand::Inspect(args) => inspect(host, args).await,
        NodeCommand::Ps(args) => ps::ps(host, args).await,
        NodeCommand::Rm(args) => rm(host, args).await,
        NodeCommand::Update(args) => update(host, args).await,
        NodeCommand::Promote(args) => set_role(host, args, NodeRole::Manager).await,
        NodeCommand::Demote(args) => set_role(host, args, NodeRole::Worker).await,
    }
}

async fn list(api: &mut Api, filters: &Filters) -> anyhow::Result<Vec<Node>> {
    Ok(api
        .control
        .list_nodes(ListNodesRequest {
            filters: Some(filters.to_proto(false, false)),
        })
        .joined()
        .await
        .map_err(status_error)?
        .nodes)
}

async fn ls(host: &Host, args: ListArgs) -> anyhow::Result<()> {
    let filters = Filters::new(args.filter, view::FILTER_KEYS)?;
    view::LISTING.template(args.format.as_deref())?;
    let mut api = Api::connect(host).await?;
    let self_id = api.local_node_id().await?;
    let nodes = view::select(list(&mut api, &filters).await?, &filters);
    print!(
        "{}",
        view::render_list(&nodes, &self_id, args.quiet, args.format.as_deref())?
    );
    Ok(())
}

/// The ids `names` resolve to (`self` included), one result per name.
async fn resolve_all(
    api: &mut Api,
    names: &[String],
) -> anyhow::Result<Vec<anyhow::Result<String>>> {
    let nodes = list(api, &Filters::default()).await?;
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for n in &nodes {
        // A node that just joined has no description (hostname) until its
        // first session: its id still names it.
        let hostname = n.description.as_ref().map_or("", |d| d.hostname.as_str());
        pairs.push((&n.id, hostname));
        if let Some(a) = n.spec.as_ref().and_then(|s| s.annotations.as_ref())
            && !a.name.is_empty()
        {
            pairs.push((&n.id, &a.name));
        }
    }
    let self_id = match names.iter().any(|n| n == "self") {
        true => api.local_node_id().await?,
        false => String::new(),
    };
    Ok(names
        .iter()
        .map(|name| match name.as_str() {
            "self" if self_id.is_empty() => bail!("this node is not part of a swarm"),
            "self" => Ok(self_id.clone()),
            _ => resolve("node", name, pairs.iter().copied()),
        })
        .collect())
}

async fn get(api: &mut Api, id: String) -> anyhow::Result<Node> {
    Ok(api
        .control
        .get_node(GetNodeRequest { node_id: id })
        .await
        .map_err(status_error)?
        .into_inner()
        .node
        .unwrap_or_default())
}

async fn inspect(host: &Host, args: InspectArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let mut found = Vec::new();
    let mut failures = Failures::default();
    for id in resolve_all(&mut api, &args.nodes).await? {
        let got = match id {
            Ok(id) => get(&mut api, id).await,
            Err(err) => Err(err),
        };
        if let Some(node) = failures.note(got) {
            found.push(node);
        }
    }
    if args.pretty {
        let texts: Vec<String> = found.iter().map(view::pretty).collect();
        print!("{}", texts.join("\n"));
    } else {
        let views: Vec<_> = found.iter().map(view::inspect_view).collect();
        print!("{}", render_inspect(args.format.format.as_deref(), &views)?);
    }
    failures.finish()
}

async fn rm(host: &Host, args: RmArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let ids = resolve_all(&mut api, &args.nodes).await?;
    let mut failures = Failures::default();
    for (name, id) in args.nodes.iter().zip(ids) {
        let removed = match id {
            Ok(node_id) => api
                .control
                .remove_node(RemoveNodeRequest {
                    node_id,
                    force: args.force,
                })
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

/// Reads the node, lets `change` edit its spec, and writes it back with the
/// version read. `change` returns false to skip the write. Another writer
/// may move the node in between (the dispatcher records its status, a
/// certificate is reissued): the store then answers `Aborted` and the
/// change is made again on a fresh read, a few times.
async fn change_spec(
    api: &mut Api,
    id: String,
    mut change: impl FnMut(&mut NodeSpec) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        let node = get(api, id.clone()).await?;
        let version = node.meta.map(|m| m.version).unwrap_or_default();
        let mut spec = node.spec.unwrap_or_default();
        if !change(&mut spec)? {
            return Ok(());
        }
        match api
            .control
            .update_node(UpdateNodeRequest {
                node_id: id.clone(),
                version,
                spec: Some(spec),
            })
            .await
        {
            Ok(_) => return Ok(()),
            Err(status) if status.code() == tonic::Code::Aborted && attempt < ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
            }
            Err(status) => return Err(status_error(status)),
        }
    }
    Ok(())
}

async fn update(host: &Host, args: UpdateArgs) -> anyhow::Result<()> {
    let add = payload::labels(&args.label_add)?;
    let mut api = Api::connect(host).await?;
    let names = [args.node.clone()];
    let id = resolve_all(&mut api, &names)
        .await?
        .into_iter()
        .next()
        .unwrap_or_else(|| bail!("No such node: {}", args.node))?;
    change_spec(&mut api, id, |spec| {
        apply_update(spec, &args, add.clone())?;
        Ok(true)
    })
    .await?;
    println!("{}", args.node);
    Ok(())
}

/// Applies `node update` flags to a spec; removing an absent label fails,
/// as Docker's does.
fn apply_update(
    spec: &mut NodeSpec,
    args: &UpdateArgs,
    add: std::collections::BTreeMap<String, String>,
) -> anyhow::Result<()> {
    if let Some(a) = args.availability {
        spec.set_availability(match a {
            AvailabilityArg::Active => Availability::Active,
            AvailabilityArg::Pause => Availability::Pause,
            AvailabilityArg::Drain => Availability::Drain,
        });
    }
    if let Some(r) = args.role {
        spec.set_desired_role(match r {
            RoleArg::Worker => NodeRole::Worker,
            RoleArg::Manager => NodeRole::Manager,
        });
    }
    let labels = &mut spec.annotations.get_or_insert_with(Default::default).labels;
    for key in &args.label_rm {
        if labels.remove(key).is_none() {
            bail!("key {key} doesn't exist in node's labels");
        }
    }
    labels.extend(add);
    Ok(())
}

async fn set_role(host: &Host, args: NodesArgs, role: NodeRole) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let ids = resolve_all(&mut api, &args.nodes).await?;
    let mut failures = Failures::default();
    for (name, id) in args.nodes.iter().zip(ids) {
        let mut already = false;
        let changed = match id {
            Ok(id) => {
                change_spec(&mut api, id, |spec| {
                    already = spec.desired_role() == role;
                    spec.set_desired_role(role);
                    Ok(!already)
                })
                .await
            }
            Err(err) => Err(err),
        };
        if failures.note(changed).is_some() {
            println!("{}", role_message(name, role, already));
        }
    }
    failures.finish()
}

/// What promote/demote print, as Docker's.
fn role_message(name: &str, role: NodeRole, already: bool) -> String {
    match (role, already) {
        (NodeRole::Manager, false) => format!("Node {name} promoted to a manager in the swarm."),
        (NodeRole::Manager, true) => format!("Node {name} is already a manager."),
        (NodeRole::Worker, false) => format!("Manager {name} demoted in the swarm."),
        (NodeRole::Worker, true) => format!("Node {name} is already a worker."),
    }
}
