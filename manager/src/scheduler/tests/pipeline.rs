use std::collections::HashMap;

use shoal_proto::objects::node_spec::Availability;
use shoal_proto::objects::node_status::State as NodeState;
use shoal_proto::objects::{Task, TaskState};

use super::kit::*;
use crate::scheduler::filter::Filter;
use crate::scheduler::pipeline::explain;
use crate::scheduler::{pending_tasks, plan};

fn replicas(service: &str, n: usize) -> Vec<Task> {
    (0..n)
        .map(|i| task(&format!("{service}-{i:02}"), service))
        .collect()
}

fn counts(pairs: &[(&str, usize)]) -> HashMap<String, usize> {
    pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

#[test]
fn nine_replicas_over_three_equal_nodes_come_out_three_each() {
    let s = store(vec![node("n1"), node("n2"), node("n3")], replicas("web", 9));
    let plan = plan_all(&s);
    assert!(plan.unschedulable.is_empty(), "{plan:?}");
    assert_eq!(per_node(&plan), counts(&[("n1", 3), ("n2", 3), ("n3", 3)]));
}

#[test]
fn spread_prefers_fewest_of_the_service_then_fewest_in_all() {
    // n1 already runs two web tasks; n2 runs three tasks of another service.
    let s = store(
        vec![node("n1"), node("n2"), node("n3")],
        vec![
            running(task("w1", "web"), "n1"),
            running(task("w2", "web"), "n1"),
            running(task("o1", "other"), "n2"),
            running(task("o2", "other"), "n2"),
            running(task("o3", "other"), "n2"),
            task("new1", "web"),
            task("new2", "web"),
            task("new3", "web"),
            task("new4", "web"),
        ],
    );
    let plan = plan_all(&s);
    // new1 → n3 (no web, fewest in all), new2 → n2 (no web), then the
    // service counts are 2/1/1: new3 → n3 (fewer in all), new4 → n2.
    assert_eq!(per_node(&plan), counts(&[("n2", 2), ("n3", 2)]));
    assert_eq!(plan.assign[0], ("new1".to_string(), "n3".to_string()));
}

#[test]
fn max_replicas_caps_each_node_and_explains_the_rest() {
    let mut tasks = replicas("web", 5);
    for t in &mut tasks {
        placement(t).max_replicas = 2;
    }
    let s = store(vec![node("n1"), node("n2")], tasks);
    let plan = plan_all(&s);
    assert_eq!(per_node(&plan), counts(&[("n1", 2), ("n2", 2)]));
    assert_eq!(
        why(&plan, "web-04"),
        "no suitable node (max replicas per node limit exceed)"
    );
}

#[test]
fn constraints_steer_placement() {
    let s = store(
        vec![
            with_label(node("n1"), "zone", "east"),
            with_label(node("n2"), "zone", "west"),
            node("n3"),
        ],
        vec![
            constrained(task("east", "s"), &["node.labels.zone==east"]),
            constrained(
                task("not-east", "s2"),
                &["node.labels.zone!=east", "node.id!=n3"],
            ),
            constrained(task("nowhere", "s3"), &["node.labels.zone==north"]),
        ],
    );
    let plan = plan_all(&s);
    assert!(plan.assign.contains(&("east".into(), "n1".into())));
    assert!(plan.assign.contains(&("not-east".into(), "n2".into())));
    assert_eq!(
        why(&plan, "nowhere"),
        "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    );
}

#[test]
fn a_malformed_constraint_leaves_the_task_pending_with_the_parse_error() {
    let s = store(
        vec![node("n1")],
        vec![constrained(task("t", "s"), &["node.role=manager"])],
    );
    let plan = plan_all(&s);
    assert!(plan.assign.is_empty());
    assert!(why(&plan, "t").contains("invalid constraint"), "{plan:?}");
}

#[test]
fn unavailable_nodes_get_nothing_and_are_counted_in_the_explanation() {
    let s = store(
        vec![
            state(node("down"), NodeState::Down),
            availability(node("pause"), Availability::Pause),
            availability(node("drain"), Availability::Drain),
            node("ok"),
        ],
        replicas("web", 3),
    );
    let plan = plan_all(&s);
    assert_eq!(per_node(&plan), counts(&[("ok", 3)]));

    let none = store(
        vec![
            state(node("down"), NodeState::Down),
            with_label(node("a"), "zone", "x"),
            with_label(node("b"), "zone", "x"),
            with_label(node("c"), "zone", "x"),
            node("d"),
            node("e"),
        ],
        vec![
            reserving(
                constrained(task("t", "s"), &["node.labels.zone==y"]),
                CPU,
                0,
            ),
            running(reserving(task("hog-d", "hog"), 4 * CPU, 0), "d"),
            running(reserving(task("hog-e", "hog"), 4 * CPU, 0), "e"),
        ],
    );
    // The brief's example: every node counted once, against the first filter
    // it fails; most refusals first.
    assert_eq!(
        why(&plan_all(&none), "t"),
        "no suitable node (scheduling constraints not satisfied on 3 nodes; \
         insufficient resources on 2 nodes; 1 node not available for new tasks)"
    );
}

#[test]
fn no_nodes_at_all_is_no_suitable_node() {
    let s = store(vec![], vec![task("t", "s")]);
    assert_eq!(why(&plan_all(&s), "t"), "no suitable node");
    assert_eq!(explain(&HashMap::new()), "no suitable node");
    let ties = HashMap::from([(Filter::Platform, 1), (Filter::Ready, 1)]);
    assert_eq!(
        explain(&ties),
        "no suitable node (1 node not available for new tasks; unsupported platform on 1 node)"
    );
}

#[test]
fn resources_fill_nodes_within_a_batch() {
    // Each node fits two 2-CPU tasks: five tasks over two nodes leave one.
    let tasks: Vec<Task> = replicas("web", 5)
        .into_iter()
        .map(|t| reserving(t, 2 * CPU, GB))
        .collect();
    let s = store(vec![node("n1"), node("n2")], tasks);
    let plan = plan_all(&s);
    assert_eq!(per_node(&plan), counts(&[("n1", 2), ("n2", 2)]));
    assert_eq!(
        why(&plan, "web-04"),
        "no suitable node (insufficient resources on 2 nodes)"
    );
}

#[test]
fn host_ports_conflict_within_a_batch_too() {
    let tasks: Vec<Task> = replicas("web", 3)
        .into_iter()
        .map(|t| host_port(t, 8080))
        .collect();
    let s = store(vec![node("n1"), node("n2")], tasks);
    let plan = plan_all(&s);
    assert_eq!(per_node(&plan), counts(&[("n1", 1), ("n2", 1)]));
    assert_eq!(
        why(&plan, "web-02"),
        "no suitable node (host-mode port already in use on 2 nodes)"
    );
}

#[test]
fn preferences_spread_over_label_values_first() {
    // Zone a has one node, zone b three: 6 tasks go 3 to a, 3 over b.
    let s = store(
        vec![
            with_label(node("a1"), "zone", "a"),
            with_label(node("b1"), "zone", "b"),
            with_label(node("b2"), "zone", "b"),
            with_label(node("b3"), "zone", "b"),
        ],
        replicas("web", 6)
            .into_iter()
            .map(|t| spread(t, &["node.labels.zone"]))
            .collect(),
    );
    let plan = plan_all(&s);
    assert_eq!(
        per_node(&plan),
        counts(&[("a1", 3), ("b1", 1), ("b2", 1), ("b3", 1)])
    );

    // Nodes without the label are a group of their own.
    let s = store(
        vec![
            with_label(node("a1"), "zone", "a"),
            with_label(node("a2"), "zone", "a"),
            node("x1"),
        ],
        replicas("web", 4)
            .into_iter()
            .map(|t| spread(t, &["spread=node.labels.zone"]))
            .collect(),
    );
    assert_eq!(
        per_node(&plan_all(&s)),
        counts(&[("a1", 1), ("a2", 1), ("x1", 2)])
    );
}

#[test]
fn nested_preferences_spread_in_order() {
    // dc first, then rack within each dc.
    let n =
        |id: &str, dc: &str, rack: &str| with_label(with_label(node(id), "dc", dc), "rack", rack);
    let s = store(
        vec![
            n("d1r1a", "d1", "r1"),
            n("d1r1b", "d1", "r1"),
            n("d1r2", "d1", "r2"),
            n("d2r1", "d2", "r1"),
        ],
        replicas("web", 8)
            .into_iter()
            .map(|t| spread(t, &["node.labels.dc", "node.labels.rack"]))
            .collect(),
    );
    let plan = plan_all(&s);
    // 4 per dc; within d1, 2 per rack, r1's two split over its two nodes.
    assert_eq!(
        per_node(&plan),
        counts(&[("d2r1", 4), ("d1r2", 2), ("d1r1a", 1), ("d1r1b", 1)])
    );
}

#[test]
fn preassigned_tasks_are_checked_against_their_node_only() {
    let s = store(
        vec![
            node("n1"),
            availability(node("n2"), Availability::Drain),
            node("n3"),
        ],
        vec![
            on(task("g1", "global"), "n1"),
            on(task("g2", "global"), "n2"),
            on(task("g9", "global"), "gone"),
            on(
                constrained(task("g3", "global2"), &["node.role==manager"]),
                "n3",
            ),
        ],
    );
    let plan = plan_all(&s);
    assert_eq!(plan.assign, vec![("g1".to_string(), "n1".to_string())]);
    assert_eq!(why(&plan, "g2"), "1 node not available for new tasks");
    assert_eq!(
        why(&plan, "g3"),
        "scheduling constraints not satisfied on 1 node"
    );
    assert!(why(&plan, "g9").contains("no longer exists"));
}

#[test]
fn preassigned_tasks_claim_resources_before_replicas() {
    // One node, room for one 3-CPU task: the global task wins it.
    let s = store(
        vec![node("n1")],
        vec![
            reserving(task("a-replica", "aaa"), 3 * CPU, 0),
            on(reserving(task("z-global", "zzz"), 3 * CPU, 0), "n1"),
        ],
    );
    let plan = plan_all(&s);
    assert_eq!(
        plan.assign,
        vec![("z-global".to_string(), "n1".to_string())]
    );
    assert_eq!(
        why(&plan, "a-replica"),
        "no suitable node (insufficient resources on 1 node)"
    );
}

#[test]
fn only_pending_tasks_meant_to_run_are_planned() {
    let mut shutdown = task("t-shut", "s");
    shutdown.set_desired_state(TaskState::Shutdown);
    let mut job = task("t-job", "s");
    job.set_desired_state(TaskState::Complete);
    let mut assigned = task("t-assigned", "s");
    assigned
        .status
        .as_mut()
        .unwrap()
        .set_state(TaskState::Assigned);
    let s = store(
        vec![node("n1")],
        vec![task("t-run", "s"), shutdown, job, assigned],
    );
    let ids: Vec<String> = s.view(|t| pending_tasks(t).iter().map(|t| t.id.clone()).collect());
    assert_eq!(ids, ["t-job", "t-run"]);
    let plan = s.view(|t| plan(t, &pending_tasks(t)));
    assert_eq!(plan.assign.len(), 2);
}

#[test]
fn unschedulable_tasks_are_counted_by_their_main_reason() {
    // Constraints refuse two nodes and readiness one: "constraints" wins;
    // a bad constraint, a lost node and a drained one each have their own.
    let s = store(
        vec![
            node("a"),
            node("b"),
            availability(node("drained"), Availability::Drain),
        ],
        vec![
            constrained(task("c1", "s"), &["node.hostname==z"]),
            constrained(task("c2", "s"), &["node.hostname==z"]),
            constrained(task("bad", "s"), &["node.role=manager"]),
            on(task("g-gone", "g"), "gone"),
            on(task("g-drained", "g"), "drained"),
        ],
    );
    let plan = plan_all(&s);
    let reasons: Vec<(&str, usize)> = plan.reasons.iter().map(|(r, n)| (*r, *n)).collect();
    assert_eq!(
        reasons,
        [
            ("bad_constraint", 1),
            ("constraints", 2),
            ("node_gone", 1),
            ("unavailable", 1)
        ]
    );
    assert_eq!(
        plan.reasons.values().sum::<usize>(),
        plan.unschedulable.len()
    );
    assert_eq!(
        plan_all(&store(vec![], vec![task("t", "s")])).reasons,
        [("no_nodes", 1)].into()
    );
}

#[test]
fn every_reason_a_plan_gives_is_listed() {
    use crate::scheduler::filter::PIPELINE;
    use crate::scheduler::pipeline::REASONS;
    for f in PIPELINE {
        assert!(REASONS.contains(&f.reason()), "{f:?}");
    }
    let mut unique = REASONS.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), REASONS.len());
}
