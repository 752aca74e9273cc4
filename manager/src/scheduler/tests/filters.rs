use shoal_proto::objects::node_spec::Availability;
use shoal_proto::objects::node_status::State as NodeState;
use shoal_proto::objects::{Node, Platform, Task, TaskState};

use super::kit::*;
use crate::scheduler::filter::{
    ConstraintError, ConstraintKey, Filter, Operator, first_refusal, parse_constraints,
    platform_fits,
};
use crate::scheduler::node_info::{Demand, NodeInfo};
use crate::store::Store;

/// The first filter `node_id` fails for `task`, with `store`'s tasks on it.
fn refusal(store: &Store, node_id: &str, task: &Task) -> Option<Filter> {
    store.view(|t| {
        let node = t.get::<Node>(node_id).expect("node");
        let demand = Demand::new(task).expect("valid constraints");
        first_refusal(&demand, &NodeInfo::new(node, t))
    })
}

fn parse(c: &str) -> Result<Vec<crate::scheduler::filter::Constraint>, ConstraintError> {
    parse_constraints(&[c.to_string()])
}

#[test]
fn constraints_parse_every_key_and_both_operators() {
    let cases = [
        ("node.id==abc", ConstraintKey::NodeId, Operator::Eq),
        (
            "node.hostname != h1",
            ConstraintKey::Hostname,
            Operator::NotEq,
        ),
        ("node.role==manager", ConstraintKey::Role, Operator::Eq),
        ("Node.Platform.OS==linux", ConstraintKey::Os, Operator::Eq),
        (
            "node.platform.arch!=arm64",
            ConstraintKey::Arch,
            Operator::NotEq,
        ),
        (
            "node.labels.Zone==east",
            ConstraintKey::NodeLabel("Zone".into()),
            Operator::Eq,
        ),
        (
            "engine.labels.disk!=ssd",
            ConstraintKey::EngineLabel("disk".into()),
            Operator::NotEq,
        ),
    ];
    for (expr, key, op) in cases {
        let c = parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!((&c[0].key, c[0].op), (&key, op), "{expr}");
    }
    assert_eq!(parse("node.id == abc").unwrap()[0].value, "abc");
}

#[test]
fn malformed_constraints_are_errors_that_say_what_to_write() {
    let no_op = parse("node.role=manager").unwrap_err();
    assert!(matches!(no_op, ConstraintError::NoOperator { .. }));
    assert!(no_op.to_string().contains("<key>==<value>"), "{no_op}");

    let unknown = parse("node.colour==red").unwrap_err();
    assert!(matches!(unknown, ConstraintError::UnknownKey { .. }));
    assert!(
        unknown.to_string().contains("node.labels.<label>"),
        "{unknown}"
    );
    assert!(matches!(
        parse("node.labels.==x"),
        Err(ConstraintError::UnknownKey { .. })
    ));

    for bad in [
        "node.id==",
        "node.labels.a==b>c",
        "node.labels.a==b==c",
        "node.id!=x!=y",
    ] {
        assert!(
            matches!(parse(bad), Err(ConstraintError::InvalidValue { .. })),
            "{bad}: {:?}",
            parse(bad)
        );
    }
    let role = parse("node.role==master").unwrap_err();
    assert!(role.to_string().contains("manager or worker"), "{role}");

    // One bad constraint spoils the list.
    assert!(parse_constraints(&["node.id==a".into(), "oops".into()]).is_err());
}

#[test]
fn constraints_match_each_field_with_eq_and_noteq() {
    let n1 = with_engine_label(
        with_label(manager(node("n1")), "zone", "East"),
        "disk",
        "ssd",
    );
    let store = store(vec![n1, node("n2")], vec![]);
    let fits = |c: &str, n: &str| refusal(&store, n, &constrained(task("t", "s"), &[c])).is_none();

    assert!(fits("node.id==n1", "n1") && !fits("node.id==n1", "n2"));
    assert!(fits("node.id!=n1", "n2") && !fits("node.id!=n1", "n1"));
    assert!(fits("node.hostname==host-n2", "n2") && !fits("node.hostname==host-n2", "n1"));
    assert!(fits("node.role==Manager", "n1") && !fits("node.role==manager", "n2"));
    assert!(fits("node.role!=manager", "n2") && fits("node.role==worker", "n2"));
    assert!(fits("node.platform.os==Linux", "n1") && !fits("node.platform.os!=linux", "n1"));
    assert!(fits("node.platform.arch==x86_64", "n1") && !fits("node.platform.arch==arm64", "n1"));
    // Values compare case-insensitively; label names do not.
    assert!(fits("node.labels.zone==east", "n1") && !fits("node.labels.Zone==east", "n1"));
    assert!(!fits("node.labels.zone==east", "n2"));
    // A missing label is the empty value: `!=` holds.
    assert!(fits("node.labels.zone!=east", "n2"));
    assert!(fits("engine.labels.disk==ssd", "n1") && !fits("engine.labels.disk==ssd", "n2"));
    // All constraints must hold.
    let both = constrained(
        task("t", "s"),
        &["node.role==manager", "node.labels.zone==west"],
    );
    assert_eq!(refusal(&store, "n1", &both), Some(Filter::Constraints));
}

