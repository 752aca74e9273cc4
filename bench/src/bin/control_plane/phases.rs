//! The managers' logs, read back: the loops' commits and the Raft loop's
//! and dispatcher's warnings between the create and the end of the run.

use super::*;

/// What the loops' debug lines and the Raft loop's warnings say about the
/// run, from `t0` on.
#[derive(Debug, Default)]
pub(crate) struct Phases {
    /// (changes or tasks, first commit, last commit) since t0, seconds.
    pub(crate) orchestrator: Phase,
    pub(crate) allocator: Phase,
    pub(crate) scheduler: Phase,
    pub(crate) raft_busy: usize,
    pub(crate) ticks_late: usize,
    pub(crate) elections: usize,
    /// Nodes the dispatcher marked down (one per node per time).
    pub(crate) marked_down: usize,
    /// Sessions the dispatcher opened.
    pub(crate) sessions: usize,
    /// The most nodes one allocator pass left without an ingress address.
    pub(crate) no_ingress: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Phase {
    pub(crate) count: u64,
    pub(crate) commits: u64,
    pub(crate) first: Option<f64>,
    pub(crate) last: Option<f64>,
}

impl Phase {
    pub(crate) fn add(&mut self, count: u64, at: f64) {
        self.count += count;
        self.commits += 1;
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
    }

    pub(crate) fn show(&self, what: &str) -> String {
        match (self.first, self.last) {
            (Some(first), Some(last)) => format!(
                "{} {what} in {} commits, {first:.2}–{last:.2} s",
                self.count, self.commits
            ),
            _ => format!("no {what}"),
        }
    }
}

impl Phases {
    /// The lines from `t0` (the create) to `until` after it (the end of
    /// the measurement: what the teardown logs, such as the workers'
    /// sessions closing, is not the run's).
    pub(crate) fn read(
        logs: &[PathBuf],
        t0: SystemTime,
        until: Duration,
    ) -> anyhow::Result<Phases> {
        let t0 = t0.duration_since(UNIX_EPOCH)?.as_secs_f64();
        let mut p = Phases::default();
        for log in logs {
            let text = std::fs::read_to_string(log).with_context(|| log.display().to_string())?;
            for raw in text.lines() {
                let line = strip_ansi(raw);
                let Some(at) = line.split_whitespace().next().and_then(rfc3339) else {
                    continue;
                };
                if at < t0 || at - t0 > until.as_secs_f64() {
                    continue;
                }
                let at = at - t0;
                if line.contains("scheduling pass committed") {
                    p.scheduler.add(field(&line, "assigned").unwrap_or(0), at);
                } else if line.contains("allocation pass committed") {
                    p.allocator.add(field(&line, "changes").unwrap_or(0), at);
                } else if line.contains("orchestrator committed") {
                    p.orchestrator.add(field(&line, "changes").unwrap_or(0), at);
                } else if line.contains("the raft loop was busy") {
                    p.raft_busy += 1;
                } else if line.contains("raft ticks were late") {
                    p.ticks_late += 1;
                } else if line.contains("leading: starting the orchestrator") {
                    p.elections += 1;
                } else if line.contains("nodes marked down after missing heartbeats") {
                    p.marked_down += line.matches('"').count() / 2;
                } else if line.contains("node session opened") {
                    p.sessions += 1;
                } else if line.contains("nodes without an ingress address") {
                    let nodes = field(&line, "nodes").unwrap_or(0) as usize;
                    p.no_ingress = p.no_ingress.max(nodes);
                }
            }
        }
        Ok(p)
    }
}

/// `key=<number>` in a log line.
pub(crate) fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace().find_map(|w| {
        w.strip_prefix(key)?
            .strip_prefix('=')?
            .trim_matches('"')
            .parse()
            .ok()
    })
}

/// `2026-12-07T23:47:28.986090Z` as seconds since the epoch.
pub(crate) fn rfc3339(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60) as f64 + sec)
}
