//! Reconciliation over hand-built tables: slots, restart policy, global
//! placement, jobs, and the reaper.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use shoal_proto::objects::node_spec::Availability;
use shoal_proto::objects::node_status::State as NodeState;
use shoal_proto::objects::{Meta, Node, Service, Task, TaskState, restart_policy::Condition};

use super::{Plan, reap, reconcile};
use crate::orchestrator::testkit::*;
use crate::orchestrator::{pass, reap_orphans, update};
use crate::store::Store;

const SEC: Duration = Duration::from_secs(1);

fn plan(store: &Store, service: &Service, now: SystemTime) -> Plan {
    store.view(|t| reconcile(t, service, now))
}

fn running_in(service: &Service, slots: &[u64]) -> Vec<Task> {
    slots
        .iter()
        .map(|s| slot_task(&format!("t{s}"), service, *s, TaskState::Running, "n1"))
        .collect()
}

/// One orchestrator pass over `service_id`, committed.
fn pass_once(store: &Store, service_id: &str, now: SystemTime) {
    commit(store, |tx| {
        let t = tx.tables();
        let mut updates = update::Updates::default();
        let mut wake = None;
        pass(tx, t, service_id, &mut updates, now, &mut wake)
    });
}

#[test]
fn replicated_scale_up_creates_the_missing_slots() {
    // (replicas, slots with a running task, slots expected to be created)
    let cases: &[(u64, &[u64], &[u64])] = &[
        (3, &[], &[1, 2, 3]),
        (5, &[1, 2, 3], &[4, 5]),
        (4, &[1, 3], &[2, 4]),
        (3, &[1, 2, 3], &[]),
        (0, &[], &[]),
    ];
    let now = SystemTime::now();
    for (replicas, have, want) in cases {
        let s = replicated("web", *replicas);
        let store = world(vec![node("n1")], vec![s.clone()], running_in(&s, have));
        let p = plan(&store, &s, now);
        let case = format!("replicas {replicas}, running {have:?}");
        assert_eq!(slots(&p.create), *want, "{case}");
        assert!(p.desire.is_empty(), "{case}: {:?}", p.desire);
        assert_eq!(p.wake_at, None, "{case}");
        for t in &p.create {
            assert_eq!(t.service_id, "web");
            assert_eq!(t.node_id, "", "the scheduler places it");
            assert_eq!(t.desired_state(), TaskState::Running);
            assert_eq!(t.status.as_ref().unwrap().state(), TaskState::New);
            assert_eq!(t.spec, s.spec.as_ref().unwrap().task);
            assert_eq!(
                t.annotations.as_ref().unwrap().name,
                format!("web-name.{}", t.slot)
            );
        }
        let ids: BTreeSet<&str> = p.create.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids.len(), p.create.len(), "{case}: fresh ids");
    }
}

#[test]
fn scale_down_removes_the_slots_above_the_count() {
    // The rule: slots 1..=replicas are wanted; live tasks in any other
    // slot are asked to be removed, and a hole below the count is filled.
    // (replicas, running slots, removed slots, created slots)
    type Case<'a> = (u64, &'a [u64], &'a [u64], &'a [u64]);
    let cases: &[Case] = &[
        (2, &[1, 2, 3, 4], &[3, 4], &[]),
        (0, &[1, 2], &[1, 2], &[]),
        (2, &[1, 3], &[3], &[2]),
        (3, &[2, 5, 9], &[5, 9], &[1, 3]),
    ];
    let now = SystemTime::now();
    for (replicas, have, removed, created) in cases {
        let s = replicated("web", *replicas);
        let store = world(vec![node("n1")], vec![s.clone()], running_in(&s, have));
        let p = plan(&store, &s, now);
        let case = format!("replicas {replicas}, running {have:?}");
        let want: Vec<(String, TaskState)> = removed
            .iter()
            .map(|s| (format!("t{s}"), TaskState::Remove))
            .collect();
        assert_eq!(desires(&p.desire), desires(&want), "{case}: removed slots");
        assert_eq!(slots(&p.create), *created, "{case}: created slots");
    }
}

#[test]
fn scale_down_leaves_stopped_tasks_of_removed_slots_alone() {
    let s = replicated("web", 1);
    let stopped = desired(
        ended(
            slot_task("old", &s, 2, TaskState::Running, "n1"),
            TaskState::Shutdown,
            0,
            SystemTime::now(),
        ),
        TaskState::Remove,
    );
    let store = world(
        vec![node("n1")],
        vec![s.clone()],
        vec![slot_task("t1", &s, 1, TaskState::Running, "n1"), stopped],
    );
    assert!(plan(&store, &s, SystemTime::now()).is_empty());
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// A replacement now.
    Create,
    /// No replacement; a wake-up this long after the failure.
    WakeAfter(Duration),
    /// Nothing at all.
    Never,
}

