//! The cluster store: every object the managers keep, in memory, indexed,
//! with a watch stream of committed changes.
//!
//! The store knows nothing of Raft or the network, so it is tested alone.
//! Writes happen in two steps: [`Store::build`] runs a closure against a
//! consistent view and turns its calls into a [`StoreBatch`] (checked
//! early, so most mistakes never reach the log); whoever owns the log
//! commits the batch and calls [`Store::apply`] with its log index on
//! every manager. Apply checks the batch again against the tables as they
//! are then (another batch may have won the race) and writes all of it or
//! none. An object's `meta.version` is the log index that last wrote it:
//! that is what optimistic concurrency compares.

mod names;
mod object;
mod tables;
mod tx;

use std::sync::{Arc, RwLock};

use shoal_proto::store::{StoreBatch, StoreSnapshot};
use tokio::sync::broadcast;

pub use object::{Changed, Kind, Object, Stored, id_of, kind_of};
pub use tables::{Frozen, Tables};
pub use tx::Tx;

/// How many commits a slow watcher may fall behind before it must resync.
const WATCH_BUFFER: usize = 4096;

/// The most tasks a loop writes in one batch. A batch is one Raft entry,
/// written, sent, decoded and applied whole on every manager, and the
/// Raft loop does nothing else meanwhile (no tick, no heartbeat): 100,000
/// tasks in one batch made entries of 8–24 MB that stalled it for seconds
/// and cost the leader its lease. A task weighs 80–250 bytes in the log
/// (more with a large spec), so this keeps an entry near half a megabyte,
/// under the 1 MiB raft-rs sends per message. The loops write the rest in
/// further batches (swarmkit cuts its batches at 200 changes).
pub const MAX_TASK_WRITES: usize = 2_000;

/// `batch` cut into batches of at most `max` actions, in order. Each part
/// is applied on its own (all or nothing), not the whole: only for writers
/// whose actions stand alone, like a pass that creates many tasks.
pub fn parts(batch: StoreBatch, max: usize) -> Vec<StoreBatch> {
    let mut parts = Vec::new();
    let mut actions = batch.actions.into_iter().peekable();
    while actions.peek().is_some() {
        parts.push(StoreBatch {
            actions: actions.by_ref().take(max.max(1)).collect(),
        });
    }
    parts
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventAction {
    /// It was created.
    Create,
    /// It was updated.
    Update,
    /// It was removed.
    Remove,
}

/// One object's change in a commit (the object as it is after the change,
/// or as it was for a removal).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub action: EventAction,
    /// The object.
    pub object: Changed,
}

/// One applied batch, as watchers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The log index of the batch.
    pub index: u64,
    /// Its place among the batches that log entry carries (proposals
    /// that reach the leader together share an entry).
    pub part: u32,
    /// The changes, in batch order.
    pub events: Vec<Event>,
    /// The whole store was replaced (snapshot restore): re-read everything.
    pub reset: bool,
}

/// Why a store operation failed. All are the caller's to handle; none
/// leaves the store changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No object matches.
    #[error("{kind} {what} not found")]
    NotFound {
        /// Kind looked for.
        kind: Kind,
        /// What was asked for (id, name or prefix).
        what: String,
    },
    /// An id prefix matches several objects.
    #[error("{kind} {what} is ambiguous: several ids start with it; use more of the id")]
    Ambiguous {
        /// Kind looked for.
        kind: Kind,
        /// The prefix.
        what: String,
    },
    /// A create names an id that exists.
    #[error("{kind} {id} already exists")]
    Exists {
        /// Kind.
        kind: Kind,
        /// The id.
        id: String,
    },
    /// The name is taken by another object of the kind.
    #[error(
        "{kind} name {name:?} is already in use; pick another name or remove the existing {kind}"
    )]
    NameConflict {
        /// Kind.
        kind: Kind,
        /// The name.
        name: String,
    },
    /// The update was based on an old version of the object.
    #[error(
        "update out of sequence: {kind} {id} is at version {expected}, the update was based on version {got}; read it again and retry"
    )]
    VersionConflict {
        /// Kind.
        kind: Kind,
        /// The object.
        id: String,
        /// The version in the store.
        expected: u64,
        /// The version the update carried.
        got: u64,
    },
    /// One batch touched an object twice.
    #[error("{kind} {id} appears twice in one transaction")]
    Duplicate {
        /// Kind.
        kind: Kind,
        /// The object.
        id: String,
    },
    /// An action with no object.
    #[error("store action without an object")]
    EmptyAction,
    /// An object without an id.
    #[error("{kind} without an id")]
    EmptyId {
        /// Kind.
        kind: Kind,
    },
}

