//! A node's view of the overlay networks, for its data plane: which
//! networks it needs, every task and service on them across the cluster,
//! and its routing-mesh sandbox (every node's, when it runs tasks on
//! ingress). The first message is the whole view; a new whole view
//! follows whenever a commit changes it (a few commits close together
//! become one message). The view is built from the store's tasks-by-network
//! index, and rebuilt only when [`super::router`] finds a commit that
//! touched what it shows. Views are whole rather
//! than incremental because the data plane reconciles to them anyway and
//! they are small next to the traffic they steer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shoal_proto::dispatcher::{
    AliasList, EndpointAddress, EndpointService, EndpointTask, NetworkView,
};
use shoal_proto::objects::{
    Network, NetworkAttachment, Node, Service, Task, TaskState, node_status, task_status,
};
use shoal_proto::task_state::observed;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::router::{Interest, Router};
use crate::allocator::ports::is_ingress;
use crate::context::ManagerContext;
use crate::store::Tables;

/// Docker's VXLAN port, when the cluster sets none.
pub const DEFAULT_DATA_PATH_PORT: u32 = 4789;
/// Commits arriving within this of each other make one view.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// The name of a node's routing-mesh sandbox, as Docker calls it.
const INGRESS_SANDBOX: &str = "ingress-sbox";

/// Whether a task holds its place on its networks: given to a node and
/// not ended.
fn active(task: &Task) -> bool {
    let state = observed(task);
    state >= TaskState::Assigned && !state.is_terminal()
}

/// Whether load balancers may send to the task: running, healthy when it
/// has a health check, and not asked to stop.
fn ready(task: &Task) -> bool {
    let checked = task
        .spec
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.first())
        .is_some_and(|first| first != "NONE");
    let status = task.status.as_ref();
    observed(task) == TaskState::Running
        && task.desired_state() <= TaskState::Complete
        && (!checked || status.is_some_and(|s| s.health() == task_status::Health::Healthy))
}

fn network_id(attachment: &NetworkAttachment) -> &str {
    attachment.network.as_ref().map_or("", |n| n.id.as_str())
}

fn node_addr(t: &Tables, node_id: &str) -> String {
    t.get::<Node>(node_id)
        .and_then(|n| n.status.as_ref())
        .map(|s| s.addr.clone())
        .unwrap_or_default()
}

fn addresses(attachments: &[NetworkAttachment], on: &BTreeSet<&str>) -> Vec<EndpointAddress> {
    attachments
        .iter()
        .filter(|a| on.contains(network_id(a)))
        .filter_map(|a| {
            Some(EndpointAddress {
                network_id: network_id(a).to_string(),
                address: a.addresses.first()?.clone(),
                aliases: a.aliases.clone(),
            })
        })
        .collect()
}

fn publishes_ingress(service: &Service) -> bool {
    service.endpoint.as_ref().is_some_and(|e| {
        e.ports
            .iter()
            .any(|p| is_ingress(p) && p.published_port != 0)
    })
}

/// The service's aliases per network id, from its spec.
fn aliases(t: &Tables, service: &Service) -> BTreeMap<String, AliasList> {
    let spec = service.spec.as_ref();
    let task_level = spec.and_then(|s| s.task.as_ref()).map(|x| &x.networks[..]);
    let list = match task_level {
        Some(l) if !l.is_empty() => l,
        _ => spec.map_or(&[][..], |s| &s.networks[..]),
    };
    list.iter()
        .filter(|a| !a.aliases.is_empty())
        .filter_map(|a| {
            let id = t.find::<Network>(&a.target).ok()?.id.clone();
            Some((
                id,
                AliasList {
                    aliases: a.aliases.clone(),
                },
            ))
        })
        .collect()
}

