//! Waiting for a container, stopping it (signal, grace, kill) and reading
//! how it ended.

use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerState, ContainerStateStatusEnum};
use bollard::query_parameters::{KillContainerOptions, WaitContainerOptions};
use futures_util::StreamExt;

use super::{api, status};
use crate::exec::{ExecError, Exit};

/// How long a SIGKILLed container may take to be reaped before `stop`
/// reports a failure.
const KILL_REAP: Duration = Duration::from_secs(30);

/// What `inspect` says about a container's process.
#[derive(Debug, Clone, Default)]
pub struct State {
    state: ContainerState,
    stop_signal: Option<String>,
}

impl State {
    /// Whether its process is running now.
    pub fn running(&self) -> bool {
        self.state.running.unwrap_or(false)
    }

    /// Whether it ran and ended (not merely created).
    pub fn finished(&self) -> bool {
        matches!(
            self.state.status,
            Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD)
        )
    }

    /// Created and never started.
    fn created(&self) -> bool {
        self.state.status == Some(ContainerStateStatusEnum::CREATED)
    }

    /// The main process's pid while running.
    pub fn pid(&self) -> Option<i32> {
        self.state
            .pid
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
    }

    /// How it ended.
    pub fn exit(&self) -> Exit {
        let code = self
            .state
            .exit_code
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(-1);
        let error = self.state.error.as_deref().unwrap_or("").trim();
        let message = if self.state.oom_killed == Some(true) {
            "OOM killed".to_string()
        } else if !error.is_empty() {
            error.to_string()
        } else if code > 128 {
            signal_name(code - 128).map_or_else(
                || format!("killed by signal {}", code - 128),
                |name| format!("killed by {name}"),
            )
        } else if code != 0 {
            format!("exit code {code}")
        } else {
            String::new()
        };
        Exit { code, message }
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    nix::sys::signal::Signal::try_from(signal)
        .ok()
        .map(|s| s.as_str())
}

/// Inspects container `id`.
pub async fn inspect_state(docker: &Docker, id: &str) -> Result<State, ExecError> {
    let inspect = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| api("inspect container", &e))?;
    Ok(State {
        state: inspect.state.unwrap_or_default(),
        stop_signal: inspect
            .config
            .and_then(|c| c.stop_signal)
            .filter(|s| !s.is_empty()),
    })
}

/// Waits until container `id` has run and exited, and says how.
pub async fn wait(docker: &Docker, id: &str) -> Result<Exit, ExecError> {
    let state = inspect_state(docker, id).await?;
    if state.finished() {
        return Ok(state.exit());
    }
    // A created container would count as "not running" at once: wait for
    // the exit that follows its start instead.
    let condition = if state.created() {
        "next-exit"
    } else {
        "not-running"
    };
    wait_condition(docker, id, condition).await?;
    Ok(inspect_state(docker, id).await?.exit())
}

/// Blocks on Docker's wait endpoint. A non-zero exit arrives as an error
/// from bollard: the code is read from inspect afterwards, so any answer
/// but a failed request means "exited".
async fn wait_condition(docker: &Docker, id: &str, condition: &str) -> Result<(), ExecError> {
    let options = WaitContainerOptions {
        condition: condition.to_string(),
    };
    let mut answers = docker.wait_container(id, Some(options));
    match answers.next().await {
        None | Some(Ok(_)) => Ok(()),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => Ok(()),
        Some(Err(e)) => Err(api("wait for container", &e)),
    }
}

/// Stops container `id`: `signal` (else its stop signal, else SIGTERM),
/// then SIGKILL after `grace`. Done here rather than with Docker's stop so
/// the signal can differ from the container's and no API call blocks for
/// the whole grace period.
pub async fn stop(
    docker: &Docker,
    id: &str,
    signal: Option<&str>,
    grace: Duration,
) -> Result<(), ExecError> {
    let state = inspect_state(docker, id).await?;
    if !state.running() {
        return Ok(());
    }
    let signal = signal
        .map(str::to_string)
        .or_else(|| state.stop_signal.clone())
        .unwrap_or_else(|| "SIGTERM".into());
    if !kill(docker, id, &signal).await? {
        return Ok(());
    }
    let exited = tokio::time::timeout(grace, wait_condition(docker, id, "not-running")).await;
    if let Ok(result) = exited {
        return result;
    }
    tracing::info!(container = %id, ?grace, "grace period over, killing");
    if !kill(docker, id, "SIGKILL").await? {
        return Ok(());
    }
    tokio::time::timeout(KILL_REAP, wait_condition(docker, id, "not-running"))
        .await
        .map_err(|_| {
            ExecError::Failed(format!(
                "container {id} still running {KILL_REAP:?} after SIGKILL"
            ))
        })?
}

/// Sends `signal`; false when the container was not running any more.
async fn kill(docker: &Docker, id: &str, signal: &str) -> Result<bool, ExecError> {
    let options = KillContainerOptions {
        signal: signal.to_string(),
    };
    match docker.kill_container(id, Some(options)).await {
        Ok(()) => Ok(true),
        // 409: not running.
        Err(e) if status(&e) == Some(409) => Ok(false),
        Err(e) => Err(api(&format!("send {signal} to container"), &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i64, oom: bool) -> State {
        State {
            state: ContainerState {
                status: Some(ContainerStateStatusEnum::EXITED),
                exit_code: Some(code),
                oom_killed: Some(oom),
                ..Default::default()
            },
            stop_signal: None,
        }
    }

    #[test]
    fn explains_exits() {
        assert_eq!(exited(0, false).exit().message, "");
        assert_eq!(exited(3, false).exit().message, "exit code 3");
        assert_eq!(exited(137, false).exit().message, "killed by SIGKILL");
        assert_eq!(exited(137, true).exit().message, "OOM killed");
        assert_eq!(exited(137, true).exit().code, 137);
    }
}
