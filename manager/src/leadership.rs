//! Work bound to one leadership term. A stream that only the leader
//! serves (a node's session, assignments and networks, log listeners and
//! subscriptions) takes the [`Term`] this manager leads in when it opens,
//! and ends when that term does: when this manager stops leading, or
//! leads again in a later term (a stream of an older term must not
//! outlive it, even if the status watch folded the change away).
//! Nothing polls: a term ends on the Raft status watch.
//!
//! The leader-only loops are started and stopped the same way, by
//! [`crate::leader::Supervisor`].

use tokio::sync::watch;

use crate::context::ManagerContext;
use crate::raft::node::RaftStatus;

/// The leadership term this manager held when the value was taken.
#[derive(Debug)]
pub struct Term {
    status: watch::Receiver<RaftStatus>,
    /// `None`: this manager did not lead when the term was taken.
    term: Option<u64>,
}

impl Term {
    /// The term this manager leads in now; one that is already over if it
    /// does not lead.
    pub fn current(ctx: &ManagerContext) -> Term {
        Term::of(ctx.raft.watch_status())
    }

    /// [`Term::current`] from a status watch.
    pub fn of(mut status: watch::Receiver<RaftStatus>) -> Term {
        let term = {
            let now = status.borrow_and_update();
            now.is_leader().then_some(now.term)
        };
        Term { status, term }
    }

    /// Whether this manager still leads in the term.
    pub fn holds(&self) -> bool {
        self.term
            .is_some_and(|term| within(&self.status.borrow(), term))
    }

    /// Resolves when the term is over (at once if it already is).
    /// Cancel-safe: a `select!` loop may call it again.
    pub async fn lost(&mut self) {
        let Some(term) = self.term else { return };
        // An error means the Raft node is gone: the term is over too.
        let _ = self.status.wait_for(|s| !within(s, term)).await;
    }

    /// Waits for the next status change (membership, reachability):
    /// true while the term lasts, false once it is over. Cancel-safe.
    pub async fn changed(&mut self) -> bool {
        if self.term.is_none() {
            return false;
        }
        self.status.changed().await.is_ok() && self.holds()
    }

    /// The status as last seen.
    pub fn status(&self) -> watch::Ref<'_, RaftStatus> {
        self.status.borrow()
    }
}

fn within(status: &RaftStatus, term: u64) -> bool {
    status.is_leader() && status.term == term
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leading(term: u64) -> RaftStatus {
        RaftStatus {
            id: 1,
            leader: 1,
            term,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_term_ends_when_leadership_goes_or_moves_to_a_later_term() {
        let (tx, rx) = watch::channel(leading(2));
        let mut term = Term::of(rx.clone());
        assert!(term.holds());
        // A change that keeps leadership (members) leaves the term on.
        tx.send_modify(|s| {
            s.reachable.insert(2);
        });
        assert!(term.changed().await);
        // Lost and won again before anyone looked: still a new term.
        tx.send(leading(3)).unwrap();
        assert!(!term.changed().await);
        tokio::time::timeout(std::time::Duration::from_secs(1), term.lost())
            .await
            .expect("a later term ends the earlier one");

        let mut follower = Term::of(watch::channel(Default::default()).1);
        assert!(!follower.holds());
        follower.lost().await;

        let mut term = Term::of(rx);
        drop(tx);
        term.lost().await;
    }
}
