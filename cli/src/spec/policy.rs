//! The restart and rollout policies a new service gets when its flags or
//! compose file say nothing: `service create` and `stack deploy` must
//! write the same spec for the same service.

use prost_types::Duration;
use shoal_proto::objects::{RestartPolicy, UpdateConfig, restart_policy, update_config};

/// Docker's defaults for updates and rollbacks: one at a time, no delay,
/// pause on failure, 5 s of monitoring, stop-first.
pub fn default_rollout() -> UpdateConfig {
    UpdateConfig {
        parallelism: 1,
        delay: Some(Duration::default()),
        failure_action: update_config::FailureAction::Pause as i32,
        monitor: Some(Duration {
            seconds: 5,
            nanos: 0,
        }),
        max_failure_ratio: 0.0,
        order: update_config::Order::StopFirst as i32,
    }
}

/// Docker's default restart policy: any exit, after 5 s, without limit.
pub fn default_restart(is_job: bool) -> RestartPolicy {
    RestartPolicy {
        // Jobs run to completion: restarting a finished one would loop.
        condition: if is_job {
            restart_policy::Condition::OnFailure
        } else {
            restart_policy::Condition::Any
        } as i32,
        delay: Some(Duration {
            seconds: 5,
            nanos: 0,
        }),
        max_attempts: 0,
        window: None,
    }
}
