use std::time::SystemTime;

use shoal_proto::objects::{Node, Task, TaskState};

use super::kit::*;
use crate::scheduler::write::{ASSIGNED_MESSAGE, Versions, Written, write_plan};
use crate::store::Store;

/// Plans every pending task, then writes the plan on the store as it is
/// by then (after `meanwhile`), as one committed batch.
fn plan_and_write(store: &Store, meanwhile: impl FnOnce(&Store)) -> Written {
    let (plan, versions) = store.view(|t| {
        let plan = crate::scheduler::plan(t, &crate::scheduler::pending_tasks(t));
        let versions = Versions::of(t, &plan);
        (plan, versions)
    });
    meanwhile(store);
    let (batch, written) = store
        .build(|tx| write_plan(tx, &plan, &versions, SystemTime::now()))
        .expect("build");
    if !batch.actions.is_empty() {
        store
            .apply(store.applied_index() + 1, batch)
            .expect("apply");
    }
    written
}

fn get(store: &Store, id: &str) -> Task {
    store.view(|t| t.get::<Task>(id).cloned().expect("task"))
}

#[test]
fn assignment_sets_node_state_message_and_clears_the_error() {
    let mut t = task("t", "s");
    t.status.as_mut().unwrap().err = "no suitable node".into();
    let s = store(vec![node("n1")], vec![t]);
    let written = plan_and_write(&s, |_| {});
    assert_eq!(written.assigned, 1);
    let t = get(&s, "t");
    let status = t.status.as_ref().unwrap();
    assert_eq!(t.node_id, "n1");
    assert_eq!(status.state(), TaskState::Assigned);
    assert_eq!(status.message, ASSIGNED_MESSAGE);
    assert!(status.err.is_empty());
    assert!(status.timestamp.is_some());
}

#[test]
fn an_unchanged_explanation_is_not_written_again() {
    let s = store(vec![], vec![task("t", "s")]);
    assert_eq!(plan_and_write(&s, |_| {}).explained, 1);
    let v = version::<Task>(&s, "t");
    assert_eq!(get(&s, "t").status.unwrap().err, "no suitable node");
    assert_eq!(plan_and_write(&s, |_| {}), Written::default());
    assert_eq!(version::<Task>(&s, "t"), v, "no churn");

    // A node that cannot take it changes the explanation: written once more.
    commit(&s, |tx| {
        tx.create(state(
            node("n1"),
            shoal_proto::objects::node_status::State::Down,
        ))
    });
    assert_eq!(plan_and_write(&s, |_| {}).explained, 1);
    assert_eq!(
        get(&s, "t").status.unwrap().err,
        "no suitable node (1 node not available for new tasks)"
    );
}

#[test]
fn decisions_on_tasks_or_nodes_that_moved_are_dropped() {
    let s = store(
        vec![node("n1"), node("n2")],
        vec![task("a", "s"), task("b", "s")],
    );
    let written = plan_and_write(&s, |s| {
        // Task a is taken by someone else; n2 (where b was going) changes.
        let mut a = s.view(|t| t.get::<Task>("a").cloned().unwrap());
        a.set_desired_state(TaskState::Shutdown);
        let mut n2 = s.view(|t| t.get::<Node>("n2").cloned().unwrap());
        n2.spec
            .as_mut()
            .unwrap()
            .set_availability(shoal_proto::objects::node_spec::Availability::Drain);
        commit(s, |tx| {
            tx.update(a)?;
            tx.update(n2)
        });
    });
    assert_eq!(
        written,
        Written {
            assigned: 0,
            explained: 0,
            stale: 2
        }
    );
    assert_eq!(get(&s, "a").status.unwrap().state(), TaskState::Pending);
    assert_eq!(get(&s, "b").node_id, "");
}
