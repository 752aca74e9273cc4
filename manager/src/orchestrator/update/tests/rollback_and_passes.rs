//! Rollbacks, defaults, global and job updates, and full orchestrator passes.

use super::failures::first_batch_with_failures;
use super::timing::drive;
use super::*;

#[test]
fn a_rollback_restores_the_previous_spec_with_the_rollback_config() {
    // After an update to img:2 went wrong: spec img:1 again, slots 1 and 2
    // already run img:2, slots 3 and 4 still img:1.
    let good = replicated("web", 4);
    let tasks = (1..=4)
        .map(|s| {
            let t = slot_task(&format!("t{s}"), &good, s, TaskState::Running, "n1");
            if s <= 2 {
                with_spec(t, spec("img:2"))
            } else {
                t
            }
        })
        .collect();
    let mut s = good.clone();
    s.previous_spec = Some({
        let mut bad = good.spec.clone().unwrap();
        bad.task = Some(spec("img:2"));
        bad
    });
    let spec_ = s.spec.as_mut().unwrap();
    spec_.update = Some(cfg(1));
    spec_.rollback = Some(cfg(2));
    s.update_status = Some(Default::default());
    s.update_status
        .as_mut()
        .unwrap()
        .set_state(State::RollbackStarted);
    let mut rig = Rig::new(s.clone(), tasks);
    let p = rig.step(SystemTime::now());
    assert_eq!(slots(&p.create), vec![1, 2], "the rollback's parallelism");
    assert!(p.create.iter().all(|t| image(t) == "img:1"));
    assert_eq!(
        desires(&p.desire),
        vec![("t1", TaskState::Shutdown), ("t2", TaskState::Shutdown)]
    );
    // To the end: one batch, monitored for the default 5 s.
    let mut rig = Rig::new(
        s,
        rig.store
            .view(|t| t.tasks_of_service("web").cloned().collect()),
    );
    let (batches, done) = drive(&mut rig, SystemTime::now());
    assert_eq!(batches, vec![(Duration::ZERO, vec![1, 2])]);
    assert_eq!(done, 5 * SEC);
    assert_eq!(state_of(&rig.service()), State::RollbackCompleted);
    assert!(rig.live().iter().all(|t| image(t) == "img:1"));
}

#[test]
fn without_a_config_one_task_is_replaced_at_a_time() {
    for state in [State::Updating, State::RollbackStarted] {
        let mut rig = Rig::replicated(3, None);
        rig.edit_service(|s| s.update_status.as_mut().unwrap().set_state(state));
        assert_eq!(
            slots(&rig.step(SystemTime::now()).create),
            vec![1],
            "{state:?}"
        );
    }
}

#[test]
fn a_rollback_without_a_rollback_config_replaces_one_task_at_a_time() {
    // An update config is given (all at once), no rollback config: the
    // rollback should use Docker's default parallelism of 1.
    let mut rig = Rig::replicated(3, Some(cfg(0)));
    rig.edit_service(|s| {
        s.update_status
            .as_mut()
            .unwrap()
            .set_state(State::RollbackStarted)
    });
    assert_eq!(slots(&rig.step(SystemTime::now()).create), vec![1]);
}

#[test]
fn a_new_target_spec_restarts_the_run() {
    let mut rig = Rig::replicated(2, Some(cfg(1)));
    let t0 = SystemTime::now();
    let p = rig.step(t0);
    rig.apply(&p);
    let first = p.create[0].id.clone();
    // Still starting: nothing more for this run.
    assert!(rig.step(t0).create.is_empty());
    // Another update (img:3) while it starts: the old batch is forgotten
    // and the new run begins with slot 1 (its task is not img:3).
    rig.edit_service(|s| task_spec(s).container.as_mut().unwrap().image = "img:3".into());
    let p = rig.step(t0);
    assert_eq!(slots(&p.create), vec![1]);
    assert_eq!(image(&p.create[0]), "img:3");
    assert_eq!(
        desires(&p.desire),
        vec![(first.as_str(), TaskState::Shutdown)]
    );
}

#[test]
fn a_service_that_is_no_longer_updating_forgets_its_run() {
    let mut rig = Rig::replicated(2, Some(cfg(1)));
    let t0 = SystemTime::now();
    let p = rig.step(t0);
    rig.apply(&p);
    rig.edit_service(|s| s.update_status.as_mut().unwrap().set_state(State::Paused));
    assert!(rig.step(t0).create.is_empty());
    // Resumed: the pending batch was forgotten, slot 1 runs img:2 (its
    // new task is live), so slot 2 is next.
    rig.edit_service(|s| s.update_status.as_mut().unwrap().set_state(State::Updating));
    assert_eq!(slots(&rig.step(t0).create), vec![2]);
}

