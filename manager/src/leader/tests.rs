//! The supervisor on paused time, against a leader whose leadership the
//! test moves ([`crate::testing::instant_leader`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::{Instant, sleep, sleep_until};

use super::*;
use crate::testing::instant_leader;

/// Counts a component's starts and how many of it run.
#[derive(Clone, Default)]
struct Probe {
    starts: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
}

impl Probe {
    /// A component that runs until stopped (`exits`: returns at once).
    fn component(
        &self,
        exits: bool,
    ) -> impl Fn(ManagerContext, CancellationToken) -> Run + Send + Sync + 'static {
        let probe = self.clone();
        move |_, stop| {
            let probe = probe.clone();
            Box::pin(async move {
                probe.starts.fetch_add(1, Ordering::SeqCst);
                if exits {
                    return;
                }
                probe.running.fetch_add(1, Ordering::SeqCst);
                stop.cancelled().await;
                probe.running.fetch_sub(1, Ordering::SeqCst);
            })
        }
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.starts.load(Ordering::SeqCst),
            self.running.load(Ordering::SeqCst),
        )
    }
}

async fn settle() {
    sleep(Duration::from_millis(10)).await;
}

#[tokio::test(start_paused = true)]
async fn components_run_while_leading_and_stop_with_the_term() {
    let m = instant_leader();
    let probe = Probe::default();
    let shutdown = CancellationToken::new();
    let supervisor = Supervisor::new().with("probe", probe.component(false));
    let run = tokio::spawn(supervisor.run(m.ctx.clone(), shutdown.clone()));
    settle().await;
    assert_eq!(probe.counts(), (1, 1), "started on leadership");

    m.step_down();
    settle().await;
    assert_eq!(probe.counts(), (1, 0), "stopped with leadership");

    m.lead_again();
    settle().await;
    assert_eq!(probe.counts(), (2, 1), "started again in the next term");

    // Lost and won back between two looks: the term number alone tells.
    m.lead_again();
    settle().await;
    assert_eq!(probe.counts(), (3, 1), "a later term starts afresh");

    shutdown.cancel();
    run.await.expect("the supervisor ends");
    assert_eq!(probe.counts(), (3, 0), "stopped with the manager");
}

#[tokio::test(start_paused = true)]
async fn a_component_that_exits_is_restarted_after_a_pause() {
    let m = instant_leader();
    let probe = Probe::default();
    let steady = Probe::default();
    let shutdown = CancellationToken::new();
    let supervisor = Supervisor::new()
        .with("exits", probe.component(true))
        .with("steady", steady.component(false));
    let started = Instant::now();
    tokio::spawn(supervisor.run(m.ctx.clone(), shutdown.clone()));
    settle().await;
    assert_eq!(probe.counts().0, 1);
    sleep_until(started + RESTART_PAUSE - Duration::from_millis(1)).await;
    assert_eq!(probe.counts().0, 1, "restarted before its pause");
    sleep_until(started + RESTART_PAUSE + Duration::from_millis(20)).await;
    assert_eq!(probe.counts().0, 2, "restarted after its pause");
    assert_eq!(steady.counts(), (1, 1), "the others keep running");
    shutdown.cancel();
}

#[test]
fn the_core_components_are_the_context_only_ones() {
    assert_eq!(
        Supervisor::core().names(),
        ["orchestrator", "allocator", "scheduler", "CA rotation"]
    );
}
