//! `node ls` and `node inspect` output, byte for byte where Docker's is known.

use std::collections::BTreeMap;

use shoal_proto::objects::{
    Annotations, EngineDescription, ManagerStatus, Meta, NodeDescription, NodeStatus, Platform,
    Resources, manager_status::Reachability, node_status::State,
};

use super::view::{self, render_list};
use super::*;
use crate::cmd::filter::parse_filter;

fn node(id: &str, host: &str, state: State, avail: Availability) -> Node {
    let mut spec = NodeSpec {
        annotations: Some(Annotations {
            name: String::new(),
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
        }),
        ..NodeSpec::default()
    };
    spec.set_availability(avail);
    let mut status = NodeStatus {
        addr: "10.0.0.1".into(),
        ..NodeStatus::default()
    };
    status.set_state(state);
    Node {
        id: id.into(),
        meta: Some(Meta::default()),
        spec: Some(spec),
        description: Some(NodeDescription {
            hostname: host.into(),
            platform: Some(Platform {
                architecture: "x86_64".into(),
                os: "linux".into(),
            }),
            resources: Some(Resources {
                nano_cpus: 4_000_000_000,
                memory_bytes: 8 << 30,
                pids: 0,
            }),
            engine: Some(EngineDescription {
                kind: "docker".into(),
                version: String::new(),
                labels: BTreeMap::new(),
            }),
        }),
        status: Some(status),
        ..Node::default()
    }
}

fn manager(mut n: Node, leader: bool, reach: Reachability) -> Node {
    let mut m = ManagerStatus {
        leader,
        addr: "10.0.0.1:2377".into(),
        ..ManagerStatus::default()
    };
    m.set_reachability(reach);
    n.manager_status = Some(m);
    n.set_role(NodeRole::Manager);
    if let Some(spec) = n.spec.as_mut() {
        spec.set_desired_role(NodeRole::Manager);
    }
    n
}

fn cluster() -> Vec<Node> {
    let mut leader = manager(
        node(
            "1aaaaaaaaaaaaaaaaaaaaaaaa",
            "node1",
            State::Ready,
            Availability::Active,
        ),
        true,
        Reachability::Reachable,
    );
    if let Some(e) = leader.description.as_mut().and_then(|d| d.engine.as_mut()) {
        e.version = "20.10.24".into();
    }
    let mut reachable = manager(
        node(
            "2bbbbbbbbbbbbbbbbbbbbbbbb",
            "node2",
            State::Ready,
            Availability::Active,
        ),
        false,
        Reachability::Reachable,
    );
    if let Some(e) = reachable
        .description
        .as_mut()
        .and_then(|d| d.engine.as_mut())
    {
        e.kind = "process".into();
    }
    let worker = node(
        "3cccccccccccccccccccccccc",
        "node10",
        State::Down,
        Availability::Drain,
    );
    // Listed out of order: `ls` sorts by hostname, naturally.
    vec![worker, reachable, leader]
}

fn filters(list: &[&str]) -> Filters {
    let entries = list.iter().map(|f| parse_filter(f).unwrap()).collect();
    Filters::new(entries, view::FILTER_KEYS).unwrap()
}

#[test]
fn ls_table_marks_self_and_manager_status() {
    let nodes = view::select(cluster(), &Filters::default());
    let out = render_list(&nodes, "1aaaaaaaaaaaaaaaaaaaaaaaa", false, None).unwrap();
    assert_eq!(
        out,
        "\
ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION
1aaaaaaaaaaaaaaaaaaaaaaaa *   node1      Ready     Active         Leader           docker 20.10.24
2bbbbbbbbbbbbbbbbbbbbbbbb     node2      Ready     Active         Reachable        process
3cccccccccccccccccccccccc     node10     Down      Drain                           docker
"
    );
}

