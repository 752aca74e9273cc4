//! The node's data plane as one actor: it follows the [`NetworkView`] the
//! dispatcher streams (overlay peers, the routing mesh, every local task's
//! VIP rules and DNS table) and wires tasks in and out for their actors
//! ([`DataPlane`]). One lock serialises every change to the kernel's
//! state; the work under it is short (netlink calls, one `nft -f`).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use shoal_proto::objects::Task;
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use super::dns::{DnsServer, DnsTable};
use super::lb::{LoadBalancer, mesh_plan, node_plan, vip_plan};
use super::plane::{AttachError, DataPlane};
use super::{Attachment, NetworkView, Overlay, Sandbox, attachment, parse_cidr};

/// How long an attach waits for the view to name the task's networks.
const VIEW_WAIT: Duration = Duration::from_secs(10);
/// How long a stopped task's egress link may outlive it. Deleting a veth
/// waits out the kernel's RCU grace period under its RTNL lock, which
/// every link being made waits for: in a rolling-update step, deleting
/// ten stopped tasks' links made the ten new tasks' attach take ~300 ms
/// instead of ~30, and a step twice as long. A veth goes by itself, in
/// the kernel's batched namespace cleanup, when the task's namespace goes
/// (the engine removes it); this only catches one that outlived it.
const EGRESS_LINGER: Duration = Duration::from_secs(10);

struct TaskNet {
    netns: PathBuf,
    networks: Vec<String>,
    dns: watch::Sender<Arc<DnsTable>>,
    _server: DnsServer,
}

struct State {
    /// Set once the node left the swarm: nothing is built any more.
    closed: bool,
    /// Set once Docker's FORWARD chain lets our interfaces through.
    forwarding: bool,
    prefix: String,
    overlay: Option<Overlay>,
    sandbox: Option<Sandbox>,
    lb: Arc<dyn LoadBalancer>,
    tasks: HashMap<String, TaskNet>,
    /// Tasks given an egress link by this process and not detached since.
    egress: HashSet<String>,
}

/// The data plane of one node.
pub struct NetAgent {
    /// Itself, for the deferred removal of egress links.
    me: Weak<NetAgent>,
    state: Mutex<State>,
    views: watch::Receiver<Option<NetworkView>>,
}

