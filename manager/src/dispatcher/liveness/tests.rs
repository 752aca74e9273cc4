//! The down detector on paused time, against a leader whose writes apply
//! at once ([`crate::testing::instant_leader`]).

use std::time::Duration;

use shoal_proto::objects::{Node, NodeStatus, node_status};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::context::CommitError;
use crate::dispatcher::DEFAULT_HEARTBEAT;
use crate::testing::{InstantLeader, instant_leader};

fn ready(id: &str) -> Node {
    Node {
        id: id.into(),
        status: Some(NodeStatus {
            state: node_status::State::Ready as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn state(m: &InstantLeader, id: &str) -> (node_status::State, String) {
    m.ctx.store.view(|t| {
        let status = t.get::<Node>(id).and_then(|n| n.status.clone());
        let status = status.expect("the node has a status");
        (status.state(), status.message)
    })
}

/// A Ready node `id`, and the detector started on it.
async fn start(id: &str) -> (InstantLeader, Liveness, CancellationToken) {
    let m = instant_leader();
    m.ctx
        .update(|tx| Ok::<_, CommitError>(tx.create(ready(id))?))
        .await
        .expect("the node is stored");
    let liveness = Liveness::default();
    let stop = CancellationToken::new();
    tokio::spawn(run(m.ctx.clone(), liveness.clone(), stop.clone()));
    (m, liveness, stop)
}

#[tokio::test(start_paused = true)]
async fn a_node_whose_heartbeats_stop_is_down_after_the_grace_and_not_before() {
    let (m, liveness, stop) = start("n1").await;
    let grace = DEFAULT_HEARTBEAT * GRACE_PERIODS;
    // Beats between the detector's checks, for longer than the grace.
    sleep(CHECK / 2).await;
    for _ in 0..10 {
        liveness.touch("n1");
        sleep(DEFAULT_HEARTBEAT / 2).await;
    }
    assert_eq!(state(&m, "n1").0, node_status::State::Ready);
    liveness.touch("n1");
    let last_beat = Instant::now();

    sleep_until(last_beat + grace - Duration::from_millis(1)).await;
    assert_eq!(
        state(&m, "n1").0,
        node_status::State::Ready,
        "down before its grace ran out"
    );
    // The first check after the grace marks it.
    sleep_until(last_beat + grace + CHECK).await;
    assert_eq!(
        state(&m, "n1"),
        (node_status::State::Down, "heartbeat failure".into())
    );
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_new_term_gives_every_node_a_fresh_grace() {
    // Never heard from, as after a leader change: the grace counts from
    // the detector's start.
    let (m, _liveness, stop) = start("n1").await;
    let started = Instant::now();
    let grace = DEFAULT_HEARTBEAT * GRACE_PERIODS;
    sleep_until(started + grace - Duration::from_millis(1)).await;
    assert_eq!(state(&m, "n1").0, node_status::State::Ready);
    // Its checks fall on the grace's end: the next one marks it.
    sleep_until(started + grace + CHECK + Duration::from_millis(1)).await;
    assert_eq!(state(&m, "n1").0, node_status::State::Down);
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_closed_session_is_down_after_the_reconnect_grace() {
    let (m, liveness, stop) = start("n1").await;
    sleep(CHECK / 2).await;
    liveness.touch("n1");
    liveness.closed("n1");
    let closed = Instant::now();
    sleep_until(closed + RECONNECT_GRACE - Duration::from_millis(1)).await;
    assert_eq!(state(&m, "n1").0, node_status::State::Ready);
    sleep_until(closed + RECONNECT_GRACE + CHECK).await;
    assert_eq!(state(&m, "n1").0, node_status::State::Down);
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_session_back_within_the_reconnect_grace_keeps_its_node() {
    let (m, liveness, stop) = start("n1").await;
    sleep(CHECK / 2).await;
    liveness.touch("n1");
    liveness.closed("n1");
    sleep(RECONNECT_GRACE / 2).await;
    liveness.touch("n1");
    liveness.reconnected("n1");
    sleep(RECONNECT_GRACE + CHECK).await;
    assert_eq!(state(&m, "n1").0, node_status::State::Ready);
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_node_stored_ready_before_its_first_session_gets_a_whole_grace() {
    // The founder: committed Ready just after the detector started.
    let (m, _liveness, stop) = start("n1").await;
    sleep(DEFAULT_HEARTBEAT * 3 + CHECK / 2).await;
    m.ctx
        .update(|tx| Ok::<_, CommitError>(tx.create(ready("n2"))?))
        .await
        .expect("the node is stored");
    let stored = Instant::now();
    let grace = DEFAULT_HEARTBEAT * GRACE_PERIODS;
    sleep_until(stored + grace - Duration::from_millis(1)).await;
    assert_eq!(state(&m, "n2").0, node_status::State::Ready);
    // Its grace counts from the first check that saw it.
    sleep_until(stored + grace + CHECK + CHECK).await;
    assert_eq!(state(&m, "n2").0, node_status::State::Down);
    stop.cancel();
}
