//! Which slots a batch replaces, and when an update or rollback is done.

use super::*;

#[test]
fn parallelism_replaces_that_many_old_slots_at_a_time() {
    // (update config, slots of the first batch)
    let cases: &[(Option<UpdateConfig>, &[u64])] = &[
        (None, &[1]),
        (Some(cfg(1)), &[1]),
        (Some(cfg(2)), &[1, 2]),
        (Some(cfg(0)), &[1, 2, 3, 4, 5]),
        (Some(cfg(10)), &[1, 2, 3, 4, 5]),
    ];
    for (update, want) in cases {
        let mut rig = Rig::replicated(5, *update);
        let p = rig.step(SystemTime::now());
        let case = format!("{update:?}");
        assert_eq!(slots(&p.create), *want, "{case}");
        for t in &p.create {
            assert_eq!(image(t), "img:2", "{case}");
            assert_eq!(t.desired_state(), TaskState::Running, "{case}");
        }
        // Stop-first (the default): the old tasks of those slots stop now.
        let stopped: Vec<(String, TaskState)> = want
            .iter()
            .map(|s| (format!("t{s}"), TaskState::Shutdown))
            .collect();
        assert_eq!(desires(&p.desire), desires(&stopped), "{case}");
        assert!(p.service.is_none() && p.wake_at.is_none(), "{case}");
    }
}

#[test]
fn only_slots_running_another_spec_are_updated() {
    let base = replicated("web", 5);
    let target = spec("img:2");
    let tasks: Vec<Task> = (1..=5)
        .map(|s| {
            let t = slot_task(&format!("t{s}"), &base, s, TaskState::Running, "n1");
            if s == 1 || s == 3 {
                with_spec(t, target.clone())
            } else {
                t
            }
        })
        .collect();
    let mut rig = Rig::new(
        updating(base, "img:2", Some(cfg(2)), State::Updating),
        tasks,
    );
    let p = rig.step(SystemTime::now());
    assert_eq!(slots(&p.create), vec![2, 4]);
    assert_eq!(
        desires(&p.desire),
        vec![("t2", TaskState::Shutdown), ("t4", TaskState::Shutdown)]
    );
}

#[test]
fn a_slot_with_a_live_task_of_the_new_spec_is_done_whatever_else_runs_there() {
    // Start-first leaves old and new side by side for a while.
    let base = replicated("web", 1);
    let tasks = vec![
        slot_task("old", &base, 1, TaskState::Running, "n1"),
        with_spec(
            slot_task("new", &base, 1, TaskState::Running, "n1"),
            spec("img:2"),
        ),
    ];
    let mut rig = Rig::new(updating(base, "img:2", None, State::Updating), tasks);
    let p = rig.step(SystemTime::now());
    assert!(p.create.is_empty() && p.desire.is_empty());
    assert_eq!(state_of(p.service.as_ref().unwrap()), State::Completed);
}

#[test]
fn a_force_update_bump_replaces_tasks_with_an_otherwise_equal_spec() {
    for (force, replaced) in [(0, false), (1, true)] {
        let base = replicated("web", 2);
        let tasks = (1..=2)
            .map(|s| slot_task(&format!("t{s}"), &base, s, TaskState::Running, "n1"))
            .collect();
        let mut s = updating(base, "img:1", Some(cfg(0)), State::Updating);
        task_spec(&mut s).force_update = force;
        let mut rig = Rig::new(s, tasks);
        let p = rig.step(SystemTime::now());
        if replaced {
            assert_eq!(slots(&p.create), vec![1, 2]);
            assert!(
                p.create
                    .iter()
                    .all(|t| t.spec.as_ref().unwrap().force_update == 1)
            );
        } else {
            assert!(p.create.is_empty());
            assert_eq!(state_of(p.service.as_ref().unwrap()), State::Completed);
        }
    }
}

#[test]
fn nothing_left_to_replace_completes_the_update_or_rollback() {
    for (state, done, message) in [
        (State::Updating, State::Completed, "update completed"),
        (
            State::RollbackStarted,
            State::RollbackCompleted,
            "rollback completed",
        ),
    ] {
        let base = replicated("web", 2);
        let tasks = (1..=2)
            .map(|s| {
                with_spec(
                    slot_task(&format!("t{s}"), &base, s, TaskState::Running, "n1"),
                    spec("img:2"),
                )
            })
            .collect();
        let mut rig = Rig::new(updating(base, "img:2", None, state), tasks);
        let now = SystemTime::now();
        let p = rig.step(now);
        assert!(p.create.is_empty() && p.desire.is_empty(), "{state:?}");
        let s = p.service.expect("status changes");
        let status = s.update_status.as_ref().unwrap();
        assert_eq!(status.state(), done);
        assert_eq!(status.message, message);
        assert_eq!(status.completed_at, Some(now.into()));
        assert_eq!(
            s.spec,
            rig.service().spec,
            "{state:?}: only the status changes"
        );
    }
}

#[test]
fn no_update_in_progress_changes_nothing() {
    for state in [
        State::Unknown,
        State::Paused,
        State::Completed,
        State::RollbackPaused,
        State::RollbackCompleted,
    ] {
        let mut rig = Rig::replicated(3, None);
        rig.edit_service(|s| s.update_status.as_mut().unwrap().set_state(state));
        let p = rig.step(SystemTime::now());
        assert!(
            p.create.is_empty()
                && p.desire.is_empty()
                && p.service.is_none()
                && p.wake_at.is_none(),
            "{state:?}: {p:?}"
        );
    }
}