#[test]
fn restart_policy_decides_on_replacements() {
    struct Case {
        name: &'static str,
        condition: Condition,
        delay: Option<Duration>,
        max_attempts: u64,
        window: Option<Duration>,
        /// How the last task ended: state, exit code, seconds ago.
        last: (TaskState, i32, u64),
        /// Earlier ended tasks of the slot, seconds ago (Failed, exit 1).
        earlier: &'static [u64],
        expect: Expect,
    }
    let case = |name, condition, last, expect| Case {
        name,
        condition,
        delay: None,
        max_attempts: 0,
        window: None,
        last,
        earlier: &[],
        expect,
    };
    use Condition::{Any, None as Never_, OnFailure};
    use TaskState::{Complete, Failed, Rejected};
    let cases = [
        case("any, failed long ago", Any, (Failed, 1, 60), Expect::Create),
        case("any, exited 0", Any, (Complete, 0, 60), Expect::Create),
        case("any, rejected", Any, (Rejected, 0, 60), Expect::Create),
        case(
            "any, failed 1 s ago: default 5 s delay",
            Any,
            (Failed, 1, 1),
            Expect::WakeAfter(5 * SEC),
        ),
        Case {
            delay: Some(10 * SEC),
            ..case(
                "any, custom delay",
                Any,
                (Failed, 1, 4),
                Expect::WakeAfter(10 * SEC),
            )
        },
        Case {
            delay: Some(Duration::ZERO),
            ..case("any, zero delay", Any, (Failed, 1, 0), Expect::Create)
        },
        case(
            "on-failure, exit 0",
            OnFailure,
            (Complete, 0, 60),
            Expect::Never,
        ),
        case(
            "on-failure, complete with exit 3",
            OnFailure,
            (Complete, 3, 60),
            Expect::Create,
        ),
        case(
            "on-failure, failed",
            OnFailure,
            (Failed, 1, 60),
            Expect::Create,
        ),
        case(
            "on-failure, rejected",
            OnFailure,
            (Rejected, 0, 60),
            Expect::Create,
        ),
        case("none, failed", Never_, (Failed, 1, 60), Expect::Never),
        case("none, exit 0", Never_, (Complete, 0, 60), Expect::Never),
        Case {
            max_attempts: 2,
            earlier: &[120],
            ..case(
                "max 2, second failure",
                Any,
                (Failed, 1, 60),
                Expect::Create,
            )
        },
        Case {
            max_attempts: 2,
            earlier: &[180, 120],
            ..case("max 2, third failure", Any, (Failed, 1, 60), Expect::Never)
        },
        Case {
            max_attempts: 1,
            window: Some(30 * SEC),
            delay: Some(Duration::ZERO),
            earlier: &[60],
            ..case(
                "max 1 in 30 s, the earlier failure is outside the window",
                Any,
                (Failed, 1, 10),
                Expect::Create,
            )
        },
        Case {
            max_attempts: 1,
            window: Some(30 * SEC),
            delay: Some(Duration::ZERO),
            earlier: &[20],
            ..case(
                "max 1 in 30 s, both inside the window",
                Any,
                (Failed, 1, 10),
                Expect::Never,
            )
        },
        Case {
            max_attempts: 1,
            earlier: &[120],
            ..case(
                "max attempts do not stop on-failure's exit-0 verdict either",
                OnFailure,
                (Complete, 0, 60),
                Expect::Never,
            )
        },
    ];
    let now = SystemTime::now();
    for c in cases {
        let s = restart(
            replicated("web", 1),
            c.condition,
            c.delay,
            c.max_attempts,
            c.window,
        );
        let mut tasks: Vec<Task> = c
            .earlier
            .iter()
            .enumerate()
            .map(|(i, ago)| {
                desired(
                    ended(
                        slot_task(&format!("e{i}"), &s, 1, TaskState::Running, "n1"),
                        Failed,
                        1,
                        now - Duration::from_secs(*ago),
                    ),
                    TaskState::Shutdown,
                )
            })
            .collect();
        let (state, code, ago) = c.last;
        let ended_at = now - Duration::from_secs(ago);
        // Still desired running: the orchestrator has not seen it end yet.
        tasks.push(ended(
            slot_task("last", &s, 1, TaskState::Running, "n1"),
            state,
            code,
            ended_at,
        ));
        let store = world(vec![node("n1")], vec![s.clone()], tasks);
        let p = plan(&store, &s, now);
        assert_eq!(
            desires(&p.desire),
            vec![("last", TaskState::Shutdown)],
            "{}: the ended task is told to shut down",
            c.name
        );
        let got = match (&p.create[..], p.wake_at) {
            ([t], None) => {
                assert_eq!(t.slot, 1, "{}", c.name);
                Expect::Create
            }
            ([], Some(at)) => Expect::WakeAfter(at.duration_since(ended_at).unwrap()),
            ([], None) => Expect::Never,
            _ => panic!("{}: unexpected plan {p:?}", c.name),
        };
        assert_eq!(got, c.expect, "{}", c.name);
    }
}

