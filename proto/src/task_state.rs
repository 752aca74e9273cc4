//! Task states as both sides read them. A task only moves forward through
//! these (the numbers grow along the life), so "at least" and "past" are
//! plain comparisons; Docker's lower-case names are what users see.

use crate::objects::{Task, TaskState};

impl TaskState {
    /// Whether a task in this state has ended for good.
    pub fn is_terminal(self) -> bool {
        self >= TaskState::Complete
    }

    /// Docker's name for the state (`service ps`, progress bars).
    pub fn docker_name(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }
}

/// The state a task has reached (its status), `New` when it has none.
pub fn observed(task: &Task) -> TaskState {
    task.status.as_ref().map_or(TaskState::New, |s| s.state())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_the_life() {
        assert!(TaskState::Pending < TaskState::Assigned);
        assert!(TaskState::Running < TaskState::Complete);
        assert!(!TaskState::Running.is_terminal());
        for s in [
            TaskState::Complete,
            TaskState::Failed,
            TaskState::Shutdown,
            TaskState::Rejected,
            TaskState::Orphaned,
        ] {
            assert!(s.is_terminal(), "{s:?}");
        }
        assert_eq!(TaskState::Running.docker_name(), "running");
    }
}
