//! The pass over hand-built tables, and the loop on an in-process Raft
//! together with the orchestrator.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use shoal_proto::objects::{
    Annotations, ContainerSpec, EndpointSpec, IpamConfig, IpamOptions, Network,
    NetworkAttachmentConfig, NetworkSpec, Node, NodeStatus, PortConfig, ReplicatedService, Service,
    ServiceSpec, Task, TaskSpec, TaskState, endpoint_spec, node_status, service_spec,
};

use super::pass::{Outcome, allocate};
use super::pools::{Pools, VXLAN_OPTION, vxlan_of};
use crate::store::{Store, StoreError, Tx};
use crate::testing::{eventually, leader};

fn network(id: &str, name: &str) -> Network {
    Network {
        id: id.into(),
        spec: Some(NetworkSpec {
            annotations: Some(Annotations {
                name: name.into(),
                ..Default::default()
            }),
            ingress: name == "ingress",
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn with_subnet(mut n: Network, subnet: &str, gateway: &str) -> Network {
    n.spec.get_or_insert_default().ipam = Some(IpamOptions {
        configs: vec![IpamConfig {
            subnet: subnet.into(),
            gateway: gateway.into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    n
}

fn service(id: &str, networks: &[&str], ports: &[(u32, u32)]) -> Service {
    let endpoint = EndpointSpec {
        ports: ports
            .iter()
            .map(|(target, published)| PortConfig {
                target_port: *target,
                published_port: *published,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    Service {
        id: id.into(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: id.into(),
                ..Default::default()
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "busybox".into(),
                    ..Default::default()
                }),
                networks: networks
                    .iter()
                    .map(|n| NetworkAttachmentConfig {
                        target: n.to_string(),
                        aliases: vec![format!("{id}-alias")],
                    })
                    .collect(),
                ..Default::default()
            }),
            mode: Some(service_spec::Mode::Replicated(ReplicatedService {
                replicas: 2,
            })),
            endpoint: Some(endpoint),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn new_task(id: &str, service: &Service) -> Task {
    let mut task = Task {
        id: id.into(),
        service_id: service.id.clone(),
        spec: service.spec.as_ref().and_then(|s| s.task.clone()),
        status: Some(Default::default()),
        ..Default::default()
    };
    task.set_desired_state(TaskState::Running);
    task
}

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        status: Some(NodeStatus {
            state: node_status::State::Ready as i32,
            addr: format!("192.168.0.{}", id.len()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn store(f: impl FnOnce(&mut Tx<'_>) -> Result<(), StoreError>) -> Store {
    let store = Store::new();
    let (batch, ()) = store.build(f).expect("build");
    store.apply(1, batch).expect("apply");
    store
}

fn run_pass(store: &Store) -> Outcome {
    store.view(|t| {
        let cursors = HashMap::new();
        let mut pools = Pools::from_tables(t, &cursors);
        allocate(t, &mut pools, &cursors, SystemTime::now())
    })
}

/// Writes a pass's outcome back, as the loop does.
fn apply(store: &Store, out: Outcome) {
    let (batch, ()) = store
        .build(|tx| {
            out.networks.into_iter().try_for_each(|n| tx.update(n))?;
            out.services.into_iter().try_for_each(|s| tx.update(s))?;
            out.tasks.into_iter().try_for_each(|t| tx.update(t))?;
            out.nodes.into_iter().try_for_each(|n| tx.update(n))
        })
        .expect("build");
    store
        .apply(store.applied_index() + 1, batch)
        .expect("apply");
}

fn subnet(n: &Network) -> (String, String) {
    let c = &n.ipam.as_ref().expect("ipam").configs[0];
    (c.subnet.clone(), c.gateway.clone())
}

#[test]
fn a_pass_allocates_networks_services_tasks_and_nodes() {
    let web = service("web", &["front"], &[(80, 0)]);
    let store = store(|tx| {
        tx.create(network("n-front", "front"))?;
        tx.create(network("n-ingress", "ingress"))?;
        tx.create(web.clone())?;
        tx.create(new_task("t1", &web))?;
        tx.create(new_task("t2", &web))?;
        tx.create(node("node1"))
    });
    let out = run_pass(&store);
    assert_eq!(out.waiting, 0);
    // Ingress first gets 10.0.0.0/24, the user network the next block.
    let by_id: HashMap<&str, &Network> = out.networks.iter().map(|n| (n.id.as_str(), n)).collect();
    assert_eq!(
        subnet(by_id["n-ingress"]),
        ("10.0.0.0/24".into(), "10.0.0.1".into())
    );
    assert_eq!(
        subnet(by_id["n-front"]),
        ("10.0.1.0/24".into(), "10.0.1.1".into())
    );
    assert_eq!(vxlan_of(by_id["n-ingress"]), Some(4097));
    assert_eq!(
        by_id["n-front"]
            .driver_state
            .as_ref()
            .expect("driver")
            .options[VXLAN_OPTION],
        "4098"
    );

    let endpoint = out.services[0].endpoint.clone().expect("endpoint");
    assert_eq!(endpoint.ports[0].published_port, 30000);
    let vips: Vec<(&str, &str)> = endpoint
        .virtual_ips
        .iter()
        .map(|v| (v.network_id.as_str(), v.addr.as_str()))
        .collect();
    assert_eq!(
        vips,
        [("n-ingress", "10.0.0.2/24"), ("n-front", "10.0.1.2/24")]
    );

    assert_eq!(out.tasks.len(), 2);
    for task in &out.tasks {
        let status = task.status.as_ref().expect("status");
        assert_eq!(status.state(), TaskState::Pending);
        assert_eq!(status.message, "pending task scheduling");
        let nets: Vec<&str> = task
            .networks
            .iter()
            .map(|a| a.network.as_ref().expect("network").id.as_str())
            .collect();
        assert_eq!(nets, ["n-ingress", "n-front"]);
        assert_eq!(task.networks[1].aliases, ["web-alias"]);
        assert_eq!(task.endpoint.as_ref(), Some(&endpoint));
    }
    let addrs: Vec<&str> = out
        .tasks
        .iter()
        .map(|t| t.networks[1].addresses[0].as_str())
        .collect();
    assert_eq!(addrs, ["10.0.1.3/24", "10.0.1.4/24"]);
    assert_eq!(
        out.nodes[0].ingress.as_ref().expect("ingress").addresses,
        ["10.0.0.5/24"]
    );

    // Written back, a second pass has nothing to do.
    apply(&store, out);
    let again = run_pass(&store);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn explicit_subnets_are_honoured_even_twice_and_kept_out_of_the_pool() {
    let store = store(|tx| {
        tx.create(with_subnet(network("a", "a"), "10.0.0.0/24", ""))?;
        tx.create(with_subnet(network("b", "b"), "10.0.0.0/24", "10.0.0.254"))?;
        tx.create(network("c", "c"))
    });
    let out = run_pass(&store);
    let got: HashMap<String, (String, String)> = out
        .networks
        .iter()
        .map(|n| (n.id.clone(), subnet(n)))
        .collect();
    assert_eq!(got["a"], ("10.0.0.0/24".into(), "10.0.0.1".into()));
    assert_eq!(got["b"], ("10.0.0.0/24".into(), "10.0.0.254".into()));
    assert_eq!(got["c"], ("10.0.1.0/24".into(), "10.0.1.1".into()));
    let mut ids: Vec<u32> = out.networks.iter().filter_map(vxlan_of).collect();
    ids.sort();
    assert_eq!(ids, [4097, 4098, 4099]);
}

#[test]
fn dnsrr_services_get_no_vip_and_a_missing_network_keeps_tasks_new() {
    let mut dns = service("dns", &["front"], &[]);
    if let Some(e) = dns.spec.as_mut().and_then(|s| s.endpoint.as_mut()) {
        e.set_mode(endpoint_spec::ResolutionMode::Dnsrr);
    }
    let lost = service("lost", &["nowhere"], &[]);
    let store = store(|tx| {
        tx.create(network("n-front", "front"))?;
        tx.create(dns.clone())?;
        tx.create(lost.clone())?;
        tx.create(new_task("d1", &dns))?;
        tx.create(new_task("l1", &lost))
    });
    let out = run_pass(&store);
    let dns_out = out.services.iter().find(|s| s.id == "dns").expect("dns");
    assert!(
        dns_out
            .endpoint
            .as_ref()
            .expect("endpoint")
            .virtual_ips
            .is_empty()
    );
    let d1 = out.tasks.iter().find(|t| t.id == "d1").expect("d1");
    assert_eq!(d1.networks[0].addresses, ["10.0.0.2/24"]);
    let l1 = out.tasks.iter().find(|t| t.id == "l1").expect("l1");
    let status = l1.status.as_ref().expect("status");
    assert_eq!(status.state(), TaskState::New);
    assert!(status.err.contains("network nowhere"), "{}", status.err);
    assert_eq!(out.waiting, 1);
    // Explained once: the next pass does not write it again.
    apply(&store, out);
    let again = run_pass(&store);
    assert!(again.tasks.is_empty());
    assert_eq!(again.waiting, 1);
}

#[test]
fn ended_and_removed_holders_free_their_addresses() {
    let web = service("web", &["front"], &[(80, 8080)]);
    let store = store(|tx| {
        tx.create(network("n-front", "front"))?;
        tx.create(network("n-ingress", "ingress"))?;
        tx.create(web.clone())?;
        tx.create(new_task("t1", &web))
    });
    apply(&store, run_pass(&store));
    let held = |store: &Store| {
        store.view(|t| {
            let mut pools = Pools::from_tables(t, &HashMap::new());
            // The first free address shows what is held below it.
            let pool = pools.addresses.get_mut("n-front").expect("pool");
            ipam_addr(pool.allocate().expect("free"))
        })
    };
    assert_eq!(held(&store), "10.0.1.4", "VIP .2 and task .3 held");
    // The task ends: its address is free again.
    let mut t1 = store.view(|t| t.get::<Task>("t1").cloned().expect("t1"));
    t1.status
        .get_or_insert_default()
        .set_state(TaskState::Failed);
    let (batch, ()) = store.build(|tx| tx.update(t1)).expect("build");
    store.apply(store.applied_index() + 1, batch).expect("end");
    assert_eq!(held(&store), "10.0.1.3");
    // The service goes: its VIP and its port go with it.
    let (batch, ()) = store
        .build(|tx| tx.remove::<Service>("web"))
        .expect("build");
    store.apply(store.applied_index() + 1, batch).expect("rm");
    assert_eq!(held(&store), "10.0.1.2");
    store.view(|t| {
        let mut pools = Pools::from_tables(t, &HashMap::new());
        assert!(pools.ports.reserve(0, 8080, "other").is_ok());
    });
}

fn ipam_addr(addr: u32) -> String {
    super::ipam::format_addr(addr)
}

#[tokio::test]
async fn the_loop_allocates_what_the_orchestrator_creates_and_frees_on_removal() {
    let leader = leader().await;
    let ctx = leader.ctx.clone();
    let orchestrator = tokio::spawn(crate::orchestrator::run(
        ctx.clone(),
        leader.stop.child_token(),
    ));
    let allocator = tokio::spawn(super::run(ctx.clone(), leader.stop.child_token()));
    ctx.update(|tx| {
        tx.create(network("n-ingress", "ingress"))?;
        tx.create(network("n-front", "front"))?;
        tx.create(node("node1"))?;
        Ok::<_, crate::context::CommitError>(())
    })
    .await
    .expect("networks");
    eventually("networks allocated", || {
        ctx.store.view(|t| {
            t.all::<Network>().all(super::is_allocated)
                && t.get::<Node>("node1").is_some_and(|n| n.ingress.is_some())
        })
    })
    .await;

    let started = std::time::Instant::now();
    ctx.update(|tx| {
        Ok::<_, crate::context::CommitError>(tx.create(service("web", &["n-front"], &[(80, 0)]))?)
    })
    .await
    .expect("service");
    let tasks = |ctx: &crate::context::ManagerContext| {
        ctx.store
            .view(|t| t.tasks_of_service("web").cloned().collect::<Vec<Task>>())
    };
    eventually("both tasks pending with addresses", || {
        let tasks = tasks(&ctx);
        tasks.len() == 2
            && tasks.iter().all(|t| {
                t.status.as_ref().map(|s| s.state()) == Some(TaskState::Pending)
                    && t.networks.len() == 2
            })
    })
    .await;
    // Orchestrator window, allocator window, two commits: well under a second.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let vips = ctx.store.view(|t| {
        t.get::<Service>("web")
            .and_then(|s| s.endpoint.clone())
            .expect("endpoint")
            .virtual_ips
    });
    assert_eq!(vips.len(), 2, "{vips:?}");

    // Removing the service (its tasks with it) frees every address.
    ctx.update(|tx| {
        for task in tasks(&ctx) {
            tx.remove::<Task>(&task.id)?;
        }
        Ok::<_, crate::context::CommitError>(tx.remove::<Service>("web")?)
    })
    .await
    .expect("remove");
    ctx.store.view(|t| {
        let mut pools = Pools::from_tables(t, &HashMap::new());
        let front = pools.addresses.get_mut("n-front").expect("front");
        assert_eq!(ipam_addr(front.allocate().expect("free")), "10.0.1.2");
    });

    leader.stop.cancel();
    for handle in [orchestrator, allocator] {
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("stops when cancelled")
            .expect("no panic");
    }
}
