//! The sim engine: no process at all. Tasks reach running at once and run
//! until stopped, for control-plane benchmarks and tests. Failures are
//! scripted through the task's container labels:
//!
//! - `shoal.sim.reject=<message>`: `prepare` rejects the task.
//! - `shoal.sim.fail-start=<message>`: `start` fails with the message.
//! - `shoal.sim.exit-after=<duration>` (`2s`, `500ms`, `1m30s`) with
//!   `shoal.sim.exit-code=<n>` (default 0): the task exits on its own.
//! - `shoal.sim.exec-exit-code=<n>`: what `exec` (health checks) answers.
//!
//! Everything lives in memory: a restarted daemon finds no sim tasks
//! (`list` is empty), so the dispatcher's reconciliation starts them again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::watch;

use super::signal::{parse_signal, signal_exit_code};
use super::{
    Engine, EngineTask, ExecError, ExecOutput, Exit, LogOptions, LogStream, Started, TaskRun,
};
use crate::engine_choice::{EngineInfo, EngineKind};

const REJECT: &str = "shoal.sim.reject";
const FAIL_START: &str = "shoal.sim.fail-start";
const EXIT_AFTER: &str = "shoal.sim.exit-after";
const EXIT_CODE: &str = "shoal.sim.exit-code";
const EXEC_EXIT_CODE: &str = "shoal.sim.exec-exit-code";

/// Where a sim task is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SimState {
    Prepared,
    Running,
    Exited(Exit),
}

/// What the labels script for one task.
#[derive(Debug, Clone, Default)]
struct Script {
    fail_start: Option<String>,
    exit_after: Option<Duration>,
    exit_code: i32,
    exec_exit_code: i32,
}

struct SimTask {
    script: Script,
    state: watch::Sender<SimState>,
}

/// The sim engine. Cheap to create; share it behind an `Arc`.
#[derive(Default)]
pub struct SimEngine {
    tasks: Mutex<HashMap<String, Arc<SimTask>>>,
}

impl SimEngine {
    /// An engine with no tasks.
    pub fn new() -> SimEngine {
        SimEngine::default()
    }

    fn task(&self, task_id: &str) -> Result<Arc<SimTask>, ExecError> {
        self.lock()
            .get(task_id)
            .cloned()
            .ok_or_else(|| ExecError::NotFound(task_id.to_string()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SimTask>>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every critical section is one insert/get/remove).
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads the script from the task's labels; a malformed label rejects the
/// task so a typo in a benchmark is loud.
fn script(run: &TaskRun) -> Result<Script, ExecError> {
    let labels = run
        .task
        .spec
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .map(|c| c.labels.clone())
        .unwrap_or_default();
    if let Some(msg) = labels.get(REJECT) {
        return Err(ExecError::Rejected(msg.clone()));
    }
    let int = |key: &str| -> Result<i32, ExecError> {
        labels.get(key).map_or(Ok(0), |v| {
            v.trim().parse().map_err(|_| {
                ExecError::Rejected(format!("label {key}={v:?} is not an integer exit code"))
            })
        })
    };
    let exit_after = match labels.get(EXIT_AFTER) {
        None => None,
        Some(v) => Some(parse_duration(v).ok_or_else(|| {
            ExecError::Rejected(format!(
                "label {EXIT_AFTER}={v:?} is not a duration; write e.g. 2s, 500ms or 1m30s"
            ))
        })?),
    };
    Ok(Script {
        fail_start: labels.get(FAIL_START).cloned(),
        exit_after,
        exit_code: int(EXIT_CODE)?,
        exec_exit_code: int(EXEC_EXIT_CODE)?,
    })
}

/// Parses `500ms`, `2s`, `1m30s`, `1h` (Go's style, integers only).
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return None,
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[tonic::async_trait]
impl Engine for SimEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            kind: EngineKind::Sim,
            version: shoal_proto::build_info::VERSION.to_string(),
        }
    }

