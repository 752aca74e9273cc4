//! One allocation pass over a view of the store: what networks, services,
//! tasks and nodes must be written so that each has its network
//! resources. Pure: it reads the tables and the pools and returns the
//! objects to update; the loop records them in one transaction.
//!
//! Order matters and follows the dependencies: networks first (their
//! subnets), then services (VIPs on those networks, published ports),
//! then tasks (an address per network of their service, ingress included
//! when the service publishes through the routing mesh), then nodes
//! (their routing-mesh address on ingress).

use std::collections::HashMap;
use std::time::SystemTime;

use shoal_proto::objects::{
    Endpoint, EndpointSpec, Network, NetworkAttachment, NetworkAttachmentConfig, Node, Service,
    Task, TaskState, VirtualIp, endpoint_spec,
};
use shoal_proto::task_state::observed;

use super::ipam::parse_cidr;
use super::pools::{Pools, is_allocated, is_ingress_network};
use super::ports::{is_ingress, publish};
use crate::store::Tables;

/// What a pass writes.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Networks given their subnet and VXLAN id.
    pub networks: Vec<Network>,
    /// Services whose endpoint (VIPs, ports) changed.
    pub services: Vec<Service>,
    /// Tasks allocated (now Pending) or explained (still New).
    pub tasks: Vec<Task>,
    /// Nodes given their ingress address.
    pub nodes: Vec<Node>,
    /// Tasks left New: frees are worth another pass.
    pub waiting: usize,
}

impl Outcome {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
            && self.services.is_empty()
            && self.tasks.is_empty()
            && self.nodes.is_empty()
    }
}

/// Whether a task waits for the allocator: New and meant to run.
pub fn wants_allocation(task: &Task) -> bool {
    observed(task) == TaskState::New
        && matches!(
            task.desired_state(),
            TaskState::Running | TaskState::Complete
        )
}

/// The networks a task spec asks for, else the service's (older specs
/// put them at the service level).
fn targets<'a>(
    task_networks: &'a [NetworkAttachmentConfig],
    service: &'a Service,
) -> &'a [NetworkAttachmentConfig] {
    if !task_networks.is_empty() {
        return task_networks;
    }
    let spec = service.spec.as_ref();
    match spec.and_then(|s| s.task.as_ref()).map(|t| &t.networks[..]) {
        Some(list) if !list.is_empty() => list,
        _ => spec.map_or(&[][..], |s| &s.networks[..]),
    }
}

/// Networks as this pass sees them (allocated ones updated).
struct Networks<'a> {
    t: &'a Tables,
    current: HashMap<String, Network>,
}

impl Networks<'_> {
    /// Resolves a target (id, name or id prefix) to an allocated network.
    fn resolve(&self, target: &str) -> Result<&Network, String> {
        let found = self
            .t
            .find::<Network>(target)
            .map_err(|e| format!("network {target} cannot be attached: {e}"))?;
        let network = self.current.get(&found.id).unwrap_or(found);
        if is_allocated(network) {
            Ok(network)
        } else {
            Err(format!("network {target} has no subnet yet"))
        }
    }

    fn ingress(&self) -> Option<&Network> {
        let id = &self.t.all::<Network>().find(|n| is_ingress_network(n))?.id;
        self.resolve(id).ok()
    }
}

