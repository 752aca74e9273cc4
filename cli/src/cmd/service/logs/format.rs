//! How `service logs` prints a line, as Docker does:
//! `web.1.abcdefghijkl@node-1    | [timestamp ]line`, and how its
//! `--since` and `--tail` values read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What names a task's lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskLabel {
    /// Service name (or id with `--no-resolve`).
    pub service: String,
    /// The slot, or the node id for a global task (as Docker).
    pub slot: String,
    /// Digits of the service's largest slot, to align the bars.
    pub width: usize,
    /// The task id.
    pub task_id: String,
    /// Node hostname (or id with `--no-resolve`).
    pub node: String,
}

/// The output flags that shape a line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// `--raw`: the line only.
    pub raw: bool,
    /// `--no-task-ids`.
    pub no_task_ids: bool,
    /// `--no-trunc`: full task ids.
    pub no_trunc: bool,
    /// `--timestamps`.
    pub timestamps: bool,
}

/// Docker's short id length.
const SHORT_ID: usize = 12;

/// One output line, newline included.
pub fn line(label: &TaskLabel, style: Style, timestamp: SystemTime, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    if !style.raw {
        let mut name = format!("{}.{}", label.service, label.slot);
        if !style.no_task_ids {
            let id = if style.no_trunc {
                &label.task_id
            } else {
                label.task_id.get(..SHORT_ID).unwrap_or(&label.task_id)
            };
            name = format!("{name}.{id}");
        }
        let pad = label.width.saturating_sub(label.slot.len());
        out.extend_from_slice(
            format!("{name}{:pad$}@{}    | ", "", label.node, pad = pad).as_bytes(),
        );
    }
    if style.timestamps {
        out.extend_from_slice(shoal_worker::exec::process::logs::format_time(timestamp).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(data);
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// `--tail`: a number of lines, or `all` (-1, every line).
pub fn parse_tail(s: &str) -> Result<i64, String> {
    if s == "all" {
        return Ok(-1);
    }
    s.parse::<u64>()
        .ok()
        .and_then(|n| i64::try_from(n).ok())
        .ok_or_else(|| format!("invalid tail value {s:?}: expected a number of lines or \"all\""))
}

/// `--since`: RFC 3339 (`2024-05-01T10:00:00Z`), a Unix time
/// (`1714557600[.5]`), or a duration back from `now` (`10m`, `1h30m`).
pub fn parse_since(s: &str, now: SystemTime) -> Result<SystemTime, String> {
    let bad = || {
        format!(
            "invalid since value {s:?}: expected a timestamp (2024-05-01T10:00:00Z), a Unix time, or a duration such as 10m or 1h30m"
        )
    };
    if let Ok(ts) = s.parse::<prost_types::Timestamp>() {
        return SystemTime::try_from(ts).map_err(|_| bad());
    }
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    let back = go_duration(s).ok_or_else(bad)?;
    now.checked_sub(back).ok_or_else(bad)
}

/// Go's duration syntax: `300ms`, `10m`, `1h30m`, `1.5h`.
fn go_duration(s: &str) -> Option<Duration> {
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|n| *n > 0)?;
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> TaskLabel {
        TaskLabel {
            service: "talker".into(),
            slot: "1".into(),
            width: 1,
            task_id: "abcdefghijklmnopqrstuvwxy".into(),
            node: "node-1".into(),
        }
    }

    #[test]
    fn lines_read_like_docker() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let out = line(&label(), Style::default(), t, b"hello\n");
        assert_eq!(out, b"talker.1.abcdefghijkl@node-1    | hello\n");
        let style = Style {
            timestamps: true,
            no_trunc: true,
            ..Style::default()
        };
        let out = String::from_utf8(line(&label(), style, t, b"x")).unwrap_or_default();
        assert_eq!(
            out,
            "talker.1.abcdefghijklmnopqrstuvwxy@node-1    | 2023-11-14T22:13:20.000000005Z x\n"
        );
        let mut wide = label();
        wide.width = 2;
        let style = Style {
            no_task_ids: true,
            ..Style::default()
        };
        assert_eq!(line(&wide, style, t, b"y\n"), b"talker.1 @node-1    | y\n");
        let raw = Style {
            raw: true,
            ..Style::default()
        };
        assert_eq!(line(&label(), raw, t, b"z\n"), b"z\n");
    }

    #[test]
    fn tail_and_since_values() {
        assert_eq!(parse_tail("all"), Ok(-1));
        assert_eq!(parse_tail("2"), Ok(2));
        assert!(parse_tail("-3").is_err());
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(
            parse_since("10m", now),
            Ok(UNIX_EPOCH + Duration::from_secs(9_400))
        );
        assert_eq!(
            parse_since("1h30m", now),
            Ok(UNIX_EPOCH + Duration::from_secs(4_600))
        );
        assert_eq!(
            parse_since("1970-01-01T00:01:40Z", now),
            Ok(UNIX_EPOCH + Duration::from_secs(100))
        );
        assert_eq!(
            parse_since("100", now),
            Ok(UNIX_EPOCH + Duration::from_secs(100))
        );
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("", now).is_err());
    }
}