    async fn prepare(&self, run: &TaskRun) -> Result<(), ExecError> {
        let script = script(run)?;
        self.lock().entry(run.task.id.clone()).or_insert_with(|| {
            Arc::new(SimTask {
                script,
                state: watch::channel(SimState::Prepared).0,
            })
        });
        Ok(())
    }

    async fn start(&self, task_id: &str) -> Result<Started, ExecError> {
        let task = self.task(task_id)?;
        let started = Started {
            handle: format!("sim-{task_id}"),
            pid: None,
        };
        if *task.state.borrow() != SimState::Prepared {
            return Ok(started);
        }
        if let Some(msg) = &task.script.fail_start {
            return Err(ExecError::Failed(msg.clone()));
        }
        task.state.send_replace(SimState::Running);
        if let Some(after) = task.script.exit_after {
            let task = task.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                task.state.send_if_modified(|s| {
                    if *s != SimState::Running {
                        return false;
                    }
                    *s = SimState::Exited(Exit {
                        code: task.script.exit_code,
                        message: format!("exited with code {}", task.script.exit_code),
                    });
                    true
                });
            });
        }
        Ok(started)
    }

    async fn wait(&self, task_id: &str) -> Result<Exit, ExecError> {
        let mut rx = self.task(task_id)?.state.subscribe();
        let state = rx
            .wait_for(|s| matches!(s, SimState::Exited(_)))
            .await
            .map_err(|_| ExecError::NotFound(task_id.to_string()))?;
        match &*state {
            SimState::Exited(exit) => Ok(exit.clone()),
            _ => Err(ExecError::Failed(
                "sim task state changed while read".into(),
            )),
        }
    }

    async fn stop(
        &self,
        task_id: &str,
        signal: Option<&str>,
        _grace: Duration,
    ) -> Result<(), ExecError> {
        let signal = parse_signal(signal)?;
        let task = match self.task(task_id) {
            Ok(t) => t,
            Err(ExecError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        task.state.send_if_modified(|s| {
            if matches!(s, SimState::Exited(_)) {
                return false;
            }
            *s = SimState::Exited(Exit {
                code: signal_exit_code(signal),
                message: format!("stopped with {}", signal.as_str()),
            });
            true
        });
        Ok(())
    }

    async fn remove(&self, task_id: &str) -> Result<(), ExecError> {
        if let Some(task) = self.lock().remove(task_id) {
            // Waiters must not hang on a task that is gone.
            task.state.send_if_modified(|s| {
                if matches!(s, SimState::Exited(_)) {
                    return false;
                }
                *s = SimState::Exited(Exit {
                    code: 137,
                    message: "removed".into(),
                });
                true
            });
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<EngineTask>, ExecError> {
        let mut out: Vec<EngineTask> = self
            .lock()
            .iter()
            .map(|(id, t)| {
                let state = t.state.borrow().clone();
                EngineTask {
                    task_id: id.clone(),
                    running: state == SimState::Running,
                    exit: match state {
                        SimState::Exited(e) => Some(e),
                        _ => None,
                    },
                    handle: format!("sim-{id}"),
                    pid: None,
                }
            })
            .collect();
        out.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(out)
    }

    async fn exec(
        &self,
        task_id: &str,
        _cmd: &[String],
        _timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        let task = self.task(task_id)?;
        if *task.state.borrow() != SimState::Running {
            return Err(ExecError::Failed(format!("task {task_id} is not running")));
        }
        Ok(ExecOutput {
            code: task.script.exec_exit_code,
            output: String::new(),
        })
    }

    async fn logs(&self, task_id: &str, options: LogOptions) -> Result<LogStream, ExecError> {
        // A sim task writes nothing; a follower waits for its end.
        let task = self.task(task_id)?;
        let mut rx = task.state.subscribe();
        Ok(Box::pin(
            futures_util::stream::once(async move {
                if options.follow {
                    let _ = rx.wait_for(|s| matches!(s, SimState::Exited(_))).await;
                }
            })
            .filter_map(|()| std::future::ready(None)),
        ))
    }
}

#[cfg(test)]
pub(crate) mod recorder;
#[cfg(test)]
mod tests;
