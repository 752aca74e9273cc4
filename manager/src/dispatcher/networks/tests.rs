//! Views computed over hand-built tables.

use shoal_proto::objects::{
    Annotations, Cluster, ContainerSpec, Endpoint, EndpointSpec, HealthConfig, Network,
    NetworkAttachment, NetworkAttachmentConfig, NetworkSpec, Node, NodeStatus, PortConfig, Service,
    ServiceSpec, Task, TaskSpec, TaskState, TaskStatus, VirtualIp, node_status, task_status,
};

use super::view;
use crate::store::{Store, StoreError, Tx};

fn network(id: &str, ingress: bool) -> Network {
    Network {
        id: id.into(),
        spec: Some(NetworkSpec {
            annotations: Some(Annotations {
                name: id.into(),
                ..Default::default()
            }),
            ingress,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(id: &str, addr: &str, ingress: &str) -> Node {
    Node {
        id: id.into(),
        status: Some(NodeStatus {
            state: node_status::State::Ready as i32,
            addr: addr.into(),
            ..Default::default()
        }),
        ingress: Some(NetworkAttachment {
            network: Some(network("ingress", true)),
            addresses: vec![ingress.into()],
            aliases: vec![],
        }),
        ..Default::default()
    }
}

fn service(id: &str, net: &str, vip: &str, published: u32) -> Service {
    Service {
        id: id.into(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: id.into(),
                ..Default::default()
            }),
            task: Some(TaskSpec {
                networks: vec![NetworkAttachmentConfig {
                    target: net.into(),
                    aliases: vec![format!("{id}-alias")],
                }],
                ..Default::default()
            }),
            endpoint: Some(EndpointSpec::default()),
            ..Default::default()
        }),
        endpoint: Some(Endpoint {
            ports: (published != 0)
                .then(|| PortConfig {
                    target_port: 80,
                    published_port: published,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            virtual_ips: vec![VirtualIp {
                network_id: net.into(),
                addr: vip.into(),
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn task(id: &str, service: &str, node: &str, state: TaskState, on: &[(&str, &str)]) -> Task {
    let mut task = Task {
        id: id.into(),
        service_id: service.into(),
        node_id: node.into(),
        annotations: Some(Annotations {
            name: format!("{service}.1"),
            ..Default::default()
        }),
        spec: Some(TaskSpec::default()),
        status: Some(TaskStatus::default()),
        networks: on
            .iter()
            .map(|(net, addr)| NetworkAttachment {
                network: Some(network(net, *net == "ingress")),
                addresses: vec![addr.to_string()],
                aliases: vec![],
            })
            .collect(),
        ..Default::default()
    };
    task.status.get_or_insert_default().set_state(state);
    task.set_desired_state(TaskState::Running);
    task
}

fn store(f: impl FnOnce(&mut Tx<'_>) -> Result<(), StoreError>) -> Store {
    let store = Store::new();
    let (batch, ()) = store.build(f).expect("build");
    store.apply(1, batch).expect("apply");
    store
}

fn cluster() -> Store {
    store(|tx| {
        tx.create(Cluster {
            id: "c".into(),
            data_path_port: 7789,
            ..Default::default()
        })?;
        for n in [
            network("ingress", true),
            network("front", false),
            network("back", false),
        ] {
            tx.create(n)?;
        }
        tx.create(node("n1", "192.168.0.1", "10.0.0.10/24"))?;
        tx.create(node("n2", "192.168.0.2", "10.0.0.11/24"))?;
        let mut down = node("n3", "192.168.0.3", "10.0.0.12/24");
        down.status
            .get_or_insert_default()
            .set_state(node_status::State::Down);
        tx.create(down)?;
        tx.create(service("web", "front", "10.0.1.2/24", 8080))?;
        tx.create(service("db", "back", "10.0.2.2/24", 0))?;
        tx.create(task(
            "w1",
            "web",
            "n1",
            TaskState::Running,
            &[("ingress", "10.0.0.3/24"), ("front", "10.0.1.3/24")],
        ))?;
        tx.create(task(
            "w2",
            "web",
            "n2",
            TaskState::Starting,
            &[("ingress", "10.0.0.4/24"), ("front", "10.0.1.4/24")],
        ))?;
        tx.create(task(
            "w3",
            "web",
            "n2",
            TaskState::Failed,
            &[("front", "10.0.1.5/24")],
        ))?;
        tx.create(task(
            "d1",
            "db",
            "n2",
            TaskState::Running,
            &[("back", "10.0.2.3/24")],
        ))?;
        Ok(())
    })
}

#[test]
fn a_node_sees_its_networks_their_tasks_services_and_every_sandbox() {
    let store = cluster();
    let v = store.view(|t| view(t, "n1"));
    let nets: Vec<&str> = v.networks.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        nets,
        ["front", "ingress"],
        "not back: no task of n1 is on it"
    );
    assert_eq!(v.node_addr, "192.168.0.1");
    assert_eq!(v.data_path_port, 7789);

    let tasks: Vec<(&str, &str, bool, usize)> = v
        .tasks
        .iter()
        .map(|t| {
            (
                t.task_id.as_str(),
                t.node_addr.as_str(),
                t.ready,
                t.addresses.len(),
            )
        })
        .collect();
    // w3 ended; d1 is on a network n1 does not have.
    assert_eq!(
        tasks,
        [
            ("w1", "192.168.0.1", true, 2),
            ("w2", "192.168.0.2", false, 2)
        ]
    );
    assert_eq!(v.tasks[0].name, "web.1.w1");

    let services: Vec<&str> = v.services.iter().map(|s| s.service_id.as_str()).collect();
    assert_eq!(services, ["web"]);
    assert_eq!(v.services[0].ports[0].published_port, 8080);
    assert_eq!(v.services[0].aliases["front"].aliases, ["web-alias"]);

    let sandboxes: Vec<(&str, &str)> = v
        .ingress_sandboxes
        .iter()
        .map(|s| (s.node_id.as_str(), s.addresses[0].address.as_str()))
        .collect();
    assert_eq!(sandboxes, [("n1", "10.0.0.10/24"), ("n2", "10.0.0.11/24")]);
}

#[test]
fn a_node_with_other_tasks_sees_their_networks_and_every_published_service() {
    let store = cluster();
    let v = store.view(|t| view(t, "n2"));
    let nets: Vec<&str> = v.networks.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(nets, ["back", "front", "ingress"]);
    let services: Vec<&str> = v.services.iter().map(|s| s.service_id.as_str()).collect();
    assert_eq!(services, ["db", "web"]);
    // An idle node still gets the routing mesh: ingress and `web`.
    let idle = store.view(|t| view(t, "n3"));
    let nets: Vec<&str> = idle.networks.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(nets, ["ingress"]);
    let services: Vec<&str> = idle
        .services
        .iter()
        .map(|s| s.service_id.as_str())
        .collect();
    assert_eq!(services, ["web"]);
    let tasks: Vec<(&str, usize)> = idle
        .tasks
        .iter()
        .map(|t| (t.task_id.as_str(), t.addresses.len()))
        .collect();
    assert_eq!(
        tasks,
        [("w1", 1), ("w2", 1)],
        "their ingress addresses only"
    );
}

#[test]
fn readiness_follows_health_and_desired_state() {
    let mut checked = task(
        "h1",
        "web",
        "n1",
        TaskState::Running,
        &[("front", "10.0.1.9/24")],
    );
    checked.spec.get_or_insert_default().container = Some(ContainerSpec {
        healthcheck: Some(HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut stopping = task(
        "s1",
        "web",
        "n1",
        TaskState::Running,
        &[("front", "10.0.1.8/24")],
    );
    stopping.set_desired_state(TaskState::Shutdown);
    let store = store(|tx| {
        tx.create(network("front", false))?;
        tx.create(checked.clone())?;
        tx.create(stopping)
    });
    let ready = |store: &Store, id: &str| {
        store.view(|t| {
            view(t, "n1")
                .tasks
                .iter()
                .find(|x| x.task_id == id)
                .map(|x| x.ready)
        })
    };
    assert_eq!(ready(&store, "h1"), Some(false), "no health result yet");
    assert_eq!(ready(&store, "s1"), Some(false), "asked to stop");
    checked
        .status
        .get_or_insert_default()
        .set_health(task_status::Health::Healthy);
    checked.meta.get_or_insert_default().version = 1;
    let (batch, ()) = store.build(|tx| tx.update(checked)).expect("build");
    store.apply(2, batch).expect("apply");
    assert_eq!(ready(&store, "h1"), Some(true));
}

#[test]
fn only_a_node_serving_ingress_sees_the_other_nodes_sandboxes() {
    let store = cluster();
    let (batch, ()) = store
        .build(|tx| tx.create(node("n4", "192.168.0.4", "10.0.0.13/24")))
        .expect("build");
    store.apply(2, batch).expect("apply");
    let sandboxes = |node: &str| -> Vec<String> {
        store.view(|t| {
            view(t, node)
                .ingress_sandboxes
                .into_iter()
                .map(|s| s.node_id)
                .collect()
        })
    };
    // n4 runs nothing: its own sandbox, to attach, and no peers.
    assert_eq!(sandboxes("n4"), ["n4"]);
    // n1 runs w1 on ingress: replies go back to every Ready node's sandbox.
    assert_eq!(sandboxes("n1"), ["n1", "n2", "n4"]);
}
