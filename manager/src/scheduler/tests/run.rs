//! The loop against a real single-node Raft: writes go through the log,
//! the scheduler sees them as committed events, as on a leader.

use std::time::Duration;

use shoal_proto::objects::node_spec::Availability;
use shoal_proto::objects::{Node, Task, TaskState};

use super::kit::*;
use crate::context::ManagerContext;
use crate::testing::{Leader, eventually, leader};

fn task_of(ctx: &ManagerContext, id: &str) -> Task {
    ctx.store
        .view(|t| t.get::<Task>(id).cloned().expect("task"))
}

fn assigned(ctx: &ManagerContext, id: &str) -> bool {
    task_of(ctx, id).status.map(|s| s.state()) == Some(TaskState::Assigned)
}

#[tokio::test]
async fn the_loop_places_batches_explains_and_follows_node_changes() {
    let Leader { ctx, stop, _dir } = leader().await;
    let scheduler = tokio::spawn(crate::scheduler::run(ctx.clone(), stop.child_token()));

    // 9 replicas created in one commit come out 3/3/3.
    ctx.update(|tx| {
        for n in ["n1", "n2", "n3"] {
            tx.create(node(n))?;
        }
        for i in 0..9 {
            tx.create(task(&format!("web-{i}"), "web"))?;
        }
        Ok::<_, crate::context::CommitError>(())
    })
    .await
    .expect("create");
    eventually("9 replicas assigned", || {
        (0..9).all(|i| assigned(&ctx, &format!("web-{i}")))
    })
    .await;
    ctx.store.view(|t| {
        for n in ["n1", "n2", "n3"] {
            assert_eq!(t.tasks_of_node(n).count(), 3, "{n}");
        }
        // One pass, one commit: every assignment carries the same version.
        let versions: std::collections::BTreeSet<u64> = t
            .tasks_of_service("web")
            .map(crate::store::Stored::version)
            .collect();
        assert_eq!(versions.len(), 1, "{versions:?}");
    });

    // A task no node takes stays Pending and says why...
    ctx.update(|tx| {
        tx.create(constrained(
            task("late", "batch"),
            &["node.labels.zone==late"],
        ))?;
        Ok::<_, crate::context::CommitError>(())
    })
    .await
    .expect("create");
    eventually("explained", || {
        task_of(&ctx, "late").status.map(|s| s.err)
            == Some("no suitable node (scheduling constraints not satisfied on 3 nodes)".into())
    })
    .await;
    assert_eq!(
        task_of(&ctx, "late").status.map(|s| s.state()),
        Some(TaskState::Pending)
    );

    // ...until a node that fits joins.
    ctx.update(|tx| {
        tx.create(with_label(node("n4"), "zone", "late"))?;
        Ok::<_, crate::context::CommitError>(())
    })
    .await
    .expect("join");
    eventually("placed on the new node", || {
        task_of(&ctx, "late").node_id == "n4"
    })
    .await;

    // A global task on a drained node waits for the node to come back.
    let mut n1 = ctx
        .store
        .view(|t| t.get::<Node>("n1").cloned().expect("n1"));
    n1.spec
        .get_or_insert_default()
        .set_availability(Availability::Drain);
    ctx.update(|tx| {
        tx.update(n1)?;
        tx.create(on(task("g1", "global"), "n1"))?;
        Ok::<_, crate::context::CommitError>(())
    })
    .await
    .expect("drain");
    eventually("global explained", || {
        task_of(&ctx, "g1").status.map(|s| s.err)
            == Some("1 node not available for new tasks".into())
    })
    .await;
    let mut n1 = ctx
        .store
        .view(|t| t.get::<Node>("n1").cloned().expect("n1"));
    n1.spec
        .get_or_insert_default()
        .set_availability(Availability::Active);
    ctx.update(|tx| {
        tx.update(n1)?;
        Ok::<_, crate::context::CommitError>(())
    })
    .await
    .expect("activate");
    eventually("global placed", || assigned(&ctx, "g1")).await;

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), scheduler)
        .await
        .expect("scheduler stops when cancelled")
        .expect("no panic");
}