#[test]
fn only_ready_active_nodes_take_new_tasks() {
    let store = store(
        vec![
            node("ok"),
            state(node("down"), NodeState::Down),
            state(node("unknown"), NodeState::Unknown),
            availability(node("pause"), Availability::Pause),
            availability(node("drain"), Availability::Drain),
        ],
        vec![],
    );
    let t = task("t", "s");
    assert_eq!(refusal(&store, "ok", &t), None);
    for n in ["down", "unknown", "pause", "drain"] {
        assert_eq!(refusal(&store, n, &t), Some(Filter::Ready), "{n}");
    }
}

#[test]
fn reservations_count_only_tasks_that_still_hold_them() {
    let big = |id: &str| reserving(task(id, "other"), 3 * CPU, GB);
    let mut stopping = running(big("stopping"), "n2");
    stopping.set_desired_state(TaskState::Shutdown);
    let mut done = running(big("done"), "n3");
    done.status.as_mut().unwrap().set_state(TaskState::Failed);
    let store = store(
        vec![node("n1"), node("n2"), node("n3")],
        vec![running(big("r"), "n1"), stopping, done],
    );
    let two_cpus = reserving(task("t", "s"), 2 * CPU, 0);
    assert_eq!(refusal(&store, "n1", &two_cpus), Some(Filter::Resources));
    assert_eq!(
        refusal(&store, "n1", &reserving(task("t", "s"), CPU, 7 * GB)),
        None
    );
    assert_eq!(
        refusal(&store, "n1", &reserving(task("t", "s"), 0, 7 * GB + 1)),
        Some(Filter::Resources)
    );
    assert_eq!(
        refusal(&store, "n2", &two_cpus),
        None,
        "desired shutdown frees"
    );
    assert_eq!(refusal(&store, "n3", &two_cpus), None, "terminal frees");
    // A task reserving nothing fits anywhere, even a node reporting nothing.
    let mut empty = node("n1");
    empty.description.as_mut().unwrap().resources = None;
    let bare = super::kit::store(vec![empty], vec![]);
    assert_eq!(refusal(&bare, "n1", &task("t", "s")), None);
    assert_eq!(refusal(&bare, "n1", &two_cpus), Some(Filter::Resources));
}

#[test]
fn host_mode_ports_conflict_with_tasks_on_the_node() {
    let mut ingress = host_port(task("i", "web"), 9090);
    ingress.endpoint.as_mut().unwrap().ports[0].publish_mode = 0;
    let store = store(
        vec![node("n1")],
        vec![
            running(host_port(task("r", "web"), 8080), "n1"),
            running(ingress, "n1"),
        ],
    );
    assert_eq!(
        refusal(&store, "n1", &host_port(task("t", "api"), 8080)),
        Some(Filter::HostPorts)
    );
    assert_eq!(
        refusal(&store, "n1", &host_port(task("t", "api"), 8081)),
        None
    );
    assert_eq!(
        refusal(&store, "n1", &host_port(task("t", "api"), 9090)),
        None,
        "ingress ports are not the node's"
    );
}

#[test]
fn platforms_compare_with_architecture_aliases() {
    let p = |arch: &str, os: &str| Platform {
        architecture: arch.into(),
        os: os.into(),
    };
    assert!(platform_fits(&p("amd64", "linux"), &p("x86_64", "linux")));
    assert!(platform_fits(&p("", "linux"), &p("arm64", "linux")));
    assert!(platform_fits(&p("aarch64", ""), &p("arm64", "windows")));
    assert!(!platform_fits(&p("arm64", "linux"), &p("x86_64", "linux")));
    assert!(!platform_fits(
        &p("amd64", "windows"),
        &p("x86_64", "linux")
    ));

    let store = store(vec![node("n1")], vec![]);
    let mut t = task("t", "s");
    placement(&mut t).platforms = vec![p("arm64", "linux"), p("amd64", "linux")];
    assert_eq!(refusal(&store, "n1", &t), None);
    placement(&mut t).platforms = vec![p("arm64", "linux")];
    assert_eq!(refusal(&store, "n1", &t), Some(Filter::Platform));
}

#[test]
fn max_replicas_counts_the_service_tasks_on_the_node() {
    let store = store(
        vec![node("n1")],
        vec![
            running(task("a", "web"), "n1"),
            running(task("b", "other"), "n1"),
        ],
    );
    let mut t = task("t", "web");
    placement(&mut t).max_replicas = 1;
    assert_eq!(refusal(&store, "n1", &t), Some(Filter::MaxReplicas));
    placement(&mut t).max_replicas = 2;
    assert_eq!(refusal(&store, "n1", &t), None);
}

#[test]
fn explanations_use_dockers_words() {
    assert_eq!(
        Filter::Ready.explain(1),
        "1 node not available for new tasks"
    );
    assert_eq!(
        Filter::Ready.explain(2),
        "2 nodes not available for new tasks"
    );
    assert_eq!(
        Filter::Resources.explain(2),
        "insufficient resources on 2 nodes"
    );
    assert_eq!(
        Filter::Constraints.explain(3),
        "scheduling constraints not satisfied on 3 nodes"
    );
    assert_eq!(
        Filter::Platform.explain(1),
        "unsupported platform on 1 node"
    );
    assert_eq!(
        Filter::HostPorts.explain(1),
        "host-mode port already in use on 1 node"
    );
    assert_eq!(
        Filter::MaxReplicas.explain(4),
        "max replicas per node limit exceed"
    );
}