#[test]
fn ls_quiet_json_and_templates() {
    let nodes = view::select(cluster(), &Filters::default());
    let me = "2bbbbbbbbbbbbbbbbbbbbbbbb";
    assert_eq!(
        render_list(&nodes, me, true, None).unwrap(),
        "1aaaaaaaaaaaaaaaaaaaaaaaa\n2bbbbbbbbbbbbbbbbbbbbbbbb\n3cccccccccccccccccccccccc\n"
    );
    let out = render_list(
        &nodes,
        me,
        false,
        Some("{{.Hostname}} {{.Self}} {{.ManagerStatus}}"),
    );
    assert_eq!(
        out.unwrap(),
        "node1 false Leader\nnode2 true Reachable\nnode10 false \n"
    );
    let json = render_list(&nodes[1..2], me, false, Some("json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "ID": "2bbbbbbbbbbbbbbbbbbbbbbbb *", "Hostname": "node2", "Status": "Ready",
            "Availability": "Active", "ManagerStatus": "Reachable",
            "EngineVersion": "process", "Self": true
        })
    );
    let out = render_list(
        &nodes,
        me,
        false,
        Some("table {{.Hostname}}\t{{.EngineVersion}}"),
    );
    assert_eq!(
        out.unwrap(),
        "HOSTNAME   ENGINE VERSION\nnode1      docker 20.10.24\nnode2      process\nnode10     docker\n"
    );
    let err = render_list(&nodes, me, false, Some("{{.Bogus}}")).unwrap_err();
    assert!(err.to_string().contains("unknown field .Bogus"), "{err}");
}

#[test]
fn ls_filters() {
    let hosts = |f: &[&str]| -> Vec<String> {
        view::select(cluster(), &filters(f))
            .iter()
            .map(|n| n.description.clone().unwrap_or_default().hostname)
            .collect()
    };
    assert_eq!(hosts(&["role=manager"]), ["node1", "node2"]);
    assert_eq!(hosts(&["role=worker"]), ["node10"]);
    assert_eq!(hosts(&["name=node1"]), ["node1", "node10"]);
    assert_eq!(hosts(&["id=2b"]), ["node2"]);
    assert_eq!(hosts(&["node.label=zone=a", "role=worker"]), ["node10"]);
    assert!(hosts(&["node.label=zone=b"]).is_empty());
    assert!(Filters::new(vec![("membership".into(), "x".into())], view::FILTER_KEYS).is_err());
}

#[test]
fn inspect_is_docker_shaped() {
    let nodes = cluster();
    let leader = &nodes[2];
    let v = serde_json::to_value(view::inspect_view(leader)).unwrap();
    assert_eq!(v["ID"], "1aaaaaaaaaaaaaaaaaaaaaaaa");
    assert_eq!(v["Version"]["Index"], 0);
    assert_eq!(v["Spec"]["Role"], "manager");
    assert_eq!(v["Spec"]["Availability"], "active");
    assert_eq!(v["Spec"]["Labels"]["zone"], "a");
    assert_eq!(v["Description"]["Hostname"], "node1");
    assert_eq!(v["Description"]["Engine"]["EngineVersion"], "20.10.24");
    assert_eq!(v["Status"]["State"], "ready");
    assert_eq!(v["ManagerStatus"]["Leader"], true);
    assert_eq!(v["ManagerStatus"]["Reachability"], "reachable");
    let worker = serde_json::to_value(view::inspect_view(&nodes[0])).unwrap();
    assert!(worker.get("ManagerStatus").is_none());

    let pretty = view::pretty(leader);
    assert!(
        pretty.contains("Hostname:               node1\n"),
        "{pretty}"
    );
    assert!(pretty.contains(" Leader:                Yes\n"), "{pretty}");
    assert!(
        pretty.contains(" Memory:                8.00GiB\n"),
        "{pretty}"
    );
}

#[test]
fn update_applies_flags_and_refuses_absent_labels() {
    let args = UpdateArgs {
        availability: Some(AvailabilityArg::Drain),
        label_add: vec!["disk=ssd".into()],
        label_rm: vec!["zone".into()],
        role: Some(RoleArg::Manager),
        node: "node1".into(),
    };
    let mut spec = cluster()[0].spec.clone().unwrap_or_default();
    let add = payload::labels(&args.label_add).unwrap();
    apply_update(&mut spec, &args, add).unwrap();
    assert_eq!(spec.availability(), Availability::Drain);
    assert_eq!(spec.desired_role(), NodeRole::Manager);
    let labels = spec.annotations.clone().unwrap_or_default().labels;
    assert_eq!(
        labels,
        BTreeMap::from([("disk".to_string(), "ssd".to_string())])
    );
    let err = apply_update(&mut spec, &args, BTreeMap::new()).unwrap_err();
    assert_eq!(err.to_string(), "key zone doesn't exist in node's labels");
}

#[test]
fn promote_and_demote_messages() {
    assert_eq!(
        role_message("n1", NodeRole::Manager, false),
        "Node n1 promoted to a manager in the swarm."
    );
    assert_eq!(
        role_message("n1", NodeRole::Worker, false),
        "Manager n1 demoted in the swarm."
    );
    assert_eq!(
        role_message("n1", NodeRole::Manager, true),
        "Node n1 is already a manager."
    );
}
