//! The names a task can resolve, computed from the [`NetworkView`] for the
//! networks the task is attached to.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;

use shoal_proto::dispatcher::{EndpointService, EndpointTask};
use shoal_proto::objects::endpoint_spec::ResolutionMode;

use crate::net::{NetworkView, parse_cidr};

/// What a name resolves to inside one task's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsTable {
    /// Lower-case name (no trailing dot) → addresses, in a stable order.
    names: BTreeMap<String, Vec<Ipv4Addr>>,
    /// Names the cluster knows but this task must not see (services on
    /// networks it is not on): answered NXDOMAIN, never forwarded.
    hidden: HashSet<String>,
}

/// The answer for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A cluster name: its addresses (possibly none: no ready task).
    Local(&'a [Ipv4Addr]),
    /// Not a name of this cluster as the task sees it.
    NxDomain,
    /// Not ours: ask the host's resolvers.
    Forward,
}

impl DnsTable {
    /// Looks `name` up (any case, with or without the trailing dot).
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        let name = normalize(name);
        if let Some(addrs) = self.names.get(&name) {
            return Lookup::Local(addrs);
        }
        // Single-label names and `tasks.*` can only be cluster names (the
        // task's resolv.conf has no search domains): do not leak them.
        if self.hidden.contains(&name) || !name.contains('.') || name.starts_with("tasks.") {
            return Lookup::NxDomain;
        }
        Lookup::Forward
    }

    /// Every name this table answers, for logs and tests.
    pub fn names(&self) -> impl Iterator<Item = (&str, &[Ipv4Addr])> {
        self.names.iter().map(|(n, a)| (n.as_str(), a.as_slice()))
    }

    fn add(&mut self, name: &str, addrs: &[Ipv4Addr]) {
        if name.is_empty() {
            return;
        }
        let entry = self.names.entry(normalize(name)).or_default();
        for a in addrs {
            if !entry.contains(a) {
                entry.push(*a);
            }
        }
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The table for a task attached to `task_network_ids`. The ingress
/// network is left out: it carries the routing mesh, not discovery.
pub fn table(view: &NetworkView, task_network_ids: &[String]) -> DnsTable {
    let ingress: HashSet<&str> = view
        .networks
        .iter()
        .filter(|n| n.spec.as_ref().is_some_and(|s| s.ingress))
        .map(|n| n.id.as_str())
        .collect();
    let shared: BTreeSet<&str> = task_network_ids
        .iter()
        .map(String::as_str)
        .filter(|n| !ingress.contains(n))
        .collect();

    let mut t = DnsTable::default();
    for svc in &view.services {
        let tasks: Vec<&EndpointTask> = view
            .tasks
            .iter()
            .filter(|k| k.service_id == svc.service_id)
            .collect();
        let mut visible = false;
        for net in &shared {
            let task_ips = ready_ips(&tasks, net);
            let on_net = !task_ips.is_empty()
                || svc.virtual_ips.iter().any(|v| v.network_id == *net)
                || tasks
                    .iter()
                    .any(|k| k.addresses.iter().any(|a| a.network_id == *net));
            if !on_net {
                continue;
            }
            visible = true;
            let service_ips = match svc.mode() {
                ResolutionMode::Dnsrr => task_ips.clone(),
                ResolutionMode::Vip => vips(svc, net),
            };
            for name in std::iter::once(svc.name.as_str()).chain(aliases(svc, net)) {
                t.add(name, &service_ips);
                t.add(&format!("tasks.{name}"), &task_ips);
            }
        }
        if !visible {
            hide(&mut t, svc);
        }
    }
    for task in &view.tasks {
        // Task names are the cluster's even when not resolvable here.
        t.hidden.insert(normalize(&task.name));
        if !task.ready {
            continue;
        }
        let shared_addrs = task
            .addresses
            .iter()
            .filter(|a| shared.contains(a.network_id.as_str()));
        for addr in shared_addrs {
            if let Some((ip, _)) = parse_cidr(&addr.address) {
                t.add(&task.name, &[ip]);
                for alias in &addr.aliases {
                    t.add(alias, &[ip]);
                }
            }
        }
    }
    // A name visible on one network and hidden by another service stays
    // visible.
    let DnsTable { names, hidden } = &mut t;
    hidden.retain(|h| !names.contains_key(h));
    t
}

fn hide(t: &mut DnsTable, svc: &EndpointService) {
    let all = svc
        .aliases
        .values()
        .flat_map(|l| l.aliases.iter().map(String::as_str));
    for name in std::iter::once(svc.name.as_str()).chain(all) {
        t.hidden.insert(normalize(name));
        t.hidden.insert(normalize(&format!("tasks.{name}")));
    }
}

fn aliases<'a>(svc: &'a EndpointService, net: &str) -> impl Iterator<Item = &'a str> {
    svc.aliases
        .get(net)
        .into_iter()
        .flat_map(|l| l.aliases.iter().map(String::as_str))
}

