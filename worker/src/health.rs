//! Health checks for any engine, as Docker runs them: a command through
//! [`Engine::exec`] every `interval`; `starting` until the first success,
//! `healthy` after one, `unhealthy` after `retries` consecutive failures
//! (failures during `start_period` do not count).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::exec::Engine;

/// Docker's default interval, timeout and retries.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
/// Output kept from the last probe.
const MAX_OUTPUT: usize = 4096;

/// A task's health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// The command, `CMD-SHELL` already turned into `/bin/sh -c`.
    pub command: Vec<String>,
    /// Between probes.
    pub interval: Duration,
    /// A probe running longer fails.
    pub timeout: Duration,
    /// Consecutive failures that make the task unhealthy.
    pub retries: u32,
    /// Failures in this time after start do not count.
    pub start_period: Duration,
}

/// Why a health check spec is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HealthError {
    /// The test is not `CMD`, `CMD-SHELL` or `NONE`.
    #[error(
        "health check test {0:?} is not understood: write [\"CMD\", \"prog\", \"arg\"...], [\"CMD-SHELL\", \"command\"] or [\"NONE\"]"
    )]
    BadTest(Vec<String>),
}

/// Total: a value the manager would refuse is clamped, never a panic.
fn duration(d: Option<&prost_types::Duration>, default: Duration) -> Duration {
    d.map(shoal_proto::limits::duration)
        .filter(|d| !d.is_zero())
        .unwrap_or(default)
}

impl HealthConfig {
    /// The check a spec asks for: `None` for no check (`NONE`, or no test).
    /// The check a task runs: the service's, else its image's, with the
    /// service's timings over the image's where the service gives only
    /// those (Docker's merge); `["NONE"]` in the service disables both.
    pub fn effective(
        service: Option<&shoal_proto::objects::HealthConfig>,
        image: Option<shoal_proto::objects::HealthConfig>,
    ) -> Option<shoal_proto::objects::HealthConfig> {
        match (service, image) {
            (Some(s), _) if !s.test.is_empty() => Some(s.clone()),
            (Some(s), Some(mut i)) => {
                i.interval = s.interval.or(i.interval);
                i.timeout = s.timeout.or(i.timeout);
                i.start_period = s.start_period.or(i.start_period);
                if s.retries != 0 {
                    i.retries = s.retries;
                }
                Some(i)
            }
            (s, i) => i.or_else(|| s.cloned()),
        }
    }

    /// The check a service spec asks for.
    pub fn from_spec(
        spec: &shoal_proto::objects::HealthConfig,
    ) -> Result<Option<HealthConfig>, HealthError> {
        let command = match spec.test.split_first() {
            None => return Ok(None),
            Some((kind, _)) if kind == "NONE" => return Ok(None),
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
            }
            Some(_) => return Err(HealthError::BadTest(spec.test.clone())),
        };
        Ok(Some(HealthConfig {
            command,
            interval: duration(spec.interval.as_ref(), DEFAULT_INTERVAL),
            timeout: duration(spec.timeout.as_ref(), DEFAULT_TIMEOUT),
            retries: if spec.retries == 0 {
                DEFAULT_RETRIES
            } else {
                spec.retries
            },
            start_period: duration(spec.start_period.as_ref(), Duration::ZERO),
        }))
    }
}

/// Where a task's health is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No success yet.
    Starting,
    /// The last probe succeeded.
    Healthy,
    /// `retries` probes in a row failed.
    Unhealthy,
}

/// What the checker publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    /// The verdict.
    pub status: Health,
    /// Consecutive counted failures.
    pub failing_streak: u32,
    /// The last probe's output or error (truncated).
    pub output: String,
}

impl Default for HealthState {
    fn default() -> Self {
        HealthState {
            status: Health::Starting,
            failing_streak: 0,
            output: String::new(),
        }
    }
}

/// Starts checking `task_id` (which must be running); the checker stops
/// when every receiver is dropped.
pub fn spawn(
    engine: Arc<dyn Engine>,
    task_id: String,
    config: HealthConfig,
) -> watch::Receiver<HealthState> {
    let (tx, rx) = watch::channel(HealthState::default());
    tokio::spawn(run(engine, task_id, config, tx));
    rx
}

/// The checker loop; returns when `tx` has no receivers left.
pub async fn run(
    engine: Arc<dyn Engine>,
    task_id: String,
    config: HealthConfig,
    tx: watch::Sender<HealthState>,
) {
    let started = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(config.interval) => {}
        }
        // The engine enforces the timeout; this guards one that does not.
        let probe = tokio::time::timeout(
            config.timeout.saturating_add(Duration::from_secs(1)),
            engine.exec(&task_id, &config.command, config.timeout),
        )
        .await;
        let (ok, mut output) = match probe {
            Ok(Ok(out)) if out.code == 0 => (true, out.output),
            Ok(Ok(out)) => (false, out.output),
            Ok(Err(err)) => (false, err.to_string()),
            Err(_) => (
                false,
                format!(
                    "health check timed out after {}s",
                    config.timeout.as_secs_f64()
                ),
            ),
        };
        truncate(&mut output, MAX_OUTPUT);
        let in_start_period = started.elapsed() < config.start_period;
        tx.send_modify(|s| {
            s.output = output;
            if ok {
                s.status = Health::Healthy;
                s.failing_streak = 0;
            } else if !in_start_period {
                s.failing_streak += 1;
                if s.failing_streak >= config.retries {
                    s.status = Health::Unhealthy;
                }
            }
        });
        tracing::debug!(task = %task_id, ok, "health check");
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests;
