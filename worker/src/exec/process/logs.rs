//! Task output as JSON lines, like Docker's json-file driver:
//! `{"log":"hello\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`.
//! The shim writes, rotating by size as json-file's `max-size`/`max-file`
//! do ([`LogPolicy`]; default 10 MB and one old file); the engine reads,
//! tails and follows.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt as _;

use crate::exec::{ExecError, LogLine, LogOptions, LogSource, LogStream};

/// Rotate the log file at this size.
pub const MAX_LOG_BYTES: u64 = 10 << 20;
/// Longer lines are split, as Docker does.
const MAX_LINE: usize = 16 << 10;
/// How often a follower looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    log: std::borrow::Cow<'a, str>,
    stream: &'a str,
    time: String,
}

/// How a task's log is kept: `--log-driver json-file|local|none` and
/// `--log-opt max-size=10m,max-file=3` as Docker spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPolicy {
    /// Rotate the current file at this size.
    pub max_bytes: u64,
    /// Files kept in all, the current one included (at least 1).
    pub max_files: u32,
    /// `--log-driver none`: nothing is kept.
    pub discard: bool,
}

impl Default for LogPolicy {
    fn default() -> LogPolicy {
        LogPolicy {
            max_bytes: MAX_LOG_BYTES,
            max_files: 2,
            discard: false,
        }
    }
}

impl LogPolicy {
    /// The policy of a task's `--log-driver`/`--log-opt`; other drivers than
    /// Docker's file-based ones (and `none`) are refused: the built-in
    /// engines keep their own files.
    pub fn of(driver: Option<&shoal_proto::objects::LogDriver>) -> Result<LogPolicy, ExecError> {
        let mut policy = LogPolicy::default();
        let Some(driver) = driver else {
            return Ok(policy);
        };
        match driver.name.as_str() {
            "" | "json-file" | "local" => {}
            "none" => policy.discard = true,
            other => {
                return Err(ExecError::Rejected(format!(
                    "log driver {other:?} is not available on this engine: it keeps task logs in its own files (json-file, local, none)"
                )));
            }
        }
        for (key, value) in &driver.options {
            let bad = || ExecError::Rejected(format!("invalid log option {key}={value}"));
            match key.as_str() {
                "max-size" => policy.max_bytes = parse_size(value).ok_or_else(bad)?,
                "max-file" => {
                    policy.max_files = value.parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?
                }
                // Accepted as Docker's drivers do; nothing to do here.
                "compress" | "labels" | "env" | "env-regex" | "tag" | "mode"
                | "max-buffer-size" => {}
                _ => {
                    return Err(ExecError::Rejected(format!(
                        "unknown log option {key:?} for the {} driver",
                        if driver.name.is_empty() {
                            "json-file"
                        } else {
                            &driver.name
                        }
                    )));
                }
            }
        }
        Ok(policy)
    }
}

/// `10m`, `1g`, `512k`, `2048` (bytes), 1024-based as Docker's.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let n: u64 = num.trim().parse().ok()?;
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult).filter(|b| *b > 0)
}