#[test]
fn global_services_update_node_by_node() {
    let base = global("agent");
    let tasks = ["n1", "n2", "n3"]
        .iter()
        .map(|n| slot_task(&format!("t-{n}"), &base, 0, TaskState::Running, n))
        .collect();
    let s = updating(
        base,
        "img:2",
        Some(timed(cfg(2), Some(SEC), None)),
        State::Updating,
    );
    let mut rig = Rig {
        store: world(vec![node("n1"), node("n2"), node("n3")], vec![s], tasks),
        id: "agent".into(),
        updates: Updates::default(),
    };
    let p = rig.step(SystemTime::now());
    assert_eq!(nodes_of(&p.create), vec!["n1", "n2"]);
    assert!(p.create.iter().all(|t| t.slot == 0 && image(t) == "img:2"));
    assert_eq!(
        desires(&p.desire),
        vec![("t-n1", TaskState::Shutdown), ("t-n2", TaskState::Shutdown)]
    );
}

#[test]
fn a_failed_task_counts_against_the_ratio_of_wanted_tasks() {
    // The ratio's denominator is the service's task count, not the batch.
    let mut rig = Rig::replicated(10, Some(on_failure(cfg(2), FailureAction::Pause, 0.1)));
    let t0 = SystemTime::now();
    first_batch_with_failures(&mut rig, t0, 1, TaskState::Failed);
    let p = rig.step(t0 + SEC);
    assert!(p.service.is_none(), "1 of 10 is not above 0.1");
}

#[test]
fn a_job_update_moves_on_when_its_batch_completes() {
    let base = replicated_job("job", 2, 2);
    let tasks = (1..=2)
        .map(|s| slot_task(&format!("t{s}"), &base, s, TaskState::Running, "n1"))
        .collect();
    let s = updating(
        base,
        "img:2",
        Some(timed(cfg(1), Some(SEC), None)),
        State::Updating,
    );
    let mut rig = Rig::new(s, tasks);
    let t0 = SystemTime::now();
    let p = rig.step(t0);
    rig.apply(&p);
    // It ran to completion before the loop saw it run: a success.
    report(
        &rig.store,
        &p.create[0].id,
        TaskState::Complete,
        Health::None,
    );
    let p = rig.step(t0 + SEC);
    assert!(p.service.is_none(), "not a failure");
    assert_eq!(slots(&p.create), vec![2], "its lane moves on");
}

/// One full orchestrator pass (reconcile + update + reap) over `rig`.
fn pass_once(rig: &mut Rig, now: SystemTime) {
    let id = rig.id.clone();
    let updates = &mut rig.updates;
    commit(&rig.store, |tx| {
        let t = tx.tables();
        let mut wake = None;
        pass(tx, t, &id, updates, now, &mut wake)
    });
}

#[test]
fn a_pass_runs_reconcile_and_update_together() {
    // A stop-first batch and the reconciler agree: one new task per slot.
    let mut rig = Rig::replicated(3, Some(cfg(1)));
    pass_once(&mut rig, SystemTime::now());
    let live = rig.live();
    assert_eq!(slots(&live), vec![1, 2, 3]);
    let images: Vec<&str> = {
        let mut l: Vec<&Task> = live.iter().collect();
        l.sort_by_key(|t| t.slot);
        l.into_iter().map(image).collect()
    };
    assert_eq!(images, vec!["img:2", "img:1", "img:1"]);
    assert_eq!(
        get(&rig.store, "t1").unwrap().desired_state(),
        TaskState::Shutdown
    );
}

#[test]
fn a_slot_whose_old_task_failed_during_an_update_gets_one_replacement() {
    let base = restart(
        replicated("web", 2),
        shoal_proto::objects::restart_policy::Condition::Any,
        Some(Duration::ZERO),
        0,
        None,
    );
    let t0 = SystemTime::now();
    let tasks = vec![
        ended(
            slot_task("t1", &base, 1, TaskState::Running, "n1"),
            TaskState::Failed,
            1,
            t0 - SEC,
        ),
        slot_task("t2", &base, 2, TaskState::Running, "n1"),
    ];
    let mut s = updating(base.clone(), "img:2", Some(cfg(1)), State::Updating);
    task_spec(&mut s).restart = task_spec(&mut base.clone()).restart;
    let mut rig = Rig::new(s, tasks);
    pass_once(&mut rig, t0);
    assert_eq!(slots(&rig.live()), vec![1, 2], "one live task per slot");
}

#[test]
fn an_update_with_a_scale_down_only_replaces_wanted_slots() {
    let mut rig = Rig::replicated(4, Some(cfg(0)));
    rig.edit_service(|s| {
        s.spec.as_mut().unwrap().mode = Some(shoal_proto::objects::service_spec::Mode::Replicated(
            shoal_proto::objects::ReplicatedService { replicas: 2 },
        ))
    });
    pass_once(&mut rig, SystemTime::now());
    assert_eq!(slots(&rig.live()), vec![1, 2]);
}
