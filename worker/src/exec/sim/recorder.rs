//! The sim engine wrapped to record what it is asked, for the task
//! actor's and the worker's tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::SimEngine;
use crate::engine_choice::EngineInfo;
use crate::exec::{
    Engine, EngineTask, ExecError, ExecOutput, Exit, LogOptions, LogStream, Started, TaskFile,
    TaskRun,
};

/// What the engine was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Prepare(String),
    Start(String),
    Stop(String, Option<String>, Duration),
    Release(String),
    Remove(String),
}

/// The sim engine, recording every call that changes a task and the runs
/// it was given.
#[derive(Default)]
pub struct Recorder {
    /// The engine underneath, for set-up that should not be recorded.
    pub sim: SimEngine,
    calls: Mutex<Vec<Call>>,
    runs: Mutex<HashMap<String, TaskRun>>,
}

impl Recorder {
    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }
    /// Whether `call` was made.
    pub fn called(&self, call: &Call) -> bool {
        self.calls().contains(call)
    }
    /// Whether task `id` was asked to stop (with any signal and grace).
    pub fn stopped(&self, id: &str) -> bool {
        self.calls()
            .iter()
            .any(|c| matches!(c, Call::Stop(t, ..) if t == id))
    }
    /// The files task `id` was prepared with.
    pub fn files(&self, id: &str) -> Vec<TaskFile> {
        self.runs.lock().unwrap()[id].files.clone()
    }
    /// How many starts.
    pub fn starts(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, Call::Start(_)))
            .count()
    }
    /// How many prepares.
    pub fn prepares(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, Call::Prepare(_)))
            .count()
    }
}

#[tonic::async_trait]
impl Engine for Recorder {
    fn info(&self) -> EngineInfo {
        self.sim.info()
    }
    async fn prepare(&self, run: &TaskRun) -> Result<(), ExecError> {
        self.record(Call::Prepare(run.task.id.clone()));
        self.runs
            .lock()
            .unwrap()
            .insert(run.task.id.clone(), run.clone());
        self.sim.prepare(run).await
    }
    async fn start(&self, task_id: &str) -> Result<Started, ExecError> {
        self.record(Call::Start(task_id.into()));
        self.sim.start(task_id).await
    }
    async fn wait(&self, task_id: &str) -> Result<Exit, ExecError> {
        self.sim.wait(task_id).await
    }
    async fn stop(
        &self,
        task_id: &str,
        signal: Option<&str>,
        grace: Duration,
    ) -> Result<(), ExecError> {
        self.record(Call::Stop(
            task_id.into(),
            signal.map(str::to_string),
            grace,
        ));
        self.sim.stop(task_id, signal, grace).await
    }
    async fn remove(&self, task_id: &str) -> Result<(), ExecError> {
        self.record(Call::Remove(task_id.into()));
        self.sim.remove(task_id).await
    }
    async fn release(&self, task_id: &str) -> Result<(), ExecError> {
        self.record(Call::Release(task_id.into()));
        self.sim.release(task_id).await
    }
    async fn list(&self) -> Result<Vec<EngineTask>, ExecError> {
        self.sim.list().await
    }
    async fn exec(
        &self,
        task_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        self.sim.exec(task_id, cmd, timeout).await
    }
    async fn logs(&self, task_id: &str, options: LogOptions) -> Result<LogStream, ExecError> {
        self.sim.logs(task_id, options).await
    }
}