/// Runs a pass. `cursors` is where each network's hand-out stands.
pub fn allocate(
    t: &Tables,
    pools: &mut Pools,
    cursors: &HashMap<String, u32>,
    now: SystemTime,
) -> Outcome {
    let mut out = Outcome::default();
    let mut nets = Networks {
        t,
        current: HashMap::new(),
    };
    let mut pending: Vec<&Network> = t.all::<Network>().filter(|n| !is_allocated(n)).collect();
    // Ingress first, so it gets the first block (10.0.0.0/24), as Docker.
    pending.sort_by_key(|n| {
        (
            !is_ingress_network(n),
            created(n.meta.as_ref()),
            n.id.clone(),
        )
    });
    for network in pending {
        match pools.allocate_network(network, cursors) {
            Ok(done) => {
                nets.current.insert(done.id.clone(), done.clone());
                out.networks.push(done);
            }
            Err(e) => tracing::warn!(network = %network.id, error = %e, "network not allocated"),
        }
    }

    let mut services: HashMap<&str, Result<Service, String>> = HashMap::new();
    for service in t.all::<Service>() {
        let result = endpoint(&nets, pools, service).map(|endpoint| {
            let mut s = service.clone();
            if s.endpoint.as_ref() != Some(&endpoint) {
                s.endpoint = Some(endpoint);
                out.services.push(s.clone());
            }
            s
        });
        if let Err(e) = &result {
            tracing::debug!(service = %service.id, error = %e, "service not allocated");
        }
        services.insert(service.id.as_str(), result);
    }

    let ingress = nets.ingress().cloned();
    for task in t.all::<Task>().filter(|x| wants_allocation(x)) {
        let Some(service) = services.get(task.service_id.as_str()) else {
            continue;
        };
        let result = service
            .clone()
            .and_then(|s| attach(&nets, pools, ingress.as_ref(), &s, task).map(|a| (s, a)));
        let mut task = task.clone();
        let status = task.status.get_or_insert_default();
        match result {
            Ok((service, attachments)) => {
                task.networks = attachments;
                task.endpoint = service.endpoint.clone();
                status.set_state(TaskState::Pending);
                status.message = "pending task scheduling".into();
                status.err.clear();
                status.timestamp = Some(now.into());
                out.tasks.push(task);
            }
            Err(e) => {
                out.waiting += 1;
                let err = format!("network allocation failed: {e}");
                if status.err != err {
                    status.err = err;
                    status.timestamp = Some(now.into());
                    out.tasks.push(task);
                }
            }
        }
    }

    if let Some(ingress) = ingress.as_ref() {
        let mut without = 0usize;
        let mut why = String::new();
        for node in t.all::<Node>() {
            match node_ingress(pools, ingress, node) {
                Ok(Some(node)) => out.nodes.push(node),
                Ok(None) => {}
                Err(e) => {
                    without += 1;
                    why = e;
                }
            }
        }
        // Once per pass, not once per node: a full ingress subnet leaves
        // every further node without an address.
        if without > 0 {
            tracing::warn!(
                nodes = without,
                error = %why,
                "nodes without an ingress address: the ingress network's subnet is full (recreate it larger: network create --ingress --subnet)"
            );
        }
    }
    out
}

fn created(meta: Option<&shoal_proto::objects::Meta>) -> (i64, i32) {
    meta.and_then(|m| m.created_at)
        .map_or((0, 0), |t| (t.seconds, t.nanos))
}

/// The service's endpoint: its ports published, a VIP per network (kept
/// when it had one) unless it resolves by DNS round robin.
fn endpoint(nets: &Networks<'_>, pools: &mut Pools, service: &Service) -> Result<Endpoint, String> {
    let spec: EndpointSpec = service
        .spec
        .as_ref()
        .and_then(|s| s.endpoint.clone())
        .unwrap_or_default();
    let previous = service.endpoint.clone().unwrap_or_default();
    let ports = publish(&mut pools.ports, &service.id, &spec.ports, &previous.ports)
        .map_err(|e| e.to_string())?;
    let mut wanted: Vec<String> = Vec::new();
    if ports.iter().any(is_ingress) {
        let ingress = nets
            .ingress()
            .ok_or("the ingress network has no subnet yet")?;
        wanted.push(ingress.id.clone());
    }
    for target in targets(&[], service) {
        let id = nets.resolve(&target.target)?.id.clone();
        if !wanted.contains(&id) {
            wanted.push(id);
        }
    }
    if spec.mode() == endpoint_spec::ResolutionMode::Dnsrr {
        wanted.clear();
    }
    // Free the VIPs on networks the service left; keep the others.
    let mut virtual_ips = Vec::with_capacity(wanted.len());
    for vip in &previous.virtual_ips {
        if !wanted.contains(&vip.network_id)
            && let (Some(pool), Some((addr, _))) = (
                pools.addresses.get_mut(&vip.network_id),
                parse_cidr(&vip.addr),
            )
        {
            pool.release(addr);
        }
    }
    let mut fresh: Vec<(String, u32)> = Vec::new();
    for id in wanted {
        if let Some(vip) = previous.virtual_ips.iter().find(|v| v.network_id == id) {
            virtual_ips.push(vip.clone());
            continue;
        }
        let Some(pool) = pools.addresses.get_mut(&id) else {
            continue;
        };
        match pool.allocate() {
            Ok(addr) => {
                fresh.push((id.clone(), addr));
                virtual_ips.push(VirtualIp {
                    network_id: id,
                    addr: pool.subnet().cidr_of(addr),
                });
            }
            Err(e) => {
                release(pools, &fresh);
                return Err(e.to_string());
            }
        }
    }
    Ok(Endpoint {
        spec: service.spec.as_ref().and_then(|s| s.endpoint.clone()),
        ports,
        virtual_ips,
    })
}