fn vips(svc: &EndpointService, net: &str) -> Vec<Ipv4Addr> {
    svc.virtual_ips
        .iter()
        .filter(|v| v.network_id == net)
        .filter_map(|v| parse_cidr(&v.addr).map(|(ip, _)| ip))
        .collect()
}

/// The ready tasks' addresses on `net`, in the view's order.
pub(crate) fn ready_ips(tasks: &[&EndpointTask], net: &str) -> Vec<Ipv4Addr> {
    tasks
        .iter()
        .filter(|k| k.ready)
        .flat_map(|k| k.addresses.iter())
        .filter(|a| a.network_id == net)
        .filter_map(|a| parse_cidr(&a.address).map(|(ip, _)| ip))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::testview::{service, task, view};

    #[test]
    fn services_tasks_and_hidden_networks() {
        let mut v = view();
        v.services
            .push(service("s1", "web", "front", "10.0.5.2/24"));
        v.services.push(service("s2", "db", "back", "10.0.6.2/24"));
        let mut rr = service("s3", "cache", "front", "");
        rr.mode = ResolutionMode::Dnsrr as i32;
        rr.virtual_ips.clear();
        v.services.push(rr);
        v.tasks
            .push(task("t1", "s1", "web.1.t1", "front", "10.0.5.11/24", true));
        v.tasks
            .push(task("t2", "s1", "web.2.t2", "front", "10.0.5.12/24", true));
        v.tasks
            .push(task("t3", "s1", "web.3.t3", "front", "10.0.5.13/24", false));
        v.tasks
            .push(task("t4", "s2", "db.1.t4", "back", "10.0.6.11/24", true));
        v.tasks.push(task(
            "t5",
            "s3",
            "cache.1.t5",
            "front",
            "10.0.5.21/24",
            true,
        ));

        let t = table(&v, &["front".to_string()]);
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(t.lookup("web"), Lookup::Local(&[ip("10.0.5.2")]));
        assert_eq!(t.lookup("WEB."), Lookup::Local(&[ip("10.0.5.2")]));
        assert_eq!(t.lookup("web-alias"), Lookup::Local(&[ip("10.0.5.2")]));
        assert_eq!(
            t.lookup("tasks.web"),
            Lookup::Local(&[ip("10.0.5.11"), ip("10.0.5.12")])
        );
        assert_eq!(t.lookup("cache"), Lookup::Local(&[ip("10.0.5.21")]));
        assert_eq!(t.lookup("web.2.t2"), Lookup::Local(&[ip("10.0.5.12")]));
        // Not ready: out of DNS.
        assert_eq!(t.lookup("web.3.t3"), Lookup::NxDomain);
        // Another network's service.
        assert_eq!(t.lookup("db"), Lookup::NxDomain);
        assert_eq!(t.lookup("tasks.db"), Lookup::NxDomain);
        assert_eq!(t.lookup("db.1.t4"), Lookup::NxDomain);
        assert_eq!(t.lookup("nosuch"), Lookup::NxDomain);
        assert_eq!(t.lookup("example.com"), Lookup::Forward);
    }

    #[test]
    fn ingress_is_not_discovery() {
        let mut v = view();
        v.services
            .push(service("s1", "web", "ingress", "10.255.0.2/16"));
        v.tasks.push(task(
            "t1",
            "s1",
            "web.1.t1",
            "ingress",
            "10.255.0.5/16",
            true,
        ));
        let t = table(&v, &["ingress".to_string()]);
        assert_eq!(t.lookup("web"), Lookup::NxDomain);
        assert_eq!(t.names().count(), 0);
    }
}
