//! A Raft stand-in for tests on paused time: a lone member on the test's
//! own runtime that applies every proposal to the store at once. The real
//! node runs on a thread and runtime of its own, whose work a paused
//! clock does not wait for (a test's quorum deadline would fire before
//! the first write). The test moves leadership through the status sender.

use std::sync::Arc;

use tokio::sync::watch;

use super::node::{Applied, ProposeError, RaftHandle, RaftStatus, Request};
use crate::store::Store;

/// Starts the stand-in for member `id`, leading in term 1; it serves
/// until every handle is dropped. Must run inside a tokio runtime.
pub(crate) fn start(id: u64, store: Arc<Store>) -> (RaftHandle, watch::Sender<RaftStatus>) {
    let leading = RaftStatus {
        id,
        leader: id,
        term: 1,
        ..Default::default()
    };
    let (handle, mut inbox, status, applied) = RaftHandle::detached(leading);
    let watched = handle.watch_status();
    applied.send_replace(store.applied_index());
    tokio::spawn(async move {
        while let Some(request) = inbox.recv().await {
            let now = watched.borrow().clone();
            let refused = || ProposeError::NotLeader {
                leader: (now.leader != 0).then_some(now.leader),
            };
            match request {
                Request::Propose(_, reply) if !now.is_leader() => {
                    let _ = reply.send(Err(refused()));
                }
                Request::Propose(batch, reply) => {
                    let index = store.applied_index() + 1;
                    let verdict = store.apply(index, batch);
                    applied.send_replace(index);
                    let _ = reply.send(
                        verdict
                            .map(|()| Applied { index, part: 0 })
                            .map_err(ProposeError::Store),
                    );
                }
                Request::ReadIndex(reply) => {
                    let _ = reply.send(if now.is_leader() {
                        Ok(store.applied_index())
                    } else {
                        Err(refused())
                    });
                }
                Request::AddMember(_, reply) | Request::RemoveMember(_, reply) => {
                    let _ = reply.send(Err(ProposeError::ChangeInProgress));
                }
                _ => {}
            }
        }
    });
    (handle, status)
}
