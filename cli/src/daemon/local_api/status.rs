//! The node's errors as gRPC statuses: the only place they become ones.
//! The codes are what a client acts on (`failed_precondition`: the node's
//! state does not allow it; `invalid_argument`: the request is wrong).

use shoal_manager::backup::BackupError;
use shoal_manager::runtime::ManagerError;
use shoal_node::NodeError;
use tonic::Status;

/// The status a local API call answers with when the node says `e`.
pub fn status(e: NodeError) -> Status {
    use NodeError as E;
    match e {
        E::AlreadyInSwarm
        | E::NotInSwarm
        | E::LeavingManager
        | E::NotLocked
        | E::LockedFirst
        | E::ForceNeedsManager
        | E::NotAManager
        | E::NeedsPassphrase => Status::failed_precondition(e.to_string()),
        E::Address(_) | E::Token(_) | E::UnlockKey(_) | E::CertExpiry(_) => {
            Status::invalid_argument(e.to_string())
        }
        E::JoinTimeout { .. } => Status::deadline_exceeded(e.to_string()),
        E::JoinUnreachable { .. } => Status::unavailable(e.to_string()),
        E::JoinRefused { code, message } => Status::new(code, message),
        E::Backup(BackupError::ShortPassphrase) => Status::invalid_argument(e.to_string()),
        E::Backup(_) => Status::failed_precondition(e.to_string()),
        E::Manager(ManagerError::WrongUnlockKey) => Status::invalid_argument(e.to_string()),
        // A manager that cannot start says why in its causes.
        E::Manager(_) => Status::internal(e.with_causes()),
        _ => Status::internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_state_and_bad_requests_keep_their_codes() {
        assert_eq!(
            status(NodeError::AlreadyInSwarm).code(),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            status(NodeError::Address("bad".into())).code(),
            tonic::Code::InvalidArgument
        );
        let refused = status(NodeError::JoinRefused {
            code: tonic::Code::PermissionDenied,
            message: "invalid join token".into(),
        });
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert_eq!(refused.message(), "invalid join token");
        let locked = status(NodeError::Manager(ManagerError::WrongUnlockKey));
        assert_eq!(locked.code(), tonic::Code::InvalidArgument);
    }
}
