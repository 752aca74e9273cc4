//! The allocator: gives networks their subnet and VXLAN id, services
//! their VIPs and published ports, New tasks an address on each of their
//! networks (then hands them to the scheduler as Pending), and nodes their
//! routing-mesh address on the ingress network.
//!
//! ```text
//!  commits ──> wake ──> short batching window ──> pools from the store
//!                                                 ──> pass (pure) ──> one update
//! ```
//!
//! Layout: [`ipam`] is address arithmetic and pools, [`ports`] published
//! ports, [`pools`] rebuilds every pool from the tables, [`pass`] decides
//! what to write; this module is the leader-only loop.
//!
//! Like the scheduler, the loop keeps no state that matters between
//! passes: pools are rebuilt from the store each time, so an address is
//! free exactly when no live object in the store holds it (a task frees
//! its addresses by ending or being removed, a service by going). The one
//! thing carried over is where each network's hand-out stands, so freed
//! addresses are not reused at once while this manager leads.

pub mod ipam;
pub mod pass;
pub mod pools;
pub mod ports;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use shoal_proto::objects::Task;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use pass::wants_allocation;
pub use pools::{VXLAN_OPTION, is_allocated};

use crate::context::{CommitError, ManagerContext};
use crate::passes::{Passes, Timing, drive};
use crate::raft::node::Applied;
use crate::store::{Changed, Commit, EventAction};

/// Quiet time after a change before a pass (5 ms, at most 50 ms): a task
/// must reach Pending within tens of milliseconds, yet a `--replicas 100`
/// create is one pass.
const TIMING: Timing = Timing {
    quiet: Duration::from_millis(5),
    max_delay: Duration::from_millis(50),
    backoff: (Duration::from_millis(20), Duration::from_secs(2)),
};

/// Runs the allocator until `shutdown` (the end of this manager's
/// leadership).
pub async fn run(ctx: ManagerContext, shutdown: CancellationToken) {
    let ((), watch) = ctx.store.view_and_watch(|_| ());
    let me = Loop {
        ctx,
        own_writes: Vec::new(),
        waiting: false,
        cursors: HashMap::new(),
    };
    drive(me, watch, shutdown, TIMING, "allocation")
        .instrument(tracing::info_span!("allocator"))
        .await
}

struct Loop {
    ctx: ManagerContext,
    /// Where our last pass's writes landed: their echoes must not wake us.
    own_writes: Vec<Applied>,
    /// Some tasks could not be allocated: freed addresses are worth a pass.
    waiting: bool,
    cursors: HashMap<String, u32>,
}

impl Passes for Loop {
    /// Whether a commit may give the allocator work.
    fn wakes(&self, commit: &Commit) -> bool {
        if commit.reset {
            return true;
        }
        if self.own_writes.iter().any(|w| w.is(commit)) {
            return false;
        }
        commit.events.iter().any(|event| match &event.object {
            Changed::Network(_) | Changed::Service(_) | Changed::Cluster(_) => true,
            Changed::Node(node) => event.action != EventAction::Remove && node.ingress.is_none(),
            Changed::Task(task) => {
                wants_allocation(task)
                    || (self.waiting && (event.action == EventAction::Remove || ended(task)))
            }
            _ => false,
        })
    }

    /// One pass: pools from a view, a plan, one update.
    async fn pass(&mut self) -> Result<(), CommitError> {
        let _timer = crate::metrics::timer(&crate::metrics::METRICS.allocator_pass);
        let now = SystemTime::now();
        let cursors = &mut self.cursors;
        let (batch, waiting) = self.ctx.store.build(|tx| {
            let t = tx.tables();
            let mut pools = pools::Pools::from_tables(t, cursors);
            let out = pass::allocate(t, &mut pools, cursors, now);
            for (id, pool) in &pools.addresses {
                cursors.insert(id.clone(), pool.cursor());
            }
            let waiting = out.waiting;
            for n in out.networks {
                tx.update(n)?;
            }
            for s in out.services {
                tx.update(s)?;
            }
            for task in out.tasks {
                tx.update(task)?;
            }
            for node in out.nodes {
                tx.update(node)?;
            }
            Ok::<_, CommitError>(waiting)
        })?;
        self.waiting = waiting > 0;
        if batch.actions.is_empty() {
            return Ok(());
        }
        let changes = batch.actions.len();
        self.own_writes = self.ctx.commit_parts(batch).await?;
        let parts = self.own_writes.len();
        tracing::debug!(changes, parts, waiting, "allocation pass committed");
        Ok(())
    }
}

fn ended(task: &Task) -> bool {
    shoal_proto::task_state::observed(task).is_terminal()
}

#[cfg(test)]
mod tests;
