//! Replicated and global jobs: completions and max-concurrent.

use super::*;

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
