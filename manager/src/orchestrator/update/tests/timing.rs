//! Batches over time: delay between a lane's batches, the monitor alongside
//! and at the end, stop-first and start-first.

use super::*;

/// Runs the update to its end with workers that start each new task at
/// once and stop each old one when told, stepping at every wake-up.
/// Returns (when, slots) of each batch and when the update (or rollback)
/// completed.
pub(super) fn drive(rig: &mut Rig, start: SystemTime) -> (Vec<(Duration, Vec<u64>)>, Duration) {
    let mut now = start;
    let mut batches = Vec::new();
    for _ in 0..100 {
        let p = rig.step(now);
        rig.apply(&p);
        if let Some(s) = &p.service {
            assert!(
                matches!(state_of(s), State::Completed | State::RollbackCompleted),
                "{s:?}"
            );
            return (batches, now.duration_since(start).unwrap());
        }
        if !p.create.is_empty() {
            batches.push((now.duration_since(start).unwrap(), slots(&p.create)));
            for t in &p.create {
                report(&rig.store, &t.id, TaskState::Running, Health::None);
            }
        }
        for (id, to) in &p.desire {
            assert_eq!(*to, TaskState::Shutdown);
            report(&rig.store, id, TaskState::Shutdown, Health::None);
        }
        if let Some(at) = p.wake_at {
            assert!(p.create.is_empty(), "a batch is created or waited for");
            // Not a moment before.
            let early = rig.step(at - Duration::from_nanos(1));
            assert!(early.create.is_empty() && early.service.is_none());
            assert_eq!(early.wake_at, Some(at));
            now = at;
        } else if p.create.is_empty() && p.desire.is_empty() {
            panic!("stuck at {:?}", now.duration_since(start));
        }
    }
    panic!("the update never completed");
}

#[test]
fn a_stop_first_update_moves_on_as_each_batch_runs_and_monitors_the_end() {
    let update = timed(cfg(2), Some(3 * SEC), None);
    let mut rig = Rig::replicated(5, Some(update));
    let (batches, done) = drive(&mut rig, SystemTime::now());
    assert_eq!(
        batches,
        vec![
            (Duration::ZERO, vec![1, 2]),
            (Duration::ZERO, vec![3, 4]),
            (Duration::ZERO, vec![5]),
        ]
    );
    assert_eq!(done, 3 * SEC, "the end is monitored");
    let live = rig.live();
    assert_eq!(slots(&live), vec![1, 2, 3, 4, 5]);
    assert!(live.iter().all(|t| image(t) == "img:2"));
}

#[test]
fn the_wait_between_batches_is_the_delay_and_the_monitor_runs_alongside() {
    // (monitor, delay, second batch at, done at): a lane waits `delay`
    // after its task runs; the whole run is monitored once more at the end.
    let cases = [
        (None, None, Duration::ZERO, 5 * SEC),
        (
            Some(Duration::ZERO),
            Some(Duration::ZERO),
            Duration::ZERO,
            5 * SEC,
        ),
        (Some(2 * SEC), None, Duration::ZERO, 2 * SEC),
        (Some(2 * SEC), Some(10 * SEC), 10 * SEC, 22 * SEC),
        (Some(10 * SEC), Some(SEC), SEC, 12 * SEC),
        (None, Some(7 * SEC), 7 * SEC, 19 * SEC),
    ];
    for (monitor, delay, second, end) in cases {
        let mut rig = Rig::replicated(2, Some(timed(cfg(1), monitor, delay)));
        let (batches, done) = drive(&mut rig, SystemTime::now());
        let case = format!("monitor {monitor:?}, delay {delay:?}");
        assert_eq!(
            batches,
            vec![(Duration::ZERO, vec![1]), (second, vec![2])],
            "{case}"
        );
        assert_eq!(done, end, "{case}");
    }
}

#[test]
fn each_lane_moves_on_when_its_own_task_runs() {
    let mut rig = Rig::replicated(3, Some(timed(cfg(2), Some(4 * SEC), None)));
    let t0 = SystemTime::now();
    let p = rig.step(t0);
    rig.apply(&p);
    let [a, b] = &ids(&p.create)[..] else {
        panic!("{p:?}")
    };
    // One runs; the other is still starting: its lane takes slot 3.
    report(&rig.store, a, TaskState::Running, Health::None);
    report(&rig.store, b, TaskState::Starting, Health::None);
    let p = rig.step(t0 + 10 * SEC);
    assert_eq!(slots(&p.create), vec![3], "{p:?}");
    rig.apply(&p);
    report(
        &rig.store,
        &p.create[0].id,
        TaskState::Running,
        Health::None,
    );
    // b still starting: nothing to do, nothing to wait for but b.
    let p = rig.step(t0 + 11 * SEC);
    assert!(
        p.create.is_empty() && p.wake_at.is_none() && p.service.is_none(),
        "{p:?}"
    );
    // Everything runs from t0 + 20 s: monitored until t0 + 24 s.
    report(&rig.store, b, TaskState::Running, Health::None);
    let p = rig.step(t0 + 20 * SEC);
    assert_eq!(p.wake_at, Some(t0 + 24 * SEC));
    assert!(rig.step(t0 + 23 * SEC).service.is_none());
    let p = rig.step(t0 + 24 * SEC);
    assert_eq!(state_of(p.service.as_ref().unwrap()), State::Completed);
}

