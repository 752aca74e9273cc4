//! Leader-only components. While this manager leads, the orchestrator, the
//! allocator and the scheduler run; when it stops leading they are cancelled, and they
//! start afresh on whichever manager leads next (they keep nothing that
//! the store does not). Before starting, the new leader waits until its
//! store holds every committed write (a ReadIndex barrier), so no
//! component ever acts on a state older than what the old leader saw.
//!
//! A component that exits on its own while leadership lasts is a bug: it
//! is logged and restarted after a pause, never silently dropped.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::context::ManagerContext;

/// Pause before restarting a component that exited.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

type Component = fn(
    ManagerContext,
    CancellationToken,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn components() -> Vec<(&'static str, Component)> {
    vec![
        ("orchestrator", |ctx, stop| {
            Box::pin(crate::orchestrator::run(ctx, stop))
        }),
        ("allocator", |ctx, stop| {
            Box::pin(crate::allocator::run(ctx, stop))
        }),
        ("scheduler", |ctx, stop| {
            Box::pin(crate::scheduler::run(ctx, stop))
        }),
    ]
}

/// Runs until `shutdown`: follows leadership and runs the components.
pub async fn run(ctx: ManagerContext, shutdown: CancellationToken) {
    let mut status = ctx.raft.watch_status();
    loop {
        // Wait to lead.
        tokio::select! {
            _ = shutdown.cancelled() => return,
            led = status.wait_for(|s| s.is_leader()) => if led.is_err() { return },
        }
        let term = shutdown.child_token();
        let barrier = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = ctx.raft.read_barrier() => r,
        };
        if let Err(e) = barrier {
            tracing::debug!(error = %e, "leadership did not settle; waiting again");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        tracing::info!("leading: starting the orchestrator, the allocator and the scheduler");
        let mut set = JoinSet::new();
        for (name, start) in components() {
            set.spawn(supervise(name, start, ctx.clone(), term.clone()));
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = status.wait_for(|s| !s.is_leader()) => {
                tracing::info!("no longer leading: stopping leader-only components");
            }
        }
        term.cancel();
        while set.join_next().await.is_some() {}
    }
}

async fn supervise(
    name: &'static str,
    start: Component,
    ctx: ManagerContext,
    stop: CancellationToken,
) {
    loop {
        let run = tokio::spawn(start(ctx.clone(), stop.clone()));
        let outcome = run.await;
        if stop.is_cancelled() {
            return;
        }
        match outcome {
            Ok(()) => tracing::error!(component = name, "leader component exited; restarting it"),
            Err(e) => {
                tracing::error!(component = name, error = %e, "leader component panicked; restarting it")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RESTART_PAUSE) => {}
        }
    }
}
