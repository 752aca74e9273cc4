//! Running a command inside a task's container (health checks).

use std::time::Duration;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;

use super::{api, status};
use crate::exec::{ExecError, ExecOutput};

/// Output kept from a command: enough for a health check's report.
const MAX_OUTPUT: usize = 4096;

/// How often to look whether a command whose output ended has exited.
const EXIT_POLL: Duration = Duration::from_millis(50);

/// Runs `cmd` in container `id`, giving up after `timeout`.
pub async fn exec(
    docker: &Docker,
    id: &str,
    cmd: &[String],
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    if cmd.is_empty() {
        return Err(ExecError::Failed("no command to run".into()));
    }
    let options = CreateExecOptions {
        cmd: Some(cmd.to_vec()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let created = docker.create_exec(id, options).await.map_err(|e| {
        if status(&e) == Some(409) {
            ExecError::Failed("the task is not running".into())
        } else {
            api("create exec", &e)
        }
    })?;
    let run = async {
        let mut output = Vec::new();
        match docker.start_exec(&created.id, None).await {
            Ok(StartExecResults::Attached {
                output: mut out, ..
            }) => {
                while let Some(chunk) = out.next().await {
                    let chunk = chunk.map_err(|e| api("read exec output", &e))?;
                    let room = MAX_OUTPUT.saturating_sub(output.len());
                    output.extend_from_slice(&chunk.as_ref()[..chunk.as_ref().len().min(room)]);
                }
            }
            Ok(StartExecResults::Detached) => {}
            Err(e) => return Err(api("start exec", &e)),
        }
        // The output can end a moment before Docker records the exit.
        loop {
            let inspect = docker
                .inspect_exec(&created.id)
                .await
                .map_err(|e| api("inspect exec", &e))?;
            match (inspect.running, inspect.exit_code) {
                (Some(false), Some(code)) => {
                    return Ok(ExecOutput {
                        code: i32::try_from(code).unwrap_or(-1),
                        output: String::from_utf8_lossy(&output).into_owned(),
                    });
                }
                _ => tokio::time::sleep(EXIT_POLL).await,
            }
        }
    };
    tokio::time::timeout(timeout, run).await.map_err(|_| {
        ExecError::Failed(format!("command {:?} timed out after {timeout:?}", cmd[0]))
    })?
}
