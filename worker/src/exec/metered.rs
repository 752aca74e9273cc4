//! An engine that times every call of the engine it wraps, by operation,
//! and counts the failures ([`crate::metrics`]). [`super::build`] wraps
//! whatever engine it builds, so no call site has to remember.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    Engine, EngineTask, ExecError, ExecOutput, Exit, LogOptions, LogStream, Started, TaskRun,
};
use crate::engine_choice::EngineInfo;
use crate::metrics::METRICS;

/// `engine`, with its calls counted.
pub struct Metered(pub Arc<dyn Engine>);

async fn timed<T>(
    operation: &'static str,
    call: impl Future<Output = Result<T, ExecError>>,
) -> Result<T, ExecError> {
    let started = Instant::now();
    let result = call.await;
    METRICS.engine_call(operation, started, result.is_err());
    result
}

#[tonic::async_trait]
impl Engine for Metered {
    fn info(&self) -> EngineInfo {
        self.0.info()
    }

    async fn prepare(&self, run: &TaskRun) -> Result<(), ExecError> {
        timed("prepare", self.0.prepare(run)).await
    }

    async fn start(&self, task_id: &str) -> Result<Started, ExecError> {
        timed("start", self.0.start(task_id)).await
    }

    /// Not timed: it lasts as long as the task.
    async fn wait(&self, task_id: &str) -> Result<Exit, ExecError> {
        self.0.wait(task_id).await
    }

    async fn stop(
        &self,
        task_id: &str,
        signal: Option<&str>,
        grace: Duration,
    ) -> Result<(), ExecError> {
        timed("stop", self.0.stop(task_id, signal, grace)).await
    }

    async fn remove(&self, task_id: &str) -> Result<(), ExecError> {
        timed("remove", self.0.remove(task_id)).await
    }

    async fn release(&self, task_id: &str) -> Result<(), ExecError> {
        timed("release", self.0.release(task_id)).await
    }

    async fn list(&self) -> Result<Vec<EngineTask>, ExecError> {
        timed("list", self.0.list()).await
    }

    async fn exec(
        &self,
        task_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        timed("exec", self.0.exec(task_id, cmd, timeout)).await
    }

    /// Timed until the stream opens, not while it is read.
    async fn logs(&self, task_id: &str, options: LogOptions) -> Result<LogStream, ExecError> {
        timed("logs", self.0.logs(task_id, options)).await
    }

    async fn image_healthcheck(&self, task_id: &str) -> Option<shoal_proto::objects::HealthConfig> {
        self.0.image_healthcheck(task_id).await
    }

    async fn netns(&self, task_id: &str) -> Option<PathBuf> {
        self.0.netns(task_id).await
    }
}