/// The view `node_id` needs now.
pub fn view(t: &Tables, node_id: &str) -> NetworkView {
    let ingress = t
        .all::<Network>()
        .find(|n| n.spec.as_ref().is_some_and(|s| s.ingress));
    let ingress_id = ingress.map(|n| n.id.as_str());
    let mut ids: BTreeSet<&str> = ingress_id.into_iter().collect();
    for task in t.tasks_of_node(node_id).filter(|x| active(x)) {
        ids.extend(task.networks.iter().map(network_id));
    }
    ids.remove("");
    // Traffic from other nodes' mesh sandboxes reaches this node only if
    // it runs tasks on ingress; else their sandboxes are not its peers
    // (and a thousand-node view would carry a thousand for nothing).
    let serves_ingress = ingress_id.is_some_and(|ingress| {
        t.tasks_of_node(node_id)
            .filter(|x| active(x))
            .any(|x| x.networks.iter().any(|a| network_id(a) == ingress))
    });
    let networks: Vec<Network> = ids
        .iter()
        .filter_map(|id| t.get::<Network>(id).cloned())
        .collect();

    let mut service_ids: BTreeSet<&str> = BTreeSet::new();
    let mut tasks = Vec::new();
    // Each task once, though it may be on several of the networks.
    let on_networks: BTreeMap<&str, &Task> = ids
        .iter()
        .flat_map(|id| t.tasks_on_network(id))
        .filter(|x| active(x))
        .map(|x| (x.id.as_str(), x))
        .collect();
    for task in on_networks.into_values() {
        let addresses = addresses(&task.networks, &ids);
        if addresses.is_empty() {
            continue;
        }
        service_ids.insert(&task.service_id);
        let name = task.annotations.as_ref().map_or("", |a| a.name.as_str());
        tasks.push(EndpointTask {
            task_id: task.id.clone(),
            service_id: task.service_id.clone(),
            node_id: task.node_id.clone(),
            node_addr: node_addr(t, &task.node_id),
            addresses,
            ready: ready(task),
            name: format!("{name}.{}", task.id),
        });
    }

    // In id order (the map's), as is every list of the view: it reads
    // (and compares) the same whatever order the tables iterate in.

    let mut services: Vec<EndpointService> = t
        .all::<Service>()
        .filter(|s| service_ids.contains(s.id.as_str()) || publishes_ingress(s))
        .map(|s| {
            let endpoint = s.endpoint.clone().unwrap_or_default();
            let mode = s
                .spec
                .as_ref()
                .and_then(|x| x.endpoint.as_ref())
                .map_or(0, |e| e.mode);
            EndpointService {
                service_id: s.id.clone(),
                name: s
                    .spec
                    .as_ref()
                    .and_then(|x| x.annotations.as_ref())
                    .map(|a| a.name.clone())
                    .unwrap_or_default(),
                mode,
                virtual_ips: endpoint
                    .virtual_ips
                    .into_iter()
                    .filter(|v| ids.contains(v.network_id.as_str()))
                    .collect(),
                ports: endpoint.ports,
                aliases: aliases(t, s).into_iter().collect(),
            }
        })
        .collect();

    services.sort_unstable_by(|a, b| a.service_id.cmp(&b.service_id));

    let sandbox_nodes: Vec<&Node> = match serves_ingress {
        true => t.all::<Node>().collect(),
        false => t.get::<Node>(node_id).into_iter().collect(),
    };
    let mut ingress_sandboxes: Vec<EndpointTask> = sandbox_nodes
        .into_iter()
        .filter(|n| {
            n.status
                .as_ref()
                .is_some_and(|s| s.state() == node_status::State::Ready)
        })
        .filter_map(|n| {
            let addresses = addresses(std::slice::from_ref(n.ingress.as_ref()?), &ids);
            (!addresses.is_empty()).then(|| EndpointTask {
                node_id: n.id.clone(),
                node_addr: node_addr(t, &n.id),
                addresses,
                ready: true,
                name: format!("{INGRESS_SANDBOX}.{}", n.id),
                ..Default::default()
            })
        })
        .collect();
    ingress_sandboxes.sort_unstable_by(|a, b| a.node_id.cmp(&b.node_id));

    NetworkView {
        networks,
        tasks,
        services,
        node_addr: node_addr(t, node_id),
        data_path_port: t
            .cluster()
            .map(|c| c.data_path_port)
            .filter(|p| *p != 0)
            .unwrap_or(DEFAULT_DATA_PATH_PORT),
        ingress_sandboxes,
        more: false,
    }
}

/// What `view`, built for `node_id`, depends on: the router wakes its
/// stream only for changes to these.
fn interest(view: &NetworkView, node_id: &str) -> Interest {
    let ingress = view
        .networks
        .iter()
        .find(|n| n.spec.as_ref().is_some_and(|s| s.ingress))
        .map(|n| n.id.as_str());
    let serves_ingress = view.tasks.iter().any(|t| {
        t.node_id == node_id
            && t.addresses
                .iter()
                .any(|a| Some(a.network_id.as_str()) == ingress)
    });
    Interest {
        networks: view.networks.iter().map(|n| n.id.clone()).collect(),
        nodes: view.tasks.iter().map(|t| t.node_id.clone()).collect(),
        every_node: serves_ingress,
    }
}

/// The stream for `node_id`: a view now, then one after every change,
/// until the node hangs up or this manager stops leading.
pub async fn stream(
    ctx: ManagerContext,
    router: &Router,
    node_id: String,
) -> Result<ReceiverStream<Result<NetworkView, Status>>, Status> {
    // Subscribed first: every commit after the first view reaches the inbox.
    let inbox = router
        .networks(&node_id)
        .await
        .ok_or_else(|| Status::unavailable("this manager is shutting down"))?;
    let first = ctx.store.view(|t| view(t, &node_id));
    inbox.set_interest(interest(&first, &node_id));
    let (tx, rx) = mpsc::channel(4);
    if !send_parts(&tx, first.clone()).await {
        return Err(Status::cancelled("networks stream closed"));
    }
    let mut term = crate::leadership::Term::current(&ctx);
    tracing::debug!(node = %node_id, "networks stream opened");
    tokio::spawn(async move {
        let mut last = first;
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = term.lost() => {
                    let _ = tx.send(Err(crate::grpc_status::leadership_changed(super::RECONNECT))).await;
                    return;
                }
                _ = inbox.inbox.wait() => {}
            }
            // Let a burst of commits settle, then fold it into one view.
            tokio::time::sleep(DEBOUNCE).await;
            if !inbox.inbox.take() {
                continue;
            }
            let next = ctx.store.view(|t| view(t, &node_id));
            inbox.set_interest(interest(&next, &node_id));
            if next != last {
                if !send_parts(&tx, next.clone()).await {
                    return;
                }
                last = next;
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests;

/// Sends `message` in parts of about a megabyte, so a view or an
/// assignment set of any size stays under the worker's message limit;
/// false once the stream is closed.
pub(super) async fn send_parts<T: shoal_proto::listing::Parted>(
    tx: &mpsc::Sender<Result<T, Status>>,
    message: T,
) -> bool {
    for part in message.parts(shoal_proto::listing::CHUNK_BYTES) {
        if tx.send(Ok(part)).await.is_err() {
            return false;
        }
    }
    true
}