impl NetAgent {
    /// Starts following `views`; stops with `shutdown` (the kernel state
    /// stays for the next daemon to adopt).
    pub fn start(
        node_id: &str,
        views: watch::Receiver<Option<NetworkView>>,
        shutdown: CancellationToken,
    ) -> Arc<NetAgent> {
        let prefix: String = node_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .take(6)
            .collect();
        let agent = Arc::new_cyclic(|me| NetAgent {
            me: me.clone(),
            state: Mutex::new(State {
                closed: false,
                forwarding: false,
                prefix,
                overlay: None,
                sandbox: None,
                lb: Arc::from(super::lb::choose()),
                tasks: HashMap::new(),
                egress: HashSet::new(),
            }),
            views: views.clone(),
        });
        let me = agent.clone();
        tokio::spawn(async move {
            let mut views = views;
            loop {
                let view = views.borrow_and_update().clone();
                if let Some(view) = view {
                    let synced = me.sync(&view).await;
                    crate::metrics::METRICS.dataplane_sync(synced.is_err());
                    if let Err(e) = synced {
                        tracing::warn!(error = %e, "data plane sync failed; retrying with the next view");
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = views.changed() => if changed.is_err() { return },
                }
            }
        });
        agent
    }

    async fn sync(&self, view: &NetworkView) -> Result<(), String> {
        let mut state = self.state.lock().await;
        let state = &mut *state;
        if state.closed {
            return Ok(());
        }
        overlay(state, view)
            .map_err(|e| e.to_string())?
            .sync(view)
            .await
            .map_err(|e| e.to_string())?;
        // The routing mesh: the node's sandbox on ingress, then the rules.
        let own = view
            .ingress_sandboxes
            .iter()
            .find(|s| s.node_addr == view.node_addr)
            .and_then(|s| {
                s.addresses
                    .first()
                    .map(|a| (a.network_id.clone(), a.address.clone()))
            });
        if let Some((network_id, address)) = own
            && let Some(a) = attachment(&network_id, &address)
            && state
                .sandbox
                .as_ref()
                .is_none_or(|s| s.ingress_addr != a.ip)
        {
            let sandbox = overlay(state, view)
                .map_err(|e| e.to_string())?
                .sandbox(&a)
                .await
                .map_err(|e| e.to_string())?;
            // Host-mode ports reach local tasks on ingress via the sandbox.
            let net = u32::from(a.ip) & u32::MAX.checked_shl(32 - u32::from(a.prefix)).unwrap_or(0);
            let home = std::fs::File::open("/proc/self/ns/net").map_err(|e| e.to_string())?;
            super::netlink::Netlink::open(&home)
                .await
                .map_err(|e| e.to_string())?
                .route_via(Ipv4Addr::from(net), a.prefix, sandbox.sandbox_addr)
                .await
                .map_err(|e| e.to_string())?;
            state.sandbox = Some(sandbox);
        }
        let lb = state.lb.clone();
        let sandbox = state.sandbox.as_ref().map(|s| s.netns.clone());
        let mesh = mesh_plan(view);
        let node = node_plan(view);
        let tasks: Vec<(PathBuf, super::lb::VipPlan)> = state
            .tasks
            .values()
            .map(|t| (t.netns.clone(), vip_plan(view, &t.networks)))
            .collect();
        for t in state.tasks.values() {
            t.dns
                .send_replace(Arc::new(super::dns::table(view, &t.networks)));
        }
        if !state.forwarding {
            // Tried again at the next view when it fails; the rest of the
            // data plane goes on meanwhile.
            let prefix = state.prefix.clone();
            match tokio::task::spawn_blocking(move || super::forward::allow(&prefix)).await {
                Ok(Ok(())) => state.forwarding = true,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not let the node forward for Shoal")
                }
                Err(e) => tracing::warn!(error = %e, "could not let the node forward for Shoal"),
            }
        }
        tokio::task::spawn_blocking(move || {
            if let Some(ns) = sandbox {
                lb.sync_sandbox(&ns, &mesh).map_err(|e| e.to_string())?;
            }
            lb.sync_node(Path::new("/proc/self/ns/net"), &node)
                .map_err(|e| e.to_string())?;
            for (ns, plan) in tasks {
                lb.sync_task(&ns, &plan).map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Removes everything the data plane made on this node (`swarm leave`):
    /// task resolvers, the mesh's rules, Docker FORWARD accepts, every
    /// network namespace.
    pub async fn remove_all(&self) {
        let mut state = self.state.lock().await;
        state.closed = true;
        state.tasks.clear();
        let lb = state.lb.clone();
        let sandbox = state.sandbox.take().map(|s| s.netns);
        let prefix = state.prefix.clone();
        let _ = tokio::task::spawn_blocking(move || {
            super::forward::revoke(&prefix);
            if let Some(ns) = sandbox {
                let _ = lb.clear(&ns);
            }
            lb.clear(Path::new("/proc/self/ns/net"))
        })
        .await;
        if let Some(overlay) = state.overlay.as_mut()
            && let Err(e) = overlay.remove_all().await
        {
            tracing::warn!(error = %e, "removing the node's networks failed");
        }
    }

    /// A task on no network: its egress link only (the overlay is made
    /// once the node's first view arrives).
    async fn egress_only(&self, task: &Task, netns: &Path) -> Result<(), AttachError> {
        let view = self.view_with(&[]).await?;
        let mut state = self.state.lock().await;
        if state.closed {
            return Ok(());
        }
        overlay(&mut state, &view)?
            .egress(&task.id, netns, 0)
            .await?;
        state.egress.insert(task.id.clone());
        Ok(())
    }

    /// The newest view naming every network in `ids`, waiting a while.
    async fn view_with(&self, ids: &[String]) -> Result<NetworkView, AttachError> {
        let mut views = self.views.clone();
        let has = |v: &Option<NetworkView>| {
            v.as_ref()
                .is_some_and(|v| ids.iter().all(|id| v.networks.iter().any(|n| &n.id == id)))
        };
        let found = tokio::time::timeout(VIEW_WAIT, views.wait_for(has)).await;
        match found {
            Ok(Ok(v)) => Ok(v.clone().unwrap_or_default()),
            _ => Err(AttachError::NoView {
                networks: ids.to_vec(),
                waited: VIEW_WAIT,
            }),
        }
    }
}

/// The node's overlay, made from the first view that needs it.
fn overlay<'a>(state: &'a mut State, view: &NetworkView) -> Result<&'a mut Overlay, AttachError> {
    let overlay = match state.overlay.take() {
        Some(overlay) => overlay,
        None => {
            let addr: Ipv4Addr = view
                .node_addr
                .parse()
                .map_err(|_| AttachError::NodeAddr(view.node_addr.clone()))?;
            let port = u16::try_from(view.data_path_port)
                .ok()
                .filter(|p| *p != 0)
                .unwrap_or(4789);
            Overlay::new(&state.prefix, addr, port)?
        }
    };
    Ok(state.overlay.insert(overlay))
}

fn attachments(task: &Task) -> Vec<Attachment> {
    task.networks
        .iter()
        .filter_map(|n| {
            let id = n.network.as_ref()?.id.clone();
            let cidr = n.addresses.first()?;
            parse_cidr(cidr)?;
            attachment(&id, cidr)
        })
        .collect()
}

#[tonic::async_trait]
impl DataPlane for NetAgent {
    async fn attach(&self, task: &Task, netns: &Path) -> Result<(), AttachError> {
        let wanted = attachments(task);
        if wanted.is_empty() {
            return self.egress_only(task, netns).await;
        }
        let ids: Vec<String> = wanted.iter().map(|a| a.network_id.clone()).collect();
        let view = self.view_with(&ids).await?;
        let mut state = self.state.lock().await;
        let state = &mut *state;
        let overlay = overlay(state, &view)?;
        // The task's networks (and their peers) must exist; the node's and
        // other tasks' rules are the view loop's (syncing them here made
        // each start redo every local task's rules).
        overlay.sync(&view).await?;
        overlay.attach(&task.id, netns, &wanted).await?;
        overlay.egress(&task.id, netns, wanted.len()).await?;
        state.egress.insert(task.id.clone());
        let (dns, table) = watch::channel(Arc::new(super::dns::table(&view, &ids)));
        let server = DnsServer::start(netns, table, super::dns::host_upstreams()).await?;
        let plan = vip_plan(&view, &ids);
        let lb = state.lb.clone();
        let ns = netns.to_path_buf();
        tokio::task::spawn_blocking(move || lb.sync_task(&ns, &plan)).await??;
        state.tasks.insert(
            task.id.clone(),
            TaskNet {
                netns: netns.to_path_buf(),
                networks: ids,
                dns,
                _server: server,
            },
        );
        Ok(())
    }

    async fn detach(&self, task_id: &str) {
        let mut state = self.state.lock().await;
        state.tasks.remove(task_id);
        state.egress.remove(task_id);
        if let Some(overlay) = state.overlay.as_mut()
            && let Err(e) = overlay.detach(task_id).await
        {
            tracing::warn!(task = %task_id, error = %e, "detaching task from its networks failed");
        }
        drop(state);
        let (me, id) = (self.me.clone(), task_id.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(EGRESS_LINGER).await;
            let Some(me) = me.upgrade() else { return };
            let mut state = me.state.lock().await;
            // Attached again meanwhile (a restarted task keeps its id).
            if state.closed || state.egress.contains(&id) {
                return;
            }
            if let Some(overlay) = state.overlay.as_mut()
                && let Err(e) = overlay.egress_remove(&id).await
            {
                tracing::warn!(task = %id, error = %e, "removing the task's egress link failed");
            }
        });
    }
}
