//! The one supervisor of leader-only components. While this manager
//! leads, they run: the orchestrator, the allocator, the scheduler and
//! root CA rotation ([`Supervisor::core`]), plus what the code that builds
//! the manager adds ([`Supervisor::with`]: the dispatcher's down
//! detector, which needs the dispatcher's heartbeat book). When it stops
//! leading they are cancelled, and they start afresh on whichever manager
//! leads next (they keep nothing that the store does not). Nothing polls
//! for leadership: the supervisor follows the Raft status watch, and a
//! term ends as [`crate::leadership::Term`] says.
//!
//! Before starting, the new leader waits until its store holds every
//! committed write (a ReadIndex barrier), so no component ever acts on a
//! state older than what the old leader saw.
//!
//! A component that exits on its own while leadership lasts is a bug: it
//! is logged and restarted after a pause, never silently dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::context::ManagerContext;
use crate::leadership::Term;

/// Pause before restarting a component that exited.
const RESTART_PAUSE: Duration = Duration::from_secs(1);
/// Pause before trying again when a new leader's barrier failed.
const BARRIER_RETRY: Duration = Duration::from_millis(100);

type Run = Pin<Box<dyn Future<Output = ()> + Send>>;
type Start = Arc<dyn Fn(ManagerContext, CancellationToken) -> Run + Send + Sync>;

/// The leader-only components, started when this manager leads and
/// cancelled when it stops. Each runs until the token it is given is
/// cancelled.
#[derive(Clone, Default)]
pub struct Supervisor {
    components: Vec<(&'static str, Start)>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("components", &self.names())
            .finish()
    }
}

impl Supervisor {
    /// A supervisor of nothing yet.
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    /// The components that need only the [`ManagerContext`]: the
    /// orchestrator, the allocator, the scheduler and CA rotation.
    pub fn core() -> Supervisor {
        Supervisor::new()
            .with("orchestrator", crate::orchestrator::run)
            .with("allocator", crate::allocator::run)
            .with("scheduler", crate::scheduler::run)
            .with("CA rotation", crate::ca::rotation::run)
    }

    /// Adds a component: `start` is called at the start of every term
    /// (and again if the component exits while the term lasts).
    pub fn with<F, Fut>(mut self, name: &'static str, start: F) -> Supervisor
    where
        F: Fn(ManagerContext, CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let start: Start = Arc::new(move |ctx, stop| Box::pin(start(ctx, stop)));
        self.components.push((name, start));
        self
    }

    /// The components' names, in start order.
    pub fn names(&self) -> Vec<&'static str> {
        self.components.iter().map(|(name, _)| *name).collect()
    }

    /// Runs until `shutdown`: follows leadership and runs the components
    /// for every term this manager leads.
    pub async fn run(self, ctx: ManagerContext, shutdown: CancellationToken) {
        let mut status = ctx.raft.watch_status();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                led = status.wait_for(|s| s.is_leader()) => if led.is_err() { return },
            }
            let mut term = Term::of(status.clone());
            let barrier = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = ctx.raft.read_barrier() => r,
            };
            if let Err(e) = barrier {
                tracing::debug!(error = %e, "leadership did not settle; waiting again");
                tokio::time::sleep(BARRIER_RETRY).await;
                continue;
            }
            if !term.holds() {
                continue;
            }
            tracing::info!(components = ?self.names(), "leading: starting leader-only components");
            let stop = shutdown.child_token();
            let mut set = JoinSet::new();
            for (name, start) in &self.components {
                set.spawn(supervise(name, start.clone(), ctx.clone(), stop.clone()));
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = term.lost() => {
                    tracing::info!("no longer leading: stopping leader-only components");
                }
            }
            stop.cancel();
            while set.join_next().await.is_some() {}
        }
    }
}

async fn supervise(name: &'static str, start: Start, ctx: ManagerContext, stop: CancellationToken) {
    loop {
        let outcome = tokio::spawn(start(ctx.clone(), stop.clone())).await;
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

#[cfg(test)]
mod tests;
