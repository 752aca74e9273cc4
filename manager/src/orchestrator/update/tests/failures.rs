//! Failure actions, the max failure ratio, failures across batches.

use super::*;

/// Starts the first batch and reports `outcome` for its `fail` first new
/// tasks (the others run).
pub(super) fn first_batch_with_failures(
    rig: &mut Rig,
    t0: SystemTime,
    fail: usize,
    outcome: TaskState,
) -> Vec<String> {
    let p = rig.step(t0);
    rig.apply(&p);
    let new = ids(&p.create);
    for (i, id) in new.iter().enumerate() {
        let state = if i < fail {
            outcome
        } else {
            TaskState::Running
        };
        report(&rig.store, id, state, Health::None);
    }
    new
}

#[test]
fn a_failure_pauses_continues_or_rolls_back() {
    for (action, outcome) in [
        (FailureAction::Pause, TaskState::Failed),
        (FailureAction::Pause, TaskState::Rejected),
        (FailureAction::Continue, TaskState::Failed),
        (FailureAction::Rollback, TaskState::Failed),
    ] {
        let case = format!("{action:?} on {outcome:?}");
        let mut rig = Rig::replicated(3, Some(on_failure(cfg(1), action, 0.0)));
        let before = rig.service();
        let t0 = SystemTime::now();
        let new = first_batch_with_failures(&mut rig, t0, 1, outcome);
        let now = t0 + SEC;
        let p = rig.step(now);
        if action != FailureAction::Continue {
            assert!(p.create.is_empty(), "{case}: no new task after a failure");
        }
        match action {
            FailureAction::Continue => {
                assert!(p.service.is_none(), "{case}");
                assert_eq!(slots(&p.create), vec![2], "{case}: goes on at once");
            }
            FailureAction::Pause => {
                let s = p.service.clone().expect("paused");
                assert_eq!(state_of(&s), State::Paused, "{case}");
                assert_eq!(
                    s.update_status.as_ref().unwrap().message,
                    format!(
                        "update paused due to failure or early termination of task {}",
                        new[0]
                    )
                );
                assert_eq!(s.spec, before.spec, "{case}");
                rig.apply(&p);
                let p = rig.step(now + 60 * SEC);
                assert!(
                    p.create.is_empty() && p.service.is_none(),
                    "{case}: stays paused"
                );
            }
            FailureAction::Rollback => {
                let s = p.service.clone().expect("rolled back");
                let status = s.update_status.as_ref().unwrap();
                assert_eq!(status.state(), State::RollbackStarted, "{case}");
                assert_eq!(
                    status.message,
                    format!(
                        "update rolled back due to failure or early termination of task {}",
                        new[0]
                    )
                );
                assert_eq!(status.started_at, Some(now.into()));
                assert_eq!(
                    s.spec, before.previous_spec,
                    "{case}: the previous spec is back"
                );
                assert_eq!(s.previous_spec, before.spec, "{case}: the bad one is kept");
                // The rollback replaces the task of the bad spec only.
                rig.apply(&p);
                let p = rig.step(now);
                assert_eq!(slots(&p.create), vec![1], "{case}");
                assert!(p.create.iter().all(|t| image(t) == "img:1"));
            }
        }
    }
}

#[test]
fn a_failing_rollback_pauses_whatever_the_action() {
    for action in [FailureAction::Pause, FailureAction::Rollback] {
        let base = replicated("web", 2);
        let tasks = (1..=2)
            .map(|s| slot_task(&format!("t{s}"), &base, s, TaskState::Running, "n1"))
            .collect();
        let mut s = updating(base, "img:0", None, State::RollbackStarted);
        s.spec.as_mut().unwrap().rollback = Some(on_failure(cfg(1), action, 0.0));
        let mut rig = Rig::new(s, tasks);
        let t0 = SystemTime::now();
        let new = first_batch_with_failures(&mut rig, t0, 1, TaskState::Failed);
        let p = rig.step(t0 + SEC);
        let s = p.service.expect("paused");
        assert_eq!(state_of(&s), State::RollbackPaused, "{action:?}");
        assert_eq!(
            s.update_status.as_ref().unwrap().message,
            format!(
                "rollback paused due to failure or early termination of task {}",
                new[0]
            )
        );
        assert_eq!(
            s.spec,
            rig.service().spec,
            "{action:?}: no rollback of a rollback"
        );
    }
}

