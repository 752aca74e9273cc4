//! Times as Docker prints them: "2 hours ago" in tables (go-units'
//! `HumanDuration`), RFC 3339 in inspect, Go's zero time when unset.

use std::time::{SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

/// What Go prints for a zero `time.Time` in JSON.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A duration in words, exactly as go-units' `HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let minutes = seconds / 60;
    // go-units rounds hours to the nearest.
    let hours = (seconds + 1800) / 3600;
    match () {
        _ if seconds < 1 => "Less than a second".into(),
        _ if seconds == 1 => "1 second".into(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// `"3 minutes ago"` for a timestamp, relative to `now`; empty if unset.
pub fn ago(ts: Option<&Timestamp>, now: SystemTime) -> String {
    let Some(ts) = ts else {
        return String::new();
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format!("{} ago", human_duration(now - ts.seconds))
}

/// RFC 3339 with nanoseconds as needed, like Go's JSON times.
pub fn rfc3339(ts: Option<&Timestamp>) -> String {
    ts.map_or_else(|| ZERO_TIME.to_string(), ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_like_docker() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (45, "45 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (120, "2 minutes"),
            (59 * 60, "59 minutes"),
            (60 * 60, "About an hour"),
            (2 * 3600, "2 hours"),
            (47 * 3600, "47 hours"),
            (3 * 86400, "3 days"),
            (15 * 86400, "2 weeks"),
            (90 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn ago_and_rfc3339() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ts = Timestamp {
            seconds: 1_700_000_000 - 7200,
            nanos: 0,
        };
        assert_eq!(ago(Some(&ts), now), "2 hours ago");
        assert_eq!(ago(None, now), "");
        assert_eq!(rfc3339(Some(&ts)), "2023-11-14T20:13:20Z");
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
    }
}