#[test]
fn start_first_stops_the_old_task_once_the_new_one_is_healthy() {
    let update = timed(ordered(cfg(2), Order::StartFirst), Some(SEC), None);
    let mut rig = Rig::replicated(2, Some(update));
    let t0 = SystemTime::now();
    let p = rig.step(t0);
    assert_eq!(slots(&p.create), vec![1, 2]);
    assert!(
        p.desire.is_empty(),
        "the old tasks keep running: {:?}",
        p.desire
    );
    rig.apply(&p);
    let new = ids(&p.create);
    let old: Vec<String> = p.create.iter().map(|t| format!("t{}", t.slot)).collect();

    // Health-gated: running but not (yet) healthy holds the batch.
    for health in [Health::Starting, Health::Unhealthy] {
        for id in &new {
            report(&rig.store, id, TaskState::Running, health);
        }
        let p = rig.step(t0 + SEC);
        assert!(
            p.create.is_empty() && p.desire.is_empty() && p.wake_at.is_none(),
            "{health:?}: {p:?}"
        );
    }
    // One healthy: its old task goes, the other waits.
    report(&rig.store, &new[0], TaskState::Running, Health::Healthy);
    let p = rig.step(t0 + 2 * SEC);
    assert!(p.create.is_empty());
    assert_eq!(
        desires(&p.desire),
        vec![(old[0].as_str(), TaskState::Shutdown)]
    );
    assert_eq!(p.wake_at, None, "still pending");
    rig.apply(&p);
    // Both healthy (or without a health check): the other old task goes
    // and monitoring starts.
    report(&rig.store, &new[1], TaskState::Running, Health::None);
    let p = rig.step(t0 + 3 * SEC);
    assert_eq!(
        desires(&p.desire),
        vec![(old[1].as_str(), TaskState::Shutdown)]
    );
    assert_eq!(p.wake_at, Some(t0 + 4 * SEC));
    rig.apply(&p);
    let p = rig.step(t0 + 4 * SEC);
    assert_eq!(state_of(p.service.as_ref().unwrap()), State::Completed);
}

#[test]
fn a_start_first_update_runs_batch_by_batch() {
    let update = timed(ordered(cfg(1), Order::StartFirst), Some(SEC), None);
    let mut rig = Rig::replicated(3, Some(update));
    let (batches, done) = drive(&mut rig, SystemTime::now());
    assert_eq!(
        batches,
        vec![
            (Duration::ZERO, vec![1]),
            (Duration::ZERO, vec![2]),
            (Duration::ZERO, vec![3]),
        ]
    );
    assert_eq!(done, SEC, "the end is monitored");
    assert_eq!(slots(&rig.live()), vec![1, 2, 3]);
}

/// A monitor and delay the API refuses, stored by an older version: the
/// update waits (as long as a duration may be), it does not panic.
#[test]
fn stored_extreme_timings_wait_instead_of_panicking() {
    let mut update = cfg(1);
    update.monitor = Some(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 999_999_999,
    });
    update.delay = Some(prost_types::Duration {
        seconds: i64::MIN,
        nanos: 0,
    });
    let mut rig = Rig::replicated(2, Some(update));
    let t0 = SystemTime::now();
    let p = rig.step(t0);
    assert_eq!(slots(&p.create), vec![1]);
    rig.apply(&p);
    report(
        &rig.store,
        &p.create[0].id,
        TaskState::Running,
        Health::None,
    );
    let p = rig.step(t0 + SEC);
    assert_eq!(slots(&p.create), vec![2], "no delay");
    rig.apply(&p);
    report(
        &rig.store,
        &p.create[0].id,
        TaskState::Running,
        Health::None,
    );
    let p = rig.step(t0 + 2 * SEC);
    assert!(p.create.is_empty() && p.service.is_none());
    assert_eq!(
        p.wake_at,
        Some(t0 + 2 * SEC + shoal_proto::limits::MAX_DURATION),
        "the end is monitored for as long as a duration may be"
    );
}
