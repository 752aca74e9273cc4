//! Bounds on what a service spec may ask for, checked before it is stored:
//! a spec that passes here can never make the orchestrator allocate without
//! limit or panic on a duration, on any leader. Each error names the field
//! as the CLI's flag does, so the user knows what to change.
//!
//! The readers stay total on their own ([`shoal_proto::limits::duration`]):
//! specs stored before these checks existed are clamped, not trusted.

use std::path::{Component, Path};
use std::time::Duration;

use shoal_proto::limits::{DurationError, MAX_DURATION, MAX_REPLICAS, check_duration};
use shoal_proto::objects::{FileTarget, ServiceSpec, UpdateConfig, service_spec};
use tonic::Status;

/// Docker's least health check interval, timeout and start period when one
/// is given (`containertypes.MinimumDuration`).
const MIN_HEALTH: Duration = Duration::from_millis(1);
/// Longest secret or config target, as Linux's `PATH_MAX`.
const MAX_TARGET: usize = 4096;

/// Checks replica counts, durations and file targets of `spec`.
pub(super) fn check(spec: &ServiceSpec) -> Result<(), Status> {
    check_counts(spec)?;
    check_durations(spec)?;
    check_targets(spec)
}

fn count(field: &str, n: u64) -> Result<(), Status> {
    if n > MAX_REPLICAS {
        return Err(Status::invalid_argument(format!(
            "{field} {n} is over Shoal's limit of {MAX_REPLICAS} per service"
        )));
    }
    Ok(())
}

fn check_counts(spec: &ServiceSpec) -> Result<(), Status> {
    match spec.mode.as_ref() {
        Some(service_spec::Mode::Replicated(r)) => count("replicas", r.replicas),
        Some(service_spec::Mode::ReplicatedJob(j)) => {
            count("max-concurrent", j.max_concurrent)?;
            count("total completions (replicas)", j.total_completions)
        }
        Some(service_spec::Mode::Global(_) | service_spec::Mode::GlobalJob(_)) | None => Ok(()),
    }
}

/// One duration: `field` names it in the error.
fn within(
    field: &str,
    d: Option<&prost_types::Duration>,
    min: Option<Duration>,
) -> Result<(), Status> {
    let Some(d) = d else { return Ok(()) };
    let checked = check_duration(d, MAX_DURATION).and_then(|v| match min {
        Some(min) if !v.is_zero() && v < min => Err(DurationError::TooShort(min)),
        _ => Ok(v),
    });
    checked
        .map(|_| ())
        .map_err(|e| Status::invalid_argument(format!("{field} {e}")))
}

fn check_update(kind: &str, u: Option<&UpdateConfig>) -> Result<(), Status> {
    let Some(u) = u else { return Ok(()) };
    within(&format!("{kind}-delay"), u.delay.as_ref(), None)?;
    within(&format!("{kind}-monitor"), u.monitor.as_ref(), None)
}

fn check_durations(spec: &ServiceSpec) -> Result<(), Status> {
    check_update("update", spec.update.as_ref())?;
    check_update("rollback", spec.rollback.as_ref())?;
    let Some(task) = spec.task.as_ref() else {
        return Ok(());
    };
    if let Some(r) = task.restart.as_ref() {
        within("restart-delay", r.delay.as_ref(), None)?;
        within("restart-window", r.window.as_ref(), None)?;
    }
    let Some(c) = task.container.as_ref() else {
        return Ok(());
    };
    within("stop-grace-period", c.stop_grace_period.as_ref(), None)?;
    if let Some(h) = c.healthcheck.as_ref() {
        within("health-interval", h.interval.as_ref(), Some(MIN_HEALTH))?;
        within("health-timeout", h.timeout.as_ref(), Some(MIN_HEALTH))?;
        within(
            "health-start-period",
            h.start_period.as_ref(),
            Some(MIN_HEALTH),
        )?;
    }
    Ok(())
}

/// A secret's or config's target: a file name (under `/run/secrets` for a
/// secret, `/` for a config) or an absolute path, both inside the task.
/// `..` is refused outright: it means nothing inside a container but a way
/// out of one, and the engines never resolve it.
fn target(kind: &str, t: Option<&FileTarget>) -> Result<(), Status> {
    let Some(name) = t.map(|t| t.name.as_str()).filter(|n| !n.is_empty()) else {
        return Ok(());
    };
    let bad = |why: &str| {
        Err(Status::invalid_argument(format!(
            "invalid {kind} target {name:?}: {why}"
        )))
    };
    if name.len() > MAX_TARGET {
        return bad(&format!("longer than {MAX_TARGET} bytes"));
    }
    if name.contains('\0') {
        return bad("it holds a NUL byte");
    }
    if Path::new(name)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return bad(
            "'..' is not allowed; give a file name, or an absolute path inside the container",
        );
    }
    if name.ends_with('/') || Path::new(name).file_name().is_none() {
        return bad("it must name a file, not a directory");
    }
    Ok(())
}

fn check_targets(spec: &ServiceSpec) -> Result<(), Status> {
    let Some(c) = spec.task.as_ref().and_then(|t| t.container.as_ref()) else {
        return Ok(());
    };
    for s in &c.secrets {
        target("secret", s.target.as_ref())?;
    }
    for r in &c.configs {
        target("config", r.target.as_ref())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
