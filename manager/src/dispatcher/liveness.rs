//! Down detection. Sessions and heartbeats write in a [`Liveness`] book
//! when each node was last heard from and when its session connection
//! closed; the down detector, a leader-only component (started and
//! stopped by [`crate::leader::Supervisor`]), marks Down every Ready node
//! whose heartbeats stopped for [`GRACE_PERIODS`] periods, or whose
//! connection closed and did not come back within [`RECONNECT_GRACE`].
//!
//! A detector starts with every term this manager leads, and its start
//! gives every node a fresh grace period: a new leader never heard the
//! nodes, which were beating towards the old one (and a Ready node it
//! never heard from, like the founder committed before its first
//! session, gets one from when it first sees it). Its one timer is the
//! check for expired heartbeats; it never looks at leadership.
//!
//! Times are `tokio::time::Instant`, so tests drive it on paused time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use shoal_proto::objects::{Node, node_status};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::{CommitError, ManagerContext};

/// Missed periods before a node is Down.
pub const GRACE_PERIODS: u32 = 4;
/// A node whose session connection closed (its daemon died: the kernel
/// closes its sockets) and that has not come back within this is Down at
/// once, without waiting for the heartbeat grace. A network cut closes
/// nothing, so it still gets the whole grace.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(1);
/// How often the detector looks for expired nodes.
pub const CHECK: Duration = Duration::from_millis(500);

/// When each node was last heard from, and when its session closed.
/// Shared by the dispatcher's handlers and the detector; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    book: Arc<Mutex<Book>>,
}

#[derive(Debug, Default)]
struct Book {
    last_seen: HashMap<String, Instant>,
    /// Nodes whose session stream closed, and when.
    disconnected: HashMap<String, Instant>,
}

impl Liveness {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node was heard from now (a session opened, a heartbeat).
    pub fn touch(&self, node_id: &str) {
        self.book()
            .last_seen
            .insert(node_id.to_string(), Instant::now());
    }

    /// The node's session is open again.
    pub fn reconnected(&self, node_id: &str) {
        self.book().disconnected.remove(node_id);
    }

    /// The node's session stream closed now.
    pub fn closed(&self, node_id: &str) {
        self.book()
            .disconnected
            .insert(node_id.to_string(), Instant::now());
    }

    /// Every node in `ids` counts as heard from now; closed sessions are
    /// forgotten (they closed towards an earlier leader).
    fn fresh_grace(&self, ids: Vec<String>) {
        let now = Instant::now();
        let mut book = self.book();
        for id in ids {
            book.last_seen.insert(id, now);
        }
        book.disconnected.clear();
    }

    /// Which of `ready` are silent for longer than `limit`, or whose
    /// session closed more than [`RECONNECT_GRACE`] ago and who were not
    /// heard from since. A Ready node never heard from (the founder,
    /// committed Ready before its first session) counts from now.
    fn expired<'a>(&self, ready: impl Iterator<Item = &'a str>, limit: Duration) -> Vec<String> {
        let now = Instant::now();
        let mut book = self.book();
        let book = &mut *book;
        ready
            .filter(|&id| {
                let seen = *book.last_seen.entry(id.to_string()).or_insert(now);
                let left = book
                    .disconnected
                    .get(id)
                    .is_some_and(|&at| now - at > RECONNECT_GRACE && seen <= at);
                left || now - seen > limit
            })
            .map(str::to_string)
            .collect()
    }
}

/// Marks nodes Down whose heartbeats stopped, until `stop` (the end of
/// this manager's term).
pub async fn run(ctx: ManagerContext, liveness: Liveness, stop: CancellationToken) {
    liveness.fresh_grace(
        ctx.store
            .view(|t| t.all::<Node>().map(|n| n.id.clone()).collect()),
    );
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(CHECK) => {}
        }
        let limit = super::heartbeat_period(&ctx.store).saturating_mul(GRACE_PERIODS);
        let expired = ctx.store.view(|t| {
            let ready = t
                .all::<Node>()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .is_some_and(|s| s.state() == node_status::State::Ready)
                })
                .map(|n| n.id.as_str());
            liveness.expired(ready, limit)
        });
        if expired.is_empty() {
            continue;
        }
        match mark_down(&ctx, &expired).await {
            Ok(()) => {
                tracing::info!(nodes = ?expired, "nodes marked down after missing heartbeats")
            }
            Err(e) => tracing::debug!(error = %e, "marking nodes down failed; will retry"),
        }
    }
}

async fn mark_down(ctx: &ManagerContext, ids: &[String]) -> Result<(), CommitError> {
    ctx.update(|tx| {
        for id in ids {
            if let Some(mut node) = tx.tables().get::<Node>(id).cloned() {
                let status = node.status.get_or_insert_default();
                status.set_state(node_status::State::Down);
                status.message = "heartbeat failure".into();
                tx.update(node)?;
            }
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests;
