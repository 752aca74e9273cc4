//! Bounds both sides of the wire share, so the CLI, the compose loader and
//! the manager refuse the same things with the same words, and the
//! conversions every side makes from what a spec says can never panic.
//!
//! - Secret and config sizes are Docker's (swarmkit's `MaxSecretSize` and
//!   `MaxConfigSize`), with Docker's wording.
//! - [`MAX_REPLICAS`] is Shoal's own: swarmkit has none, and a leader
//!   creates every slot it is asked for.
//! - Durations from a spec are checked by the manager ([`check_duration`])
//!   and read everywhere through [`duration`], which is total: a value
//!   stored before the check existed, or sent by a crafted peer, is read as
//!   zero or [`MAX_DURATION`] rather than panicking whoever reads it.

use std::time::{Duration, SystemTime};

/// The largest secret Docker accepts is one byte less than this (500 KiB).
pub const MAX_SECRET_SIZE: usize = 500 * 1024;
/// The largest config Docker accepts is one byte less than this (1000 KiB).
pub const MAX_CONFIG_SIZE: usize = 1000 * 1024;

/// Most replicas (or job completions, or jobs at once) one service may ask
/// for. The orchestrator keeps every slot of a service in memory and
/// creates its tasks in one store write; past this a single service would
/// hold a leader's memory and the Raft log hostage.
pub const MAX_REPLICAS: u64 = 100_000;

/// The longest duration a spec may give where Docker sets no bound of its
/// own: 100 years (so any instant plus it, and it in nanoseconds as an
/// `i64`, as Docker's API carries durations, stays representable).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The shortest node certificate validity a cluster may ask for. Docker's
/// (`ca.MinNodeCertExpiration`) is an hour; Shoal allows renewal to be
/// watched in seconds (its tests do), but not certificates that expire
/// before a node can use them.
pub const MIN_CERT_EXPIRY: Duration = Duration::from_secs(10);

/// The size limit of a secret (`"secret"`) or a config (anything else).
pub fn data_limit(kind: &str) -> usize {
    if kind == "secret" {
        MAX_SECRET_SIZE
    } else {
        MAX_CONFIG_SIZE
    }
}

/// Refuses empty data and data of `limit` bytes or more, in Docker's words
/// plus the size that was given.
pub fn check_data_size(kind: &str, len: usize, limit: usize) -> Result<(), String> {
    if len == 0 || len >= limit {
        return Err(format!(
            "{kind} data must be larger than 0 and less than {limit} bytes (got {len} bytes)"
        ));
    }
    Ok(())
}

/// What a spec's duration can be wrong about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Below zero.
    #[error("cannot be negative")]
    Negative,
    /// Above the field's bound.
    #[error("cannot be longer than {}", human(*.0))]
    TooLong(Duration),
    /// Not zero but below the field's minimum.
    #[error("cannot be less than {}", human(*.0))]
    TooShort(Duration),
}

/// A protobuf duration as std's, or why it is out of `0..=max`.
pub fn check_duration(d: &prost_types::Duration, max: Duration) -> Result<Duration, DurationError> {
    let d = d.normalized();
    if d.seconds < 0 || d.nanos < 0 {
        return Err(DurationError::Negative);
    }
    // Normalized and non-negative: whole seconds, nanos below one second.
    let std = Duration::new(d.seconds.unsigned_abs(), d.nanos.unsigned_abs());
    if std > max {
        return Err(DurationError::TooLong(max));
    }
    Ok(std)
}

/// A protobuf duration as std's, total: negative is zero, longer than
/// [`MAX_DURATION`] is [`MAX_DURATION`].
pub fn duration(d: &prost_types::Duration) -> Duration {
    match check_duration(d, MAX_DURATION) {
        Ok(d) => d,
        Err(DurationError::Negative) => Duration::ZERO,
        Err(_) => MAX_DURATION,
    }
}

/// `t + d`, or `t` itself when that is past what a `SystemTime` can hold
/// (only a crafted timestamp gets there): never a panic, never earlier.
pub fn later(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).unwrap_or(t)
}

/// `d` as Go prints a round duration (`1h0m0s`, `100ms`), for messages.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pd(seconds: i64, nanos: i32) -> prost_types::Duration {
        prost_types::Duration { seconds, nanos }
    }

    #[test]
    fn sizes_are_dockers() {
        assert_eq!(MAX_SECRET_SIZE, 512_000);
        assert_eq!(MAX_CONFIG_SIZE, 1_024_000);
        assert!(check_data_size("secret", MAX_SECRET_SIZE - 1, MAX_SECRET_SIZE).is_ok());
        assert_eq!(
            check_data_size("secret", MAX_SECRET_SIZE, MAX_SECRET_SIZE).unwrap_err(),
            "secret data must be larger than 0 and less than 512000 bytes (got 512000 bytes)"
        );
        assert_eq!(
            check_data_size("config", 0, MAX_CONFIG_SIZE).unwrap_err(),
            "config data must be larger than 0 and less than 1024000 bytes (got 0 bytes)"
        );
        assert_eq!(data_limit("config"), MAX_CONFIG_SIZE);
        assert_eq!(data_limit("secret"), MAX_SECRET_SIZE);
    }

    #[test]
    fn every_duration_reads_without_panicking() {
        for (seconds, nanos) in [
            (i64::MIN, 0),
            (i64::MIN, i32::MIN),
            (i64::MIN, i32::MAX),
            (i64::MAX, i32::MAX),
            (i64::MAX, i32::MIN),
            (0, i32::MIN),
            (0, i32::MAX),
            (-1, 999_999_999),
            (1, -1),
        ] {
            let d = duration(&pd(seconds, nanos));
            assert!(d <= MAX_DURATION, "{seconds} {nanos}");
            let _ = later(SystemTime::now(), d);
        }
        assert_eq!(duration(&pd(-5, 0)), Duration::ZERO);
        assert_eq!(duration(&pd(i64::MAX, 0)), MAX_DURATION);
        assert_eq!(duration(&pd(1, -1)), Duration::new(0, 999_999_999));
        assert_eq!(duration(&pd(3, 500)), Duration::new(3, 500));
    }

    #[test]
    fn checks_name_the_problem() {
        let max = Duration::from_secs(60);
        assert_eq!(
            check_duration(&pd(-1, 0), max),
            Err(DurationError::Negative)
        );
        assert_eq!(
            check_duration(&pd(61, 0), max).unwrap_err().to_string(),
            "cannot be longer than 1m0s"
        );
        assert_eq!(check_duration(&pd(60, 0), max), Ok(max));
        assert_eq!(
            DurationError::TooShort(Duration::from_millis(1)).to_string(),
            "cannot be less than 1ms"
        );
        assert_eq!(human(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(human(MAX_DURATION), "876000h0m0s");
    }

    #[test]
    fn later_never_panics() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        assert_eq!(later(t, Duration::from_secs(5)), t + Duration::from_secs(5));
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 - 1);
        assert_eq!(later(far, MAX_DURATION), far);
    }
}