/// The store. Cheap to share: clone the `Arc` it lives in.
#[derive(Debug)]
pub struct Store {
    inner: RwLock<Inner>,
    events: broadcast::Sender<Arc<Commit>>,
}

#[derive(Debug, Default)]
struct Inner {
    tables: Tables,
    applied_index: u64,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store {
            inner: RwLock::default(),
            events: broadcast::channel(WATCH_BUFFER).0,
        }
    }

    /// Runs `f` on a consistent view of the tables: a copy, taken under
    /// the lock in O(1) (the tables and their indexes are persistent
    /// maps), so `f` holds no lock however long it takes. A view held
    /// the lock once, and a leader's loops walking 100,000 tasks kept the
    /// Raft loop waiting to apply for most of a second at a time.
    pub fn view<R>(&self, f: impl FnOnce(&Tables) -> R) -> R {
        f(&self.tables())
    }

    /// [`Store::view`], with the applied index the view reflects.
    pub fn view_at<R>(&self, f: impl FnOnce(&Tables) -> R) -> (u64, R) {
        let (index, tables) = {
            let inner = self.read();
            (inner.applied_index, inner.tables.clone())
        };
        (index, f(&tables))
    }

    /// Runs `f` on a view and subscribes to the commits after it, with no
    /// gap and no overlap between the two.
    pub fn view_and_watch<R>(
        &self,
        f: impl FnOnce(&Tables) -> R,
    ) -> (R, broadcast::Receiver<Arc<Commit>>) {
        let (tables, rx) = {
            let inner = self.read();
            (inner.tables.clone(), self.events.subscribe())
        };
        (f(&tables), rx)
    }

    /// A copy of the tables as applied (see [`Store::view`]).
    fn tables(&self) -> Tables {
        self.read().tables.clone()
    }

    /// Subscribes to commits from now on.
    pub fn watch(&self) -> broadcast::Receiver<Arc<Commit>> {
        self.events.subscribe()
    }

    /// The log index of the last applied batch.
    pub fn applied_index(&self) -> u64 {
        self.read().applied_index
    }

    /// Builds a batch: `f` reads through the [`Tx`] and records writes.
    /// Nothing changes until the batch is committed and applied.
    pub fn build<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, E>,
    ) -> Result<(StoreBatch, R), E> {
        let tables = self.tables();
        let mut tx = Tx::new(&tables);
        let result = f(&mut tx)?;
        Ok((tx.finish()?, result))
    }

    /// Applies a committed batch at log `index` and tells the watchers.
    /// A batch that no longer fits the tables is refused whole (the same
    /// verdict on every manager); the index still counts as applied.
    pub fn apply(&self, index: u64, batch: StoreBatch) -> Result<(), StoreError> {
        self.apply_part(index, 0, batch)
    }

    /// [`Store::apply`] of batch `part` of the entry at `index`.
    pub fn apply_part(&self, index: u64, part: u32, batch: StoreBatch) -> Result<(), StoreError> {
        let mut inner = self.write();
        inner.applied_index = inner.applied_index.max(index);
        let events = inner.tables.apply(index, batch)?;
        if !events.is_empty() {
            let _ = self.events.send(Arc::new(Commit {
                index,
                part,
                events,
                reset: false,
            }));
        }
        Ok(())
    }

    /// Marks `index` applied when its entry carried no batch (Raft's own
    /// entries: empty leader entries, membership changes).
    pub fn skip(&self, index: u64) {
        let mut inner = self.write();
        inner.applied_index = inner.applied_index.max(index);
    }

    /// The whole store and the index it reflects.
    pub fn snapshot(&self) -> (u64, StoreSnapshot) {
        let inner = self.read();
        (inner.applied_index, inner.tables.snapshot())
    }

    /// The objects as they are now and the index they reflect, for a
    /// snapshot made elsewhere (O(1): later writes do not change it).
    pub fn frozen(&self) -> (u64, Frozen) {
        let inner = self.read();
        (inner.applied_index, inner.tables.frozen())
    }

    /// The index applied and [`Frozen::digest`] of the objects then.
    pub fn digest(&self) -> (u64, [u8; 32]) {
        let (index, frozen) = self.frozen();
        (index, frozen.digest())
    }

    /// Replaces the whole store with a snapshot taken at `index`.
    pub fn restore(&self, index: u64, snapshot: StoreSnapshot) {
        let tables = Tables::from_snapshot(snapshot);
        let mut inner = self.write();
        inner.tables = tables;
        inner.applied_index = index;
        let _ = self.events.send(Arc::new(Commit {
            index,
            part: 0,
            events: Vec::new(),
            reset: true,
        }));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent tables (apply
        // checks before writing), so a poisoned lock is still usable.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;