fn release(pools: &mut Pools, held: &[(String, u32)]) {
    for (network, addr) in held {
        if let Some(pool) = pools.addresses.get_mut(network) {
            pool.release(*addr);
        }
    }
}

/// The task's attachments: ingress first when the service publishes ports
/// (through the mesh, or host-mode ports, which reach the task through its
/// node's sandbox too), then its networks with their aliases.
fn attach(
    nets: &Networks<'_>,
    pools: &mut Pools,
    ingress: Option<&Network>,
    service: &Service,
    task: &Task,
) -> Result<Vec<NetworkAttachment>, String> {
    let mut wanted: Vec<(Network, Vec<String>)> = Vec::new();
    let publishes = service
        .endpoint
        .as_ref()
        .is_some_and(|e| !e.ports.is_empty());
    if publishes {
        let ingress = ingress.ok_or("the ingress network has no subnet yet")?;
        wanted.push((ingress.clone(), Vec::new()));
    }
    let own = task.spec.as_ref().map_or(&[][..], |s| &s.networks[..]);
    for target in targets(own, service) {
        let network = nets.resolve(&target.target)?;
        if !wanted.iter().any(|(n, _)| n.id == network.id) {
            wanted.push((network.clone(), target.aliases.clone()));
        }
    }
    let mut held: Vec<(String, u32)> = Vec::new();
    let mut attachments = Vec::with_capacity(wanted.len());
    for (network, aliases) in wanted {
        let Some(pool) = pools.addresses.get_mut(&network.id) else {
            release(pools, &held);
            return Err(format!("network {} has no address pool", network.id));
        };
        match pool.allocate() {
            Ok(addr) => {
                held.push((network.id.clone(), addr));
                attachments.push(NetworkAttachment {
                    addresses: vec![pool.subnet().cidr_of(addr)],
                    network: Some(network),
                    aliases,
                });
            }
            Err(e) => {
                release(pools, &held);
                return Err(e.to_string());
            }
        }
    }
    Ok(attachments)
}

/// The node with its ingress address, if it needs one.
fn node_ingress(pools: &mut Pools, ingress: &Network, node: &Node) -> Result<Option<Node>, String> {
    let Some(pool) = pools.addresses.get_mut(&ingress.id) else {
        return Ok(None);
    };
    let has = node.ingress.as_ref().is_some_and(|a| {
        a.network.as_ref().is_some_and(|n| n.id == ingress.id)
            && a.addresses
                .iter()
                .any(|x| parse_cidr(x).is_some_and(|(addr, _)| pool.subnet().contains(addr)))
    });
    if has {
        return Ok(None);
    }
    let addr = pool.allocate().map_err(|e| e.to_string())?;
    let mut node = node.clone();
    node.ingress = Some(NetworkAttachment {
        network: Some(ingress.clone()),
        addresses: vec![pool.subnet().cidr_of(addr)],
        aliases: Vec::new(),
    });
    Ok(Some(node))
}
