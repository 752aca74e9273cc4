//! The shape the scheduler and the allocator share: a leader-only loop
//! that wakes on store commits, lets a burst of them settle, makes one
//! pass over a fresh view and commits it, and after a failed pass backs
//! off and tries again. A pass keeps nothing that matters, so a lagging
//! watch, a snapshot restore or a lost race all recover the same way: by
//! passing again. The allocator, the scheduler and CA rotation use it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::context::CommitError;
use crate::store::Commit;

/// What a loop does; the driver does the waiting.
pub trait Passes: Send {
    /// Whether a commit may give the loop work.
    fn wakes(&self, commit: &Commit) -> bool;
    /// One pass: read, decide, commit.
    fn pass(&mut self) -> impl Future<Output = Result<(), CommitError>> + Send;
}

/// How a loop waits.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Quiet time after a change before a pass.
    pub quiet: Duration,
    /// The longest a steady stream of changes may hold a pass back.
    pub max_delay: Duration,
    /// First and longest wait after a failed pass.
    pub backoff: (Duration, Duration),
}

/// Drives `passes` until `shutdown`; `what` names it in logs.
pub async fn drive<P: Passes>(
    mut passes: P,
    mut watch: Receiver<Arc<Commit>>,
    shutdown: CancellationToken,
    timing: Timing,
    what: &'static str,
) {
    // A previous leader may have left work: a pass at once.
    let mut dirty = true;
    let mut backoff = timing.backoff.0;
    loop {
        if dirty {
            if !gather(&passes, &mut watch, &shutdown, timing).await {
                return;
            }
            // On failure `dirty` stays set: back off, then pass again.
            if let Err(e) = passes.pass().await {
                tracing::debug!(error = %e, ?backoff, "{what} pass failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(timing.backoff.1);
                continue;
            }
            backoff = timing.backoff.0;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            received = watch.recv() => match received {
                Ok(commit) => dirty = passes.wakes(&commit),
                // Behind: the next pass re-reads everything anyway.
                Err(RecvError::Lagged(_)) => dirty = true,
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// The batching window: waits until changes pause for `quiet`, or
/// `max_delay` has passed, consuming what arrives meanwhile. False when
/// the loop must stop.
async fn gather<P: Passes>(
    passes: &P,
    watch: &mut Receiver<Arc<Commit>>,
    shutdown: &CancellationToken,
    timing: Timing,
) -> bool {
    let start = Instant::now();
    let mut quiet_until = start + timing.quiet;
    loop {
        let deadline = quiet_until.min(start + timing.max_delay);
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = sleep_until(deadline) => return true,
            received = watch.recv() => match received {
                Ok(commit) if passes.wakes(&commit) => quiet_until = Instant::now() + timing.quiet,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return false,
            },
        }
    }
}
