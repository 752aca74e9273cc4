//! A container's logs as [`LogLine`]s: Docker's demultiplexed frames,
//! asked for with timestamps, which prefix every line (RFC 3339, UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;

use crate::exec::{ExecError, LogLine, LogOptions, LogSource, LogStream};

/// Streams the logs of container `id`.
pub fn stream(docker: &Docker, id: &str, options: LogOptions) -> LogStream {
    let since = options.since;
    let query = LogsOptions {
        follow: options.follow,
        stdout: true,
        stderr: true,
        // Docker filters whole seconds; the exact cut is made below.
        since: since.map_or(0, |t| unix_secs(t) as i32),
        until: 0,
        timestamps: true,
        tail: options.tail.map_or_else(|| "all".into(), |n| n.to_string()),
    };
    let lines = docker.logs(id, Some(query)).filter_map(move |frame| {
        let item = match frame {
            Ok(frame) => Some(to_line(frame))
                .filter(|l| since.is_none_or(|s| l.timestamp >= s))
                .map(Ok),
            Err(e) => Some(Err(ExecError::Failed(format!(
                "container logs: {}",
                super::docker_message(&e)
            )))),
        };
        std::future::ready(item)
    });
    Box::pin(lines)
}

fn to_line(frame: LogOutput) -> LogLine {
    let (source, message) = match frame {
        LogOutput::StdErr { message } => (LogSource::Stderr, message),
        // A tty merges both streams into one: stdout.
        LogOutput::StdOut { message }
        | LogOutput::Console { message }
        | LogOutput::StdIn { message } => (LogSource::Stdout, message),
    };
    let (timestamp, data) = split_timestamp(&message);
    LogLine {
        timestamp: timestamp.unwrap_or_else(SystemTime::now),
        source,
        data: data.to_vec(),
    }
}

/// Splits `2024-05-01T10:00:00.123456789Z rest` into its time and `rest`.
fn split_timestamp(message: &[u8]) -> (Option<SystemTime>, &[u8]) {
    let Some(space) = message.iter().position(|b| *b == b' ') else {
        return (None, message);
    };
    match std::str::from_utf8(&message[..space])
        .ok()
        .and_then(parse_rfc3339)
    {
        Some(t) => (Some(t), &message[space + 1..]),
        None => (None, message),
    }
}

/// Parses Docker's timestamps: `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let nanos = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction
            .chars()
            .chain("000000000".chars())
            .take(9)
            .collect();
        digits.parse::<u32>().ok()?
    };
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_timestamps() {
        let t = parse_rfc3339("2024-03-01T12:34:56.123456789Z");
        assert_eq!(
            t,
            Some(UNIX_EPOCH + Duration::new(1_709_296_496, 123_456_789))
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(parse_rfc3339("nonsense"), None);
    }

    #[test]
    fn splits_the_prefix_from_the_line() {
        let (t, rest) = split_timestamp(b"2024-03-01T12:34:56.5Z hi there\n");
        assert_eq!(
            t,
            Some(UNIX_EPOCH + Duration::new(1_709_296_496, 500_000_000))
        );
        assert_eq!(rest, b"hi there\n");
        let (t, rest) = split_timestamp(b"no stamp\n");
        assert_eq!((t, rest), (None, &b"no stamp\n"[..]));
    }
}
