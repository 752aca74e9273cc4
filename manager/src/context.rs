//! What every manager service shares: the store, the Raft handle, the
//! cluster CA's view, and channels to the leader for forwarding. Writes go
//! through [`ManagerContext::update`]: build a batch on a consistent view,
//! propose it, and wait until it is applied here.
//!
//! Errors here are typed ([`CommitError`], [`NoLeader`]); they become
//! gRPC statuses only at the edge, in [`crate::grpc_status`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shoal_proto::net::ClientTls;
use shoal_proto::store::StoreBatch;
use shoal_proto::tls::DenyList;
use tonic::transport::Channel;

use crate::raft::node::{Applied, ProposeError, RaftHandle};
use crate::store::{Store, StoreError, Tables, Tx};

/// The shared parts of a running manager.
#[derive(Clone)]
pub struct ManagerContext {
    /// The replicated store.
    pub store: Arc<Store>,
    /// The local Raft node.
    pub raft: RaftHandle,
    /// This node's id.
    pub node_id: String,
    /// Nodes whose certificates must be refused.
    pub deny: DenyList,
    /// Log subscriptions (used while this manager leads).
    pub logs: crate::logbroker::LogBroker,
    /// This manager's cluster events (`Watch`), fed by
    /// [`crate::events::follow`].
    pub events: crate::events::EventLog,
    tls: ClientTls,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl std::fmt::Debug for ManagerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerContext")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl ManagerContext {
    /// A context for a manager.
    pub fn new(
        store: Arc<Store>,
        raft: RaftHandle,
        node_id: String,
        deny: DenyList,
        tls: ClientTls,
    ) -> Self {
        ManagerContext {
            store,
            raft,
            node_id,
            deny,
            logs: crate::logbroker::LogBroker::default(),
            events: crate::events::EventLog::default(),
            tls,
            channels: Arc::default(),
        }
    }

    /// A channel to the leader, or `None` if this manager leads.
    pub fn leader_channel(&self) -> Result<Option<Channel>, NoLeader> {
        let status = self.raft.status();
        if status.is_leader() {
            return Ok(None);
        }
        let addr = status
            .members
            .get(&status.leader)
            .map(|m| m.addr.clone())
            .ok_or(NoLeader {
                known: status.members.len(),
            })?;
        Ok(Some(self.channel(&addr)))
    }

    /// A (cached) mutual-TLS channel to another manager.
    pub fn channel(&self, addr: &str) -> Channel {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry(addr.to_string())
            .or_insert_with(|| shoal_proto::net::channel(addr, self.tls.clone()))
            .clone()
    }

    /// The client TLS config for talking to other managers.
    pub fn client_tls(&self) -> ClientTls {
        self.tls.clone()
    }

    /// A linearizable read: waits for the leader's commit index, then reads.
    pub async fn read<R>(&self, f: impl FnOnce(&Tables) -> R) -> Result<R, CommitError> {
        quorum_deadline(self.raft.read_barrier()).await?;
        Ok(self.store.view(f))
    }

    /// Builds a batch with `f`, commits it through Raft and waits until it
    /// is applied here. Returns what `f` returned. `E` is the caller's
    /// error: `Status` in a gRPC handler (see [`crate::grpc_status`]),
    /// [`CommitError`] in a loop of the manager's own. When nothing in `f`
    /// names it, say it: `Ok::<_, Status>(())`.
    pub async fn update<R, E>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<R, E>) -> Result<R, E>
    where
        E: From<CommitError> + From<StoreError>,
    {
        let (batch, result) = self.store.build(f)?;
        self.commit(batch).await?;
        Ok(result)
    }

    /// Like [`Self::update`], but builds the batch again when another
    /// write to the same objects committed between the read and the
    /// commit ("update out of sequence"), up to a few times.
    pub async fn update_retrying<R, E>(
        &self,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E>
    where
        E: From<CommitError> + From<StoreError> + Conflict,
    {
        const ATTEMPTS: usize = 5;
        let mut attempt = 1;
        loop {
            match self.update(&mut f).await {
                Err(e) if e.is_conflict() && attempt < ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    /// Commits a prepared batch.
    pub async fn commit(&self, batch: StoreBatch) -> Result<u64, CommitError> {
        if batch.actions.is_empty() {
            return Ok(self.store.applied_index());
        }
        quorum_deadline(self.raft.propose(batch)).await
    }

    /// Commits a batch in parts of at most [`crate::store::MAX_TASK_WRITES`]
    /// actions, one after the other (see [`crate::store::parts`]): no Raft
    /// entry outgrows what a manager applies between two ticks. A part
    /// that fails stops the rest; those before it stay committed. Tells
    /// where each part landed, for a loop that must recognise its own
    /// writes among the commits it watches.
    pub async fn commit_parts(&self, batch: StoreBatch) -> Result<Vec<Applied>, CommitError> {
        let mut landed = Vec::new();
        for part in crate::store::parts(batch, crate::store::MAX_TASK_WRITES) {
            landed.push(self.commit_marked(part).await?);
        }
        Ok(landed)
    }

    /// Commits a non-empty batch and tells where it landed, for a loop
    /// that must recognise its own write among the commits it watches.
    pub async fn commit_marked(&self, batch: StoreBatch) -> Result<Applied, CommitError> {
        quorum_deadline(self.raft.propose_marked(batch)).await
    }
}

/// How long a read or write may wait for a quorum of managers.
pub const QUORUM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a write (or a linearizable read) did not go through. The messages
/// are what users see: [`crate::grpc_status`] only picks the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The store refused the batch, when it was built or applied.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Raft refused or lost the proposal (or the read).
    #[error(transparent)]
    Propose(ProposeError),
    /// No quorum answered in time; the change may still be applied.
    #[error(
        "no quorum of managers answered within {waited:?}: too many managers may be down or cut off; the change may not have been applied"
    )]
    Quorum {
        /// How long it waited.
        waited: std::time::Duration,
    },
}

impl From<ProposeError> for CommitError {
    fn from(e: ProposeError) -> CommitError {
        match e {
            // One place for a store verdict, whichever side gave it.
            ProposeError::Store(e) => CommitError::Store(e),
            e => CommitError::Propose(e),
        }
    }
}

/// Errors that can say "another write got there first": what
/// [`ManagerContext::update_retrying`] retries on.
pub trait Conflict {
    /// Whether the write lost a race and may simply be built again.
    fn is_conflict(&self) -> bool;
}

impl Conflict for StoreError {
    fn is_conflict(&self) -> bool {
        matches!(self, StoreError::VersionConflict { .. })
    }
}

impl Conflict for CommitError {
    fn is_conflict(&self) -> bool {
        matches!(self, CommitError::Store(e) if e.is_conflict())
    }
}

/// No manager leads at the moment (or this one does not know which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no leader is elected at the moment: the cluster may have lost quorum ({known} managers known); retry shortly"
)]
pub struct NoLeader {
    /// Managers this one knows of.
    pub known: usize,
}

/// Bounds a Raft round trip: without a quorum it would wait forever.
async fn quorum_deadline<T>(
    f: impl std::future::Future<Output = Result<T, ProposeError>>,
) -> Result<T, CommitError> {
    match tokio::time::timeout(QUORUM_TIMEOUT, f).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(CommitError::Quorum {
            waited: QUORUM_TIMEOUT,
        }),
    }
}