#[test]
fn the_earliest_delayed_restart_wakes_the_loop() {
    let now = SystemTime::now();
    let s = restart(
        replicated("web", 3),
        Condition::Any,
        Some(10 * SEC),
        0,
        None,
    );
    let failed = |id, slot, ago: u64| {
        ended(
            slot_task(id, &s, slot, TaskState::Running, "n1"),
            TaskState::Failed,
            1,
            now - Duration::from_secs(ago),
        )
    };
    let store = world(
        vec![node("n1")],
        vec![s.clone()],
        vec![
            failed("a", 1, 2),
            failed("b", 2, 7),
            slot_task("c", &s, 3, TaskState::Running, "n1"),
        ],
    );
    let p = plan(&store, &s, now);
    assert!(p.create.is_empty());
    assert_eq!(p.wake_at, Some(now + 3 * SEC), "b's restart is due first");
    assert_eq!(
        desires(&p.desire),
        vec![("a", TaskState::Shutdown), ("b", TaskState::Shutdown)]
    );
    // Once due, the slot is refilled (the ended task was told to shut down).
    apply(&store, &[], &p.desire);
    let p = plan(&store, &s, now + 3 * SEC);
    assert_eq!(slots(&p.create), vec![2]);
    assert_eq!(p.wake_at, Some(now + 8 * SEC));
    assert!(p.desire.is_empty());
}

#[test]
fn a_task_whose_node_is_lost_or_drained_is_replaced_at_once() {
    // Whatever the restart policy (none here): the task did not end by
    // itself. (name, n2 as it is now (None: removed), replaced)
    let cases = [
        ("down", Some(state(node("n2"), NodeState::Down)), true),
        ("removed", None, true),
        (
            "drained",
            Some(availability(node("n2"), Availability::Drain)),
            true,
        ),
        (
            "paused",
            Some(availability(node("n2"), Availability::Pause)),
            false,
        ),
        (
            "disconnected",
            Some(state(node("n2"), NodeState::Disconnected)),
            false,
        ),
        ("ready", Some(node("n2")), false),
    ];
    for (name, n2, replaced) in cases {
        let s = restart(replicated("web", 2), Condition::None, None, 0, None);
        let nodes: Vec<Node> = std::iter::once(node("n1")).chain(n2).collect();
        let store = world(
            nodes,
            vec![s.clone()],
            vec![
                slot_task("t1", &s, 1, TaskState::Running, "n1"),
                slot_task("t2", &s, 2, TaskState::Running, "n2"),
            ],
        );
        let p = plan(&store, &s, SystemTime::now());
        if replaced {
            assert_eq!(
                desires(&p.desire),
                vec![("t2", TaskState::Shutdown)],
                "{name}"
            );
            assert_eq!(slots(&p.create), vec![2], "{name}");
            assert_eq!(p.wake_at, None, "{name}");
        } else {
            assert!(p.is_empty(), "{name}: {p:?}");
        }
    }
}

#[test]
fn a_task_not_yet_placed_is_left_alone() {
    let s = replicated("web", 2);
    let store = world(
        vec![node("n1")],
        vec![s.clone()],
        vec![
            slot_task("t1", &s, 1, TaskState::New, ""),
            slot_task("t2", &s, 2, TaskState::Pending, ""),
        ],
    );
    assert!(plan(&store, &s, SystemTime::now()).is_empty());
}

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
#[ignore = "BUG (reported): a paused node's global task is shut down; Docker keeps it running"]
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
#[ignore = "BUG (reported): with restart condition none a global service never comes back to an undrained node"]
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

