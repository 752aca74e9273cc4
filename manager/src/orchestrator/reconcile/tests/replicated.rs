//! Replicated services: slots, scaling, the restart policy, lost nodes.

use super::*;

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
