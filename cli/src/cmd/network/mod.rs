//! `shoal network create|ls|inspect|rm|prune`, as `docker network` for
//! swarm-scoped networks: the driver defaults to `overlay`, and `prune`
//! removes the networks no service uses.

mod view;

#[cfg(test)]
mod tests;

use shoal_proto::listing::Joined as _;
use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use shoal_proto::control::{
    CreateNetworkRequest, GetNetworkRequest, ListNetworksRequest, ListServicesRequest,
    RemoveNetworkRequest,
};
use shoal_proto::objects::{Annotations, Driver, IpamConfig, IpamOptions, Network, NetworkSpec};

use crate::client::status_error;
use crate::host::Host;
use crate::output::listing::render_inspect;

use super::common::{Api, Failures, InspectFormat, ListArgs, confirm, resolve};
use super::filter::Filters;
use super::payload;

/// `shoal network ...`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks.
    Inspect(InspectArgs),
    /// Remove one or more networks.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all networks not used by at least one service.
    Prune(PruneArgs),
}

/// `network create` flags.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver to manage the network.
    #[arg(short, long, default_value = "overlay")]
    driver: String,
    /// Subnet in CIDR format, e.g. 10.0.9.0/24.
    #[arg(long)]
    subnet: Vec<String>,
    /// Gateway of the subnet given in the same position.
    #[arg(long)]
    gateway: Vec<String>,
    /// Allocate addresses from a sub-range of the subnet in the same position.
    #[arg(long = "ip-range")]
    ip_range: Vec<String>,
    /// IP address management driver.
    #[arg(long = "ipam-driver", default_value = "default")]
    ipam_driver: String,
    /// IPAM driver options (`key=value`).
    #[arg(long = "ipam-opt", value_name = "OPT")]
    ipam_opt: Vec<String>,
    /// Let standalone containers attach to the network.
    #[arg(long)]
    attachable: bool,
    /// Restrict external access to the network.
    #[arg(long)]
    internal: bool,
    /// Create a routing-mesh (ingress) network.
    #[arg(long)]
    ingress: bool,
    /// Driver options (`key=value`, or `encrypted`).
    #[arg(short, long = "opt", value_name = "OPT")]
    opt: Vec<String>,
    /// Network labels (`key=value`).
    #[arg(long = "label", value_name = "LABEL")]
    label: Vec<String>,
    /// The network's name.
    name: String,
}

/// `network ls` flags.
#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    list: ListArgs,
    /// Do not truncate the output.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
}

/// `network inspect` flags.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    format: InspectFormat,
    /// Networks: name, id or id prefix.
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

/// `network rm` arguments.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Networks: name, id or id prefix.
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

/// `network prune` flags.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
}

/// The question `network prune` asks without `--force`.
pub const PRUNE_WARNING: &str = "WARNING! This will remove all custom networks not used by at least one service.\nAre you sure you want to continue? [y/N]";

/// Runs `shoal network ...`.
pub async fn run(host: &Host, cmd: NetworkCommand) -> anyhow::Result<()> {
    match cmd {
        NetworkCommand::Create(args) => create(host, args).await,
        NetworkCommand::Ls(args) => ls(host, args).await,
        NetworkCommand::Inspect(args) => inspect(host, args).await,
        NetworkCommand::Rm(args) => rm(host, args).await,
        NetworkCommand::Prune(args) => prune(host, args).await,
    }
}

/// The spec `network create` asks for; address mistakes fail here.
fn spec(args: &CreateArgs) -> anyhow::Result<NetworkSpec> {
    for s in &args.subnet {
        check_cidr(s).with_context(|| format!("invalid subnet {s:?}"))?;
    }
    for r in &args.ip_range {
        check_cidr(r).with_context(|| format!("invalid ip-range {r:?}"))?;
    }
    for g in &args.gateway {
        g.parse::<IpAddr>()
            .with_context(|| format!("invalid gateway {g:?}: not an IP address"))?;
    }
    if args.gateway.len() > args.subnet.len() || args.ip_range.len() > args.subnet.len() {
        bail!("every ip-range or gateway must have a corresponding subnet");
    }
    let configs: Vec<IpamConfig> = args
        .subnet
        .iter()
        .enumerate()
        .map(|(i, subnet)| IpamConfig {
            subnet: subnet.clone(),
            range: args.ip_range.get(i).cloned().unwrap_or_default(),
            gateway: args.gateway.get(i).cloned().unwrap_or_default(),
        })
        .collect();
    let ipam_options = payload::labels(&args.ipam_opt)?;
    let ipam = (!configs.is_empty() || args.ipam_driver != "default" || !ipam_options.is_empty())
        .then(|| IpamOptions {
            driver: Some(Driver {
                name: args.ipam_driver.clone(),
                options: ipam_options,
            }),
            configs,
        });
    Ok(NetworkSpec {
        annotations: Some(Annotations {
            name: args.name.clone(),
            labels: payload::labels(&args.label)?,
        }),
        driver_config: Some(Driver {
            name: args.driver.clone(),
            options: options(&args.opt)?,
        }),
        internal: args.internal,
        attachable: args.attachable,
        ingress: args.ingress,
        ipam,
    })
}