/// The rotated files of the log at `path` (`path.1` newest), oldest first.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for n in 1.. {
        let p = rotated(path, n);
        if !p.exists() {
            break;
        }
        found.push(p);
    }
    found.reverse();
    found
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Writes a task's output (in the shim).
pub struct LogWriter {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    policy: LogPolicy,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    /// Appends to `path`, rotating as `policy` says.
    pub fn open(path: PathBuf, policy: LogPolicy) -> io::Result<LogWriter> {
        let file = if policy.discard {
            None
        } else {
            Some(OpenOptions::new().create(true).append(true).open(&path)?)
        };
        let size = match &file {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        Ok(LogWriter {
            path,
            file,
            size,
            policy,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Takes a chunk of output; complete lines are written now.
    pub fn write(&mut self, source: LogSource, mut data: &[u8]) -> io::Result<()> {
        let i = source as usize;
        while !data.is_empty() {
            let room = MAX_LINE - self.partial[i].len();
            let (take, full) = match data.iter().position(|b| *b == b'\n') {
                Some(n) if n < room => (n + 1, true),
                _ if data.len() >= room => (room, true),
                _ => (data.len(), false),
            };
            self.partial[i].extend_from_slice(&data[..take]);
            data = &data[take..];
            if full {
                let line = std::mem::take(&mut self.partial[i]);
                self.record(source, &line)?;
            }
        }
        Ok(())
    }

    /// Writes what is left of unterminated lines (at the task's end).
    pub fn flush(&mut self) -> io::Result<()> {
        for source in [LogSource::Stdout, LogSource::Stderr] {
            let line = std::mem::take(&mut self.partial[source as usize]);
            if !line.is_empty() {
                self.record(source, &line)?;
            }
        }
        Ok(())
    }

    fn record(&mut self, source: LogSource, line: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        let rec = Record {
            log: String::from_utf8_lossy(line),
            stream: stream_name(source),
            time: format_time(SystemTime::now()),
        };
        let mut buf = serde_json::to_vec(&rec).map_err(io::Error::other)?;
        buf.push(b'\n');
        if self.size > 0 && self.size + buf.len() as u64 > self.policy.max_bytes {
            self.rotate()?;
        }
        // One write per line, so readers never see a line torn in two
        // except at the file's very end (which they leave for later).
        if let Some(file) = self.file.as_mut() {
            file.write_all(&buf)?;
        }
        self.size += buf.len() as u64;
        Ok(())
    }
}

impl LogWriter {
    /// `path.N-1` → `path.N` … `path` → `path.1`, keeping `max_files` in
    /// all; with one file the current one starts over.
    fn rotate(&mut self) -> io::Result<()> {
        let old = self.policy.max_files.saturating_sub(1);
        if old == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(rotated(&self.path, old));
            for n in (1..old).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, rotated(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        self.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?,
        );
        self.size = 0;
        Ok(())
    }
}

fn stream_name(source: LogSource) -> &'static str {
    match source {
        LogSource::Stdout => "stdout",
        LogSource::Stderr => "stderr",
    }
}

/// Parses one JSON line of the log file.
fn parse_line(line: &[u8]) -> Option<LogLine> {
    let rec: Record<'_> = serde_json::from_slice(line).ok()?;
    Some(LogLine {
        timestamp: parse_time(&rec.time)?,
        source: if rec.stream == "stderr" {
            LogSource::Stderr
        } else {
            LogSource::Stdout
        },
        data: rec.log.into_owned().into_bytes(),
    })
}

/// RFC 3339 in UTC with nanoseconds.
pub fn format_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Parses what [`format_time`] writes.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    let nanos: u32 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    let secs = days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60 + sec;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Splits `buf` into complete lines, parsed; returns how many bytes were
/// consumed (an unterminated tail is left for the next read).
fn complete_lines(buf: &[u8]) -> (Vec<LogLine>, usize) {
    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |n| n + 1);
    let lines = buf[..end]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(parse_line)
        .collect();
    (lines, end)
}

/// Streams the log of the task whose files are `log` (with its rotated
/// files beside it) and `exit`.
pub fn stream(log: PathBuf, exit: PathBuf, options: LogOptions) -> LogStream {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        if let Err(err) = produce(&log, &exit, &options, &tx).await {
            let _ = tx.send(Err(err)).await;
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

type Sender = tokio::sync::mpsc::Sender<Result<LogLine, ExecError>>;

fn io_err(path: &Path) -> impl Fn(io::Error) -> ExecError + '_ {
    move |e| ExecError::Failed(format!("cannot read the task log {}: {e}", path.display()))
}

async fn produce(
    log: &Path,
    exit: &Path,
    options: &LogOptions,
    tx: &Sender,
) -> Result<(), ExecError> {
    let keep = |l: &LogLine| options.since.is_none_or(|s| l.timestamp >= s);
    // What is there now: the rotated files, then the current one.
    let mut lines: Vec<LogLine> = Vec::new();
    for old in rotated_files(log) {
        if let Ok(buf) = tokio::fs::read(&old).await {
            lines.extend(complete_lines(&buf).0);
        }
    }
    let mut file = match tokio::fs::File::open(log).await {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(log)(e)),
    };
    let mut pending = Vec::new();
    if let Some(f) = file.as_mut() {
        f.read_to_end(&mut pending).await.map_err(io_err(log))?;
        let (now, used) = complete_lines(&pending);
        lines.extend(now);
        pending.drain(..used);
    }
    lines.retain(keep);
    let skip = options.tail.map_or(0, |n| lines.len().saturating_sub(n));
    for line in lines.into_iter().skip(skip) {
        if tx.send(Ok(line)).await.is_err() {
            return Ok(());
        }
    }
    if !options.follow {
        return Ok(());
    }
    loop {
        // Seen before draining: once the task has ended and the file is
        // read to its end, nothing more can come.
        let ended = tokio::fs::try_exists(exit).await.unwrap_or(false);
        let mut got = 0;
        if let Some(f) = file.as_mut() {
            got = f.read_to_end(&mut pending).await.map_err(io_err(log))?;
            let (now, used) = complete_lines(&pending);
            pending.drain(..used);
            for line in now.into_iter().filter(keep) {
                if tx.send(Ok(line)).await.is_err() {
                    return Ok(());
                }
            }
        }
        if got == 0 && replaced(log, file.as_ref()).await {
            // Drained the old file through our handle; go on with the new.
            file = tokio::fs::File::open(log).await.ok();
            pending.clear();
            continue;
        }
        if got == 0 && ended {
            return Ok(());
        }
        if tx.is_closed() {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// Whether `path` is no longer the file `open` reads (rotated or created).
async fn replaced(path: &Path, open: Option<&tokio::fs::File>) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(now) = tokio::fs::metadata(path).await else {
        return false;
    };
    match open {
        None => true,
        Some(f) => match f.metadata().await {
            Ok(m) => m.ino() != now.ino(),
            Err(_) => true,
        },
    }
}

#[cfg(test)]
mod tests;
