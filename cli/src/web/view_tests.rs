use super::*;
use shoal_proto::objects::{
    Annotations, EngineDescription, ManagerStatus, Node, NodeDescription, NodeSpec, NodeStatus,
    ReplicatedService, Service, ServiceSpec, Task, TaskStatus,
};

fn node(id: &str, hostname: &str, manager: bool) -> Node {
    let mut n = Node {
        id: id.into(),
        description: Some(NodeDescription {
            hostname: hostname.into(),
            engine: Some(EngineDescription {
                kind: "process".into(),
                version: "0.1.0".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            addr: "198.18.0.10".into(),
            ..Default::default()
        }),
        spec: Some(NodeSpec::default()),
        manager_status: manager.then(|| ManagerStatus {
            leader: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    n.status.as_mut().unwrap().set_state(State::Ready);
    if manager {
        n.set_role(NodeRole::Manager);
    }
    n
}

fn service(id: &str, name: &str, mode: Mode) -> Service {
    Service {
        id: id.into(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: name.into(),
                ..Default::default()
            }),
            mode: Some(mode),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn task(id: &str, service_id: &str, slot: u64, node: &str, state: TaskState) -> Task {
    let mut t = Task {
        id: id.into(),
        service_id: service_id.into(),
        slot,
        node_id: node.into(),
        status: Some(TaskStatus::default()),
        ..Default::default()
    };
    t.status.as_mut().unwrap().set_state(state);
    t.set_desired_state(TaskState::Running);
    t
}

fn replicated(n: u64) -> Mode {
    Mode::Replicated(ReplicatedService { replicas: n })
}

#[test]
fn nodes_read_as_node_ls_shows_them() {
    let mut drained = node("n2", "", false);
    drained.spec = Some(NodeSpec {
        annotations: Some(Annotations {
            name: "spare".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    drained
        .spec
        .as_mut()
        .unwrap()
        .set_availability(Availability::Drain);
    let view = View::build(
        vec![node("n1", "node-0", true), drained],
        vec![],
        vec![],
        vec![],
    );
    let [manager, worker] = &view.nodes[..] else {
        panic!("{:?}", view.nodes)
    };
    assert_eq!(
        (manager.name.as_str(), manager.role, manager.manager),
        ("node-0", "manager", "Leader")
    );
    assert_eq!((manager.status, manager.availability), ("ready", "active"));
    assert_eq!(manager.engine, "process 0.1.0");
    assert_eq!(
        (worker.name.as_str(), worker.role, worker.manager),
        ("spare", "worker", "")
    );
    assert_eq!(worker.availability, "drain");
}

#[test]
fn tasks_meant_to_run_are_shown_with_their_service() {
    let mut stopping = task("t3", "s1", 3, "n1", TaskState::Running);
    stopping.set_desired_state(TaskState::Shutdown);
    let mut job_done = task("t5", "s3", 1, "n1", TaskState::Complete);
    job_done.set_desired_state(TaskState::Complete);
    let mut job_running = task("t6", "s3", 2, "n1", TaskState::Running);
    job_running.set_desired_state(TaskState::Complete);
    let mut failed = task("t7", "s1", 4, "n1", TaskState::Failed);
    failed.status.as_mut().unwrap().err = "exit 1".into();
    let view = View::build(
        vec![node("n1", "node-0", true)],
        vec![
            service("s1", "web", replicated(2)),
            service("s2", "agent", Mode::Global(Default::default())),
            service(
                "s3",
                "batch",
                Mode::ReplicatedJob(objects::ReplicatedJob::default()),
            ),
        ],
        vec![ServiceCounts {
            running_tasks: 1,
            desired_tasks: 2,
            completed_tasks: 0,
        }],
        vec![
            task("t2", "s1", 2, "n1", TaskState::Preparing),
            task("t1", "s1", 1, "n1", TaskState::Running),
            stopping,
            task("t4", "s2", 0, "n1", TaskState::Running),
            task("t8", "s2", 0, "abcdefghijklmnopq", TaskState::Running),
            job_done,
            job_running,
            failed,
        ],
    );
    let labels: Vec<(&str, &str)> = view
        .tasks
        .iter()
        .map(|t| (t.label.as_str(), t.state))
        .collect();
    assert_eq!(
        labels,
        [
            ("agent.abcdefghijkl", "running"),
            ("agent.n1", "running"),
            ("batch.2", "running"),
            ("web.1", "running"),
            ("web.2", "preparing"),
            ("web.4", "failed"),
        ]
    );
    assert_eq!(view.tasks[1].slot, None, "a global task has no slot");
    assert_eq!(view.tasks[5].message, "exit 1", "the error comes first");
    assert_eq!((view.services[0].running, view.services[0].desired), (1, 2));
    assert_eq!((view.services[1].running, view.services[1].desired), (0, 0));
    assert_eq!(view.services[1].mode, "global");
    assert_eq!(view.tasks[3].hue, view.services[0].hue);
}

#[test]
fn hues_are_stable_and_differ_between_names() {
    assert_eq!(hue("web"), hue("web"));
    assert_eq!(hue(""), (0x811c_9dc5_u32 % 360) as u16);
    let hues: std::collections::BTreeSet<u16> =
        ["web", "api", "db", "cache", "worker"].map(hue).into();
    assert_eq!(hues.len(), 5, "{hues:?}");
    assert!(hues.iter().all(|h| *h < 360));
}

fn spread(per_node: &[(&str, usize)]) -> View {
    let mut tasks = Vec::new();
    for (node_id, n) in per_node {
        for slot in 1..=*n {
            let id = format!("{node_id}-{slot}");
            tasks.push(task(&id, "s1", slot as u64, node_id, TaskState::Running));
        }
    }
    let nodes = per_node
        .iter()
        .map(|(id, _)| node(id, &format!("host-{id}"), false))
        .collect();
    View::build(
        nodes,
        vec![service("s1", "web", replicated(1))],
        vec![],
        tasks,
    )
}

fn per_node(r: &Rendered) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for t in &r.tasks {
        *counts.entry(t.node_id.clone()).or_default() += 1;
    }
    counts
}

#[test]
fn a_cap_shares_cards_between_nodes() {
    let view = spread(&[("a", 50), ("b", 3), ("c", 20)]);
    let all = Filter::default();
    let r = view.render(&all, 20);
    assert_eq!((r.total, r.shown), (73, 20));
    let counts = per_node(&r);
    assert_eq!(counts["b"], 3, "a small node shows all its tasks");
    assert!(counts["a"].abs_diff(counts["c"]) <= 1, "{counts:?}");
    let r = view.render(&all, MAX_CARDS);
    assert_eq!((r.total, r.shown), (73, 73));
    assert!(
        r.tasks
            .windows(2)
            .all(|w| (&w[0].node_id, w[0].slot) < (&w[1].node_id, w[1].slot))
    );
}

#[test]
fn filters_pick_nodes_and_services_by_name_or_id() {
    let view = spread(&[("a", 2), ("b", 3)]);
    let by = |node: &str, service: &str| {
        let filter = Filter {
            node: node.into(),
            service: service.into(),
        };
        let r = view.render(&filter, MAX_CARDS);
        (r.total, per_node(&r).into_keys().collect::<Vec<_>>())
    };
    assert_eq!(by("host-b", ""), (3, vec!["b".to_string()]));
    assert_eq!(by("a", "web"), (2, vec!["a".to_string()]));
    assert_eq!(by("", "s1").0, 5);
    assert_eq!(by("", "db").0, 0);
    assert_eq!(by("nowhere", "").0, 0);
    let all = Filter::default();
    let r = view.render(&all, MAX_CARDS);
    assert_eq!(r.nodes.len(), 2, "every node is sent, for the node menu");
}