#[test]
fn the_failure_action_waits_for_the_max_failure_ratio() {
    // 4 replicas all in one batch: (ratio, failures, paused)
    let cases = [
        (0.0, 1, true),
        (0.25, 1, false),
        (0.25, 2, true),
        (0.5, 2, false),
        (0.5, 3, true),
        (1.0, 4, false),
    ];
    for (ratio, failures, paused) in cases {
        let case = format!("ratio {ratio}, {failures} failed");
        let mut rig = Rig::replicated(4, Some(on_failure(cfg(0), FailureAction::Pause, ratio)));
        let t0 = SystemTime::now();
        first_batch_with_failures(&mut rig, t0, failures, TaskState::Failed);
        let p = rig.step(t0 + SEC);
        if paused {
            assert_eq!(
                state_of(p.service.as_ref().expect(&case)),
                State::Paused,
                "{case}"
            );
        } else {
            assert!(p.service.is_none(), "{case}");
            assert_eq!(p.wake_at, Some(t0 + 6 * SEC), "{case}: monitored");
        }
    }
}

#[test]
fn failures_add_up_across_batches() {
    // 4 replicas one at a time, ratio 0.3: one failure (0.25) is tolerated,
    // a second one in a later batch (0.5) is not.
    let update = timed(
        on_failure(cfg(1), FailureAction::Pause, 0.3),
        Some(SEC),
        None,
    );
    let mut rig = Rig::replicated(4, Some(update));
    let t0 = SystemTime::now();
    first_batch_with_failures(&mut rig, t0, 1, TaskState::Failed);
    let p = rig.step(t0);
    assert!(p.service.is_none(), "tolerated");
    assert_eq!(slots(&p.create), vec![2], "the failed task's lane moves on");
    rig.apply(&p);
    report(&rig.store, &p.create[0].id, TaskState::Failed, Health::None);
    let p = rig.step(t0 + 2 * SEC);
    assert_eq!(state_of(p.service.as_ref().expect("paused")), State::Paused);
}

#[test]
fn a_task_failing_within_its_monitor_period_counts_after_the_next_batch_started() {
    // Monitor 10 s: slot 1's task runs, slot 2 starts at once (the monitor
    // does not hold it back), and slot 1's task failing 5 s after it ran
    // still pauses or rolls back the update.
    for (action, to) in [
        (FailureAction::Pause, State::Paused),
        (FailureAction::Rollback, State::RollbackStarted),
    ] {
        let update = timed(on_failure(cfg(1), action, 0.0), Some(10 * SEC), None);
        let mut rig = Rig::replicated(3, Some(update));
        let t0 = SystemTime::now();
        let first = first_batch_with_failures(&mut rig, t0, 0, TaskState::Failed);
        let p = rig.step(t0);
        assert_eq!(
            slots(&p.create),
            vec![2],
            "{action:?}: no wait for the monitor"
        );
        rig.apply(&p);
        report(
            &rig.store,
            &p.create[0].id,
            TaskState::Running,
            Health::None,
        );
        report(&rig.store, &first[0], TaskState::Failed, Health::None);
        let p = rig.step(t0 + 5 * SEC);
        assert_eq!(
            state_of(p.service.as_ref().expect("acted")),
            to,
            "{action:?}"
        );
    }
}

#[test]
fn a_task_failing_after_its_monitor_period_is_not_the_update_s_failure() {
    let update = timed(
        on_failure(cfg(1), FailureAction::Pause, 0.0),
        Some(2 * SEC),
        None,
    );
    let mut rig = Rig::replicated(2, Some(update));
    let t0 = SystemTime::now();
    let first = first_batch_with_failures(&mut rig, t0, 0, TaskState::Failed);
    let p = rig.step(t0);
    rig.apply(&p);
    report(
        &rig.store,
        &p.create[0].id,
        TaskState::Running,
        Health::None,
    );
    report(&rig.store, &first[0], TaskState::Failed, Health::None);
    let p = rig.step(t0 + 3 * SEC);
    assert!(p.service.is_none(), "failed 3 s after it ran: {p:?}");
}

#[test]
fn the_end_of_the_update_is_monitored_and_a_late_failure_still_acts() {
    let update = timed(
        on_failure(cfg(0), FailureAction::Rollback, 0.0),
        Some(4 * SEC),
        None,
    );
    let mut rig = Rig::replicated(2, Some(update));
    let t0 = SystemTime::now();
    let new = first_batch_with_failures(&mut rig, t0, 0, TaskState::Failed);
    let p = rig.step(t0 + SEC);
    assert!(p.service.is_none());
    assert_eq!(p.wake_at, Some(t0 + 5 * SEC), "monitored once more");
    report(&rig.store, &new[1], TaskState::Failed, Health::None);
    let p = rig.step(t0 + 3 * SEC);
    assert_eq!(
        state_of(p.service.as_ref().expect("rolled back")),
        State::RollbackStarted
    );
}