#[test]
fn replicated_job_starts_at_most_max_concurrent() {
    // (total, concurrent, running slots, expected new slots)
    let cases: &[(u64, u64, &[u64], &[u64])] = &[
        (5, 2, &[], &[1, 2]),
        (5, 2, &[1], &[2]),
        (5, 2, &[1, 2], &[]),
        (3, 10, &[], &[1, 2, 3]),
        (3, 0, &[], &[1]), // max_concurrent 0 means 1
    ];
    for (total, concurrent, have, want) in cases {
        let s = replicated_job("job", *total, *concurrent);
        let store = world(vec![node("n1")], vec![s.clone()], running_in(&s, have));
        let p = plan(&store, &s, SystemTime::now());
        let case = format!("total {total}, concurrent {concurrent}, running {have:?}");
        assert_eq!(slots(&p.create), *want, "{case}");
        assert!(p.desire.is_empty(), "{case}");
        for t in &p.create {
            assert_eq!(t.desired_state(), TaskState::Complete, "{case}");
        }
    }
}

fn completed(s: &Service, slot: u64) -> Task {
    ended(
        slot_task(&format!("done{slot}"), s, slot, TaskState::Running, "n1"),
        TaskState::Complete,
        0,
        SystemTime::now(),
    )
}

#[test]
fn a_replicated_job_that_completed_every_slot_is_done() {
    // Even with restart condition any: jobs never restart after success.
    let s = restart(replicated_job("job", 3, 3), Condition::Any, None, 0, None);
    let store = world(
        vec![node("n1")],
        vec![s.clone()],
        (1..=3).map(|i| completed(&s, i)).collect(),
    );
    let p = plan(&store, &s, SystemTime::now());
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn a_replicated_job_moves_on_once_its_first_tasks_complete() {
    let s = replicated_job("job", 5, 2);
    let store = world(
        vec![node("n1")],
        vec![s.clone()],
        vec![completed(&s, 1), completed(&s, 2)],
    );
    let p = plan(&store, &s, SystemTime::now());
    assert_eq!(slots(&p.create), vec![3, 4]);
}

#[test]
fn a_failed_job_task_is_retried_by_policy_and_completions_are_not() {
    let now = SystemTime::now();
    for (condition, retried) in [
        (Condition::OnFailure, true),
        (Condition::Any, true),
        (Condition::None, false),
    ] {
        let s = restart(
            replicated_job("job", 2, 2),
            condition,
            Some(Duration::ZERO),
            0,
            None,
        );
        let failed = ended(
            slot_task("f1", &s, 1, TaskState::Running, "n1"),
            TaskState::Failed,
            2,
            now - SEC,
        );
        let store = world(
            vec![node("n1")],
            vec![s.clone()],
            vec![failed, completed(&s, 2)],
        );
        let p = plan(&store, &s, now);
        assert_eq!(
            desires(&p.desire),
            vec![("f1", TaskState::Shutdown)],
            "{condition:?}: a completed task is not told to stop"
        );
        let want: &[u64] = if retried { &[1] } else { &[] };
        assert_eq!(slots(&p.create), want, "{condition:?}");
    }
}

#[test]
fn global_job_runs_once_per_eligible_node() {
    let s = global_job("gjob");
    let store = world(
        vec![
            node("done"),
            node("fresh"),
            availability(node("drained"), Availability::Drain),
        ],
        vec![s.clone()],
        vec![ended(
            slot_task("d", &s, 0, TaskState::Running, "done"),
            TaskState::Complete,
            0,
            SystemTime::now(),
        )],
    );
    let p = plan(&store, &s, SystemTime::now());
    assert_eq!(nodes_of(&p.create), vec!["fresh"]);
    assert_eq!(p.create[0].desired_state(), TaskState::Complete);
    assert!(p.desire.is_empty());
}

/// A task created `age` seconds after the epoch (the reaper orders by it).
fn aged(mut t: Task, age: u64) -> Task {
    t.meta = Some(Meta {
        created_at: Some((SystemTime::UNIX_EPOCH + Duration::from_secs(age)).into()),
        ..Default::default()
    });
    t
}

fn reaped(store: &Store, service: Option<&Service>, tasks: &[Task], limit: usize) -> Vec<String> {
    let refs: Vec<&Task> = tasks.iter().collect();
    let mut r = store.view(|t| reap(t, service, &refs, limit));
    r.sort();
    r
}

#[test]
fn the_reaper_keeps_the_newest_stopped_tasks_of_each_slot() {
    let s = replicated("web", 2);
    let store = world(vec![node("n1")], vec![], vec![]);
    let stopped = |id: &str, slot, age| {
        aged(
            desired(
                slot_task(id, &s, slot, TaskState::Failed, "n1"),
                TaskState::Shutdown,
            ),
            age,
        )
    };
    let tasks = vec![
        // Slot 1: a live task (never reaped, not counted) and four stopped.
        aged(slot_task("s1-live", &s, 1, TaskState::Running, "n1"), 50),
        stopped("s1-a", 1, 40),
        stopped("s1-b", 1, 30),
        stopped("s1-c", 1, 20),
        stopped("s1-d", 1, 10),
        // Slot 2: told to stop, still running (counted, not reaped), then
        // two stopped.
        aged(
            desired(
                slot_task("s2-stopping", &s, 2, TaskState::Running, "n1"),
                TaskState::Shutdown,
            ),
            30,
        ),
        stopped("s2-a", 2, 20),
        stopped("s2-b", 2, 10),
    ];
    assert_eq!(
        reaped(&store, Some(&s), &tasks, 2),
        vec!["s1-c", "s1-d", "s2-b"]
    );
    assert_eq!(
        reaped(&store, Some(&s), &tasks, 5),
        Vec::<String>::new(),
        "within the limit"
    );
}

#[test]
fn the_reaper_removes_tasks_asked_to_be_removed_once_they_stop() {
    let s = replicated("web", 1);
    let store = world(
        vec![node("n1"), state(node("down"), NodeState::Down)],
        vec![],
        vec![],
    );
    let removing = |id, state, node| desired(slot_task(id, &s, 2, state, node), TaskState::Remove);
    let tasks = vec![
        aged(removing("stopped", TaskState::Shutdown, "n1"), 10),
        aged(removing("running", TaskState::Running, "n1"), 20),
        aged(removing("never-placed", TaskState::Pending, ""), 30),
        aged(removing("on-down-node", TaskState::Running, "down"), 40),
        aged(removing("on-gone-node", TaskState::Running, "gone"), 50),
    ];
    assert_eq!(
        reaped(&store, Some(&s), &tasks, 5),
        vec!["never-placed", "on-down-node", "on-gone-node", "stopped"]
    );
}

#[test]
fn a_removed_services_tasks_go_once_stopped() {
    let s = replicated("web", 1);
    let store = world(vec![node("n1")], vec![], vec![]);
    let tasks = vec![
        aged(
            desired(
                slot_task("running", &s, 1, TaskState::Running, "n1"),
                TaskState::Remove,
            ),
            10,
        ),
        aged(
            desired(
                slot_task("stopped", &s, 1, TaskState::Shutdown, "n1"),
                TaskState::Remove,
            ),
            5,
        ),
        aged(slot_task("failed", &s, 2, TaskState::Failed, "n1"), 5),
        aged(slot_task("lost", &s, 3, TaskState::Running, "gone"), 5),
    ];
    assert_eq!(
        reaped(&store, None, &tasks, 0),
        vec!["failed", "lost", "stopped"]
    );
}

#[test]
fn a_pass_over_a_removed_service_reaps_only_its_stopped_tasks() {
    let s = replicated("gone", 2);
    let store = world(
        vec![node("n1")],
        vec![],
        vec![
            desired(
                slot_task("run", &s, 1, TaskState::Running, "n1"),
                TaskState::Remove,
            ),
            desired(
                slot_task("stop", &s, 2, TaskState::Shutdown, "n1"),
                TaskState::Remove,
            ),
        ],
    );
    pass_once(&store, "gone", SystemTime::now());
    assert!(
        get(&store, "run").is_some(),
        "still running: the worker stops it"
    );
    assert!(get(&store, "stop").is_none());
    // The worker reports it stopped: now it goes too.
    report(&store, "run", TaskState::Shutdown, Default::default());
    pass_once(&store, "gone", SystemTime::now());
    assert!(get(&store, "run").is_none());
}

#[test]
fn orphans_go_when_their_service_or_node_is_gone_and_they_no_longer_run() {
    let kept = replicated("kept", 1);
    let gone = replicated("gone", 1);
    // (task, removed by the orphan reaper)
    let cases = [
        (
            slot_task("gone-running", &gone, 1, TaskState::Running, "n1"),
            false,
        ),
        (
            slot_task("gone-stopped", &gone, 1, TaskState::Shutdown, "n1"),
            true,
        ),
        (
            slot_task("gone-unplaced", &gone, 1, TaskState::Pending, ""),
            true,
        ),
        (
            slot_task("gone-lost", &gone, 1, TaskState::Running, "lost"),
            true,
        ),
        (
            slot_task("kept-running", &kept, 1, TaskState::Running, "n1"),
            false,
        ),
        (
            slot_task("kept-stopped", &kept, 1, TaskState::Failed, "n1"),
            false,
        ),
        (
            desired(
                slot_task("kept-lost-stopped", &kept, 1, TaskState::Running, "lost"),
                TaskState::Shutdown,
            ),
            true,
        ),
        // Still live: its service's pass shuts it down first.
        (
            slot_task("kept-lost-live", &kept, 1, TaskState::Running, "lost"),
            false,
        ),
    ];
    let store = world(
        vec![node("n1")],
        vec![kept.clone()],
        cases.iter().map(|(t, _)| t.clone()).collect(),
    );
    commit(&store, |tx| {
        let t = tx.tables();
        reap_orphans(tx, t, &BTreeSet::new())
    });
    for (t, removed) in &cases {
        assert_eq!(get(&store, &t.id).is_none(), *removed, "{}", t.id);
    }
}

#[test]
fn a_pass_stops_replaces_and_then_reaps_beyond_the_history_limit() {
    // The loop's view of one service over a few failures: each pass shuts
    // the failed task down and starts a new one in its slot; history is
    // kept at the limit (5 by default).
    let s = restart(
        replicated("web", 1),
        Condition::Any,
        Some(Duration::ZERO),
        0,
        None,
    );
    let store = world(vec![node("n1")], vec![s.clone()], vec![]);
    for round in 0..8 {
        pass_once(&store, "web", SystemTime::now());
        let live: Vec<Task> = store.view(|t| {
            t.tasks_of_service("web")
                .filter(|t| super::super::task::is_live(t))
                .cloned()
                .collect()
        });
        assert_eq!(
            slots(&live),
            vec![1],
            "round {round}: one live task in slot 1"
        );
        let total = store.view(|t| t.tasks_of_service("web").count());
        // The live task, the one this pass stopped, and the history.
        assert!(total <= 1 + 1 + 5, "round {round}: {total} tasks kept");
        report(&store, &live[0].id, TaskState::Failed, Default::default());
    }
}

#[test]
#[ignore = "BUG (reported): reaping history below max_attempts lets a slot restart forever"]
fn max_attempts_holds_even_after_the_history_is_reaped() {
    // max_attempts 5 with the default history limit of 5: once the sixth
    // failure stops the slot, reaping the oldest brings the count back
    // to five and the next pass restarts it again.
    let s = restart(
        replicated("web", 1),
        Condition::Any,
        Some(Duration::ZERO),
        5,
        None,
    );
    let store = world(vec![node("n1")], vec![s.clone()], vec![]);
    let mut starts = 0;
    for _ in 0..10 {
        pass_once(&store, "web", SystemTime::now());
        let live: Vec<Task> = store.view(|t| {
            t.tasks_of_service("web")
                .filter(|t| {
                    super::super::task::is_live(t)
                        && t.status.as_ref().unwrap().state() == TaskState::New
                })
                .cloned()
                .collect()
        });
        for t in live {
            starts += 1;
            report(&store, &t.id, TaskState::Failed, Default::default());
        }
    }
    assert_eq!(starts, 6, "the first run and five restarts");
}

#[test]
#[ignore = "BUG (reported): tasks the orchestrator stopped (update, drain) count as restart attempts"]
fn max_attempts_counts_failures_not_tasks_we_stopped() {
    // Slot 1 was updated (its old task shut down by us), then the new task
    // failed once: with max_attempts 1 that failure still gets its restart.
    let now = SystemTime::now();
    let s = restart(
        replicated("web", 1),
        Condition::Any,
        Some(Duration::ZERO),
        1,
        None,
    );
    let updated_away = desired(
        ended(
            slot_task("old", &s, 1, TaskState::Running, "n1"),
            TaskState::Shutdown,
            0,
            now - 60 * SEC,
        ),
        TaskState::Shutdown,
    );
    let failed = ended(
        slot_task("new", &s, 1, TaskState::Running, "n1"),
        TaskState::Failed,
        1,
        now - 10 * SEC,
    );
    let store = world(
        vec![node("n1")],
        vec![s.clone()],
        vec![updated_away, failed],
    );
    assert_eq!(slots(&plan(&store, &s, now).create), vec![1]);
}
