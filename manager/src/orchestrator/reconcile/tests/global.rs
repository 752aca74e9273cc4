//! Global services: one task per eligible node.

use super::*;

#[test]
fn global_runs_one_task_per_eligible_node() {
    let s = constrained(global("agent"), &["node.labels.zone==a"]);
    let zone_a = |id| with_label(node(id), "zone", "a");
    let nodes = vec![
        zone_a("ok1"),
        zone_a("ok2"),
        availability(zone_a("drained"), Availability::Drain),
        availability(zone_a("paused"), Availability::Pause),
        state(zone_a("down"), NodeState::Down),
        state(zone_a("unknown"), NodeState::Unknown),
        with_label(node("zone-b"), "zone", "b"),
        node("no-label"),
    ];
    let store = world(nodes, vec![s.clone()], vec![]);
    let p = plan(&store, &s, SystemTime::now());
    assert_eq!(nodes_of(&p.create), vec!["ok1", "ok2"]);
    for t in &p.create {
        assert_eq!(t.slot, 0, "global tasks have no slot number");
        assert_eq!(t.desired_state(), TaskState::Running);
        assert_eq!(
            t.annotations.as_ref().unwrap().name,
            format!("agent-name.{}", t.node_id)
        );
    }
    assert!(p.desire.is_empty());
}

#[test]
fn global_follows_nodes_that_come_go_and_drain() {
    let s = global("agent");
    let on = |id: &str, n: &str| slot_task(id, &s, 0, TaskState::Running, n);
    let store = world(
        vec![
            node("n1"),
            availability(node("drained"), Availability::Drain),
            state(node("down"), NodeState::Down),
            node("new"),
        ],
        vec![s.clone()],
        vec![
            on("t1", "n1"),
            on("t-drained", "drained"),
            on("t-down", "down"),
            on("t-gone", "gone"),
        ],
    );
    let p = plan(&store, &s, SystemTime::now());
    assert_eq!(
        nodes_of(&p.create),
        vec!["new"],
        "only the new node gets one"
    );
    assert_eq!(
        desires(&p.desire),
        vec![
            ("t-down", TaskState::Shutdown),
            ("t-drained", TaskState::Shutdown),
            ("t-gone", TaskState::Shutdown),
        ]
    );
}

#[test]
fn global_leaves_a_node_whose_labels_stop_matching() {
    let s = constrained(global("agent"), &["node.labels.zone==a"]);
    let store = world(
        vec![with_label(node("n1"), "zone", "b")],
        vec![s.clone()],
        vec![slot_task("t1", &s, 0, TaskState::Running, "n1")],
    );
    let p = plan(&store, &s, SystemTime::now());
    assert!(p.create.is_empty());
    assert_eq!(desires(&p.desire), vec![("t1", TaskState::Shutdown)]);
}

#[test]
fn global_restarts_a_failed_task_on_its_node_by_policy() {
    let now = SystemTime::now();
    for (condition, replaced) in [(Condition::Any, true), (Condition::None, false)] {
        let s = restart(global("agent"), condition, Some(Duration::ZERO), 0, None);
        let failed = ended(
            slot_task("t1", &s, 0, TaskState::Running, "n1"),
            TaskState::Failed,
            1,
            now - SEC,
        );
        let store = world(vec![node("n1")], vec![s.clone()], vec![failed]);
        let p = plan(&store, &s, now);
        assert_eq!(desires(&p.desire), vec![("t1", TaskState::Shutdown)]);
        let want: Vec<String> = if replaced { vec!["n1".into()] } else { vec![] };
        assert_eq!(nodes_of(&p.create), want, "{condition:?}");
    }
}

#[test]
fn global_keeps_running_on_a_paused_node() {
    // Docker: pause = no new tasks, existing ones stay (swarmkit's global
    // orchestrator skips paused nodes instead of shutting their tasks down).
    let s = global("agent");
    let store = world(
        vec![availability(node("n1"), Availability::Pause)],
        vec![s.clone()],
        vec![slot_task("t1", &s, 0, TaskState::Running, "n1")],
    );
    let p = plan(&store, &s, SystemTime::now());
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn global_returns_to_a_node_after_drain_with_condition_none() {
    let s = restart(global("agent"), Condition::None, None, 0, None);
    // Drained, then made active again: its task was shut down by us.
    let stopped = desired(
        ended(
            slot_task("t1", &s, 0, TaskState::Running, "n1"),
            TaskState::Shutdown,
            0,
            SystemTime::now(),
        ),
        TaskState::Shutdown,
    );
    let store = world(vec![node("n1")], vec![s.clone()], vec![stopped]);
    let p = plan(&store, &s, SystemTime::now());
    assert_eq!(nodes_of(&p.create), vec!["n1"]);
}
