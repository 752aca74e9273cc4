//! The reaper, orphans, full passes and max_attempts over history.

use super::*;

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
                .filter(|t| crate::orchestrator::task::is_live(t))
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
                    crate::orchestrator::task::is_live(t)
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