/// `-o k=v` and bare `-o encrypted`.
fn options(list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    payload::labels(list).map_err(|e| anyhow::anyhow!("invalid --opt: {e}"))
}

fn check_cidr(s: &str) -> anyhow::Result<()> {
    let (addr, bits) = s
        .split_once('/')
        .context("expected ADDRESS/BITS, e.g. 10.0.9.0/24")?;
    let addr: IpAddr = addr.parse().context("not an IP address")?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match bits.parse::<u8>() {
        Ok(b) if b <= max => Ok(()),
        _ => bail!("the prefix length must be 0 to {max}"),
    }
}

async fn create(host: &Host, args: CreateArgs) -> anyhow::Result<()> {
    let spec = spec(&args)?;
    let mut api = Api::connect(host).await?;
    let network = api
        .control
        .create_network(CreateNetworkRequest { spec: Some(spec) })
        .await
        .map_err(status_error)?
        .into_inner()
        .network
        .unwrap_or_default();
    println!("{}", network.id);
    Ok(())
}

async fn list(api: &mut Api, filters: &Filters) -> anyhow::Result<Vec<Network>> {
    Ok(api
        .control
        .list_networks(ListNetworksRequest {
            filters: Some(filters.to_proto(false, true)),
        })
        .joined()
        .await
        .map_err(status_error)?
        .networks)
}

async fn ls(host: &Host, args: LsArgs) -> anyhow::Result<()> {
    let filters = Filters::new(args.list.filter, view::FILTER_KEYS)?;
    view::LISTING.template(args.list.format.as_deref())?;
    let mut api = Api::connect(host).await?;
    let nets = view::select(list(&mut api, &filters).await?, &filters);
    let out = view::render_list(
        &nets,
        args.list.quiet,
        args.no_trunc,
        args.list.format.as_deref(),
    )?;
    print!("{out}");
    Ok(())
}

/// The ids `names` resolve to, one result per name.
async fn resolve_all(
    api: &mut Api,
    names: &[String],
) -> anyhow::Result<Vec<anyhow::Result<String>>> {
    let nets = list(api, &Filters::default()).await?;
    let pairs: Vec<(&str, &str)> = nets
        .iter()
        .map(|n| (n.id.as_str(), view::name(n)))
        .collect();
    Ok(names
        .iter()
        .map(|n| resolve("network", n, pairs.iter().copied()))
        .collect())
}

async fn inspect(host: &Host, args: InspectArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let mut failures = Failures::default();
    let mut views = Vec::new();
    for id in resolve_all(&mut api, &args.networks).await? {
        let got = match id {
            Ok(network_id) => api
                .control
                .get_network(GetNetworkRequest { network_id })
                .await
                .map_err(status_error),
            Err(err) => Err(err),
        };
        if let Some(reply) = failures.note(got) {
            views.push(view::inspect_view(
                &reply.into_inner().network.unwrap_or_default(),
            ));
        }
    }
    print!("{}", render_inspect(args.format.format.as_deref(), &views)?);
    failures.finish()
}

async fn remove(api: &mut Api, network_id: String) -> anyhow::Result<()> {
    api.control
        .remove_network(RemoveNetworkRequest { network_id })
        .await
        .map_err(status_error)?;
    Ok(())
}

async fn rm(host: &Host, args: RmArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let ids = resolve_all(&mut api, &args.networks).await?;
    let mut failures = Failures::default();
    for (name, id) in args.networks.iter().zip(ids) {
        let removed = match id {
            Ok(id) => remove(&mut api, id).await,
            Err(err) => Err(err),
        };
        if failures.note(removed).is_some() {
            println!("{name}");
        }
    }
    failures.finish()
}

async fn prune(host: &Host, args: PruneArgs) -> anyhow::Result<()> {
    if !args.force && !confirm(PRUNE_WARNING)? {
        return Ok(());
    }
    let mut api = Api::connect(host).await?;
    let nets = list(&mut api, &Filters::default()).await?;
    let services = api
        .control
        .list_services(ListServicesRequest::default())
        .joined()
        .await
        .map_err(status_error)?
        .services;
    let mut deleted = Vec::new();
    for net in view::unused(&nets, &services) {
        // A network something else still uses (a task, a container) is
        // kept, as Docker's prune keeps it.
        match remove(&mut api, net.id.clone()).await {
            Ok(()) => deleted.push(view::name(net).to_string()),
            Err(err) => eprintln!("Warning: kept network {}: {err:#}", view::name(net)),
        }
    }
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        for name in deleted {
            println!("{name}");
        }
    }
    Ok(())
}
