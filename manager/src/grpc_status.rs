//! The edge where the manager's typed errors become gRPC statuses. Inside
//! the manager, writes fail with [`CommitError`], the store with
//! [`StoreError`], Raft with [`ProposeError`]; the gRPC services (the
//! control API, the dispatcher, the CA, the log broker, Raft membership)
//! turn them into a [`Status`] here, so every caller sees the same code
//! and message for the same failure.

use tonic::Status;

use crate::context::{CommitError, Conflict, ManagerContext, NoLeader};
use crate::dispatcher::status::ReportError;
use crate::raft::node::ProposeError;
use crate::store::StoreError;

/// Maps store errors to gRPC status codes.
pub fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::NotFound { .. } => Status::not_found(e.to_string()),
        StoreError::Exists { .. } | StoreError::NameConflict { .. } => {
            Status::already_exists(e.to_string())
        }
        StoreError::VersionConflict { .. } => Status::aborted(e.to_string()),
        StoreError::Ambiguous { .. }
        | StoreError::Duplicate { .. }
        | StoreError::EmptyAction
        | StoreError::EmptyId { .. } => Status::invalid_argument(e.to_string()),
    }
}

/// Maps Raft errors to gRPC status codes.
pub fn propose_status(e: ProposeError) -> Status {
    match e {
        ProposeError::Store(e) => store_status(e),
        ProposeError::NotLeader { .. }
        | ProposeError::LeadershipLost
        | ProposeError::ChangeInProgress => Status::unavailable(e.to_string()),
        ProposeError::Stopped | ProposeError::Raft(_) => Status::internal(e.to_string()),
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
        store_status(e)
    }
}

impl From<CommitError> for Status {
    fn from(e: CommitError) -> Status {
        match e {
            CommitError::Store(e) => store_status(e),
            CommitError::Propose(e) => propose_status(e),
            CommitError::Quorum { .. } => Status::unavailable(e.to_string()),
        }
    }
}

impl From<ReportError> for Status {
    fn from(e: ReportError) -> Status {
        match e {
            ReportError::ShuttingDown => Status::unavailable(e.to_string()),
            ReportError::Commit(e) => e.into(),
        }
    }
}

impl From<NoLeader> for Status {
    fn from(e: NoLeader) -> Status {
        Status::unavailable(e.to_string())
    }
}

/// A handler's own `Status` lost a race when the store said so
/// ("update out of sequence" is the only thing that answers `Aborted`).
impl Conflict for Status {
    fn is_conflict(&self) -> bool {
        self.code() == tonic::Code::Aborted
    }
}

/// What a leader-only service answers on a follower: `Unavailable`, with
/// the leader's address in `shoal-leader` metadata when known, so workers
/// move there. `None` on the leader. `advice` ends the message ("open the
/// session with the leader").
pub fn not_leader(ctx: &ManagerContext, advice: &str) -> Option<Status> {
    let status = ctx.raft.status();
    if status.is_leader() {
        return None;
    }
    let mut err = Status::unavailable(format!("this manager is not the leader: {advice}"));
    if let Some(addr) = status
        .members
        .get(&status.leader)
        .and_then(|m| m.addr.parse().ok())
    {
        err.metadata_mut().insert("shoal-leader", addr);
    }
    Some(err)
}

/// What a leader-only stream sends when the term it was opened in ends
/// ([`crate::leadership::Term::lost`]): `Unavailable`, "leadership
/// changed: " and `advice` ("reconnect to the new leader").
pub fn leadership_changed(advice: &str) -> Status {
    Status::unavailable(format!("leadership changed: {advice}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Kind;

    #[test]
    fn codes_and_messages_are_kept() {
        let conflict = StoreError::VersionConflict {
            kind: Kind::Service,
            id: "s1".into(),
            expected: 3,
            got: 2,
        };
        let built: Status = CommitError::Store(conflict.clone()).into();
        let applied: Status = CommitError::from(ProposeError::Store(conflict.clone())).into();
        for s in [&built, &applied] {
            assert_eq!(s.code(), tonic::Code::Aborted);
            assert_eq!(s.message(), conflict.to_string());
            assert!(s.is_conflict());
        }
        assert!(CommitError::from(ProposeError::Store(conflict)).is_conflict());
        let quorum: Status = CommitError::Quorum {
            waited: crate::context::QUORUM_TIMEOUT,
        }
        .into();
        assert_eq!(quorum.code(), tonic::Code::Unavailable);
        assert!(
            quorum
                .message()
                .starts_with("no quorum of managers answered within 10s")
        );
        let lost: Status = CommitError::from(ProposeError::LeadershipLost).into();
        assert_eq!(lost.code(), tonic::Code::Unavailable);
        let stopped: Status = CommitError::from(ProposeError::Stopped).into();
        assert_eq!(stopped.code(), tonic::Code::Internal);
        let none: Status = NoLeader { known: 3 }.into();
        assert_eq!(none.code(), tonic::Code::Unavailable);
        assert!(none.message().contains("(3 managers known)"));
    }
}
