//! The cluster's pair of join tokens and the check the CA makes with them.
//!
//! A token does not say which role it grants: the cluster stores a worker
//! token and a manager token, and a joining node gets the role of the one
//! its token matches, as in Docker. The token format itself (shared with
//! the joining side) is `shoal_proto::token`. Both secrets are always
//! compared, in constant time, so timing tells nothing about either.

use shoal_proto::identity::NodeRole;
use shoal_proto::token::{CaDigest, JoinToken, TokenError};

/// Why a join token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The text is not a join token.
    #[error(transparent)]
    Malformed(#[from] TokenError),
    /// The secret matches neither token (wrong cluster or rotated token).
    #[error("invalid join token: a valid join token is necessary to join this cluster")]
    NotValid,
    /// The secret is right but the token pins an older root CA.
    #[error(
        "invalid join token: it was made for a previous root CA of this cluster; \
         get a current one with `shoal swarm join-token`"
    )]
    OldRoot,
}

/// The worker and manager join tokens of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTokens {
    /// Grants the worker role.
    pub worker: JoinToken,
    /// Grants the manager role.
    pub manager: JoinToken,
}

impl JoinTokens {
    /// Fresh tokens for the root with digest `root`.
    pub fn generate(root: CaDigest) -> JoinTokens {
        JoinTokens {
            worker: JoinToken::generate(root),
            manager: JoinToken::generate(root),
        }
    }

    /// The token that grants `role`.
    pub fn for_role(&self, role: NodeRole) -> &JoinToken {
        match role {
            NodeRole::Worker => &self.worker,
            NodeRole::Manager => &self.manager,
        }
    }

    /// Replaces the token for `role` (`join-token --rotate`); the old one
    /// stops working.
    pub fn rotate(&mut self, role: NodeRole) {
        let root = self.for_role(role).root_digest();
        match role {
            NodeRole::Worker => self.worker = JoinToken::generate(root),
            NodeRole::Manager => self.manager = JoinToken::generate(root),
        }
    }

    /// The same secrets pinning a new root (after `ca --rotate`).
    pub fn with_root_digest(&self, root: CaDigest) -> JoinTokens {
        JoinTokens {
            worker: self.worker.with_root_digest(root),
            manager: self.manager.with_root_digest(root),
        }
    }

    /// The role `presented` grants, or why it grants none.
    pub fn role_for(&self, presented: &str) -> Result<NodeRole, JoinError> {
        let token: JoinToken = presented.parse()?;
        // Evaluate both before branching: no early exit on the first.
        let is_worker = self.worker.secret_matches(&token);
        let is_manager = self.manager.secret_matches(&token);
        let matched = match (is_worker, is_manager) {
            (_, true) => &self.manager,
            (true, false) => &self.worker,
            (false, false) => return Err(JoinError::NotValid),
        };
        if matched.root_digest() != token.root_digest() {
            return Err(JoinError::OldRoot);
        }
        Ok(if is_manager {
            NodeRole::Manager
        } else {
            NodeRole::Worker
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> CaDigest {
        CaDigest::of_der(b"root")
    }

    #[test]
    fn each_token_grants_its_role() {
        let tokens = JoinTokens::generate(root());
        assert_ne!(tokens.worker, tokens.manager);
        let w = tokens.worker.to_string();
        let m = tokens.manager.to_string();
        assert_eq!(tokens.role_for(&w), Ok(NodeRole::Worker));
        assert_eq!(tokens.role_for(&m), Ok(NodeRole::Manager));
        assert_eq!(tokens.for_role(NodeRole::Manager), &tokens.manager);
    }

    #[test]
    fn foreign_and_rotated_tokens_are_refused() {
        let mut tokens = JoinTokens::generate(root());
        let other = JoinTokens::generate(root());
        let err = tokens.role_for(&other.worker.to_string()).unwrap_err();
        assert_eq!(err, JoinError::NotValid);
        assert_eq!(
            err.to_string(),
            "invalid join token: a valid join token is necessary to join this cluster"
        );
        let old = tokens.worker.to_string();
        tokens.rotate(NodeRole::Worker);
        assert_eq!(tokens.role_for(&old), Err(JoinError::NotValid));
        assert_eq!(
            tokens.role_for(&tokens.worker.to_string()),
            Ok(NodeRole::Worker)
        );
    }

    #[test]
    fn tokens_for_an_old_root_are_refused_after_rotation() {
        let tokens = JoinTokens::generate(root());
        let old = tokens.manager.to_string();
        let rotated = tokens.with_root_digest(CaDigest::of_der(b"new root"));
        assert_eq!(rotated.role_for(&old), Err(JoinError::OldRoot));
        assert!(
            rotated
                .role_for(&rotated.manager.to_string())
                .is_ok_and(|r| r == NodeRole::Manager)
        );
    }

    #[test]
    fn malformed_tokens_say_why() {
        let tokens = JoinTokens::generate(root());
        let err = tokens.role_for("SWMTKN-9-x-y").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid join token: unsupported version \"9\" (only version 1 is supported)"
        );
    }
}
