//! What the bench reads off the processes: Prometheus scrapes, this
//! process's worker metrics, `/proc` figures, machine facts.

use super::*;

/// This process's node metrics: every simulated worker's, summed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Nodes {
    /// Assignment bytes received.
    pub(crate) bytes: f64,
    /// Task actors alive.
    pub(crate) held: f64,
    /// Heartbeats sent, and those that failed.
    pub(crate) beats: f64,
    pub(crate) beat_failures: f64,
}

pub(crate) fn worker_metrics() -> Nodes {
    let mut registry = prometheus_client::registry::Registry::default();
    shoal_worker::metrics::register(&mut registry);
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        return Nodes::default();
    }
    Nodes {
        bytes: value(&text, "shoal_agent_assignment_bytes_total").unwrap_or(0.0),
        held: text
            .lines()
            .filter(|l| l.starts_with("shoal_node_tasks{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum(),
        beats: value(&text, "shoal_agent_heartbeats_total").unwrap_or(0.0),
        beat_failures: value(&text, "shoal_agent_heartbeat_failures_total").unwrap_or(0.0),
    }
}

/// The value of the unlabelled series `name` in a scrape.
pub(crate) fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

pub(crate) fn leader_of(scrapes: &[String]) -> Option<usize> {
    scrapes
        .iter()
        .position(|s| value(s, "shoal_raft_is_leader") == Some(1.0))
}

pub(crate) async fn scrape_all(addrs: &[String]) -> anyhow::Result<Vec<String>> {
    let mut all = Vec::new();
    for a in addrs {
        all.push(
            scrape(a)
                .await
                .with_context(|| format!("GET {a}/metrics"))?,
        );
    }
    Ok(all)
}

/// `GET /metrics` over HTTP/1.0 (no chunking: the body ends at close).
pub(crate) async fn scrape(addr: &str) -> anyhow::Result<String> {
    let get = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: shoal\r\n\r\n")
            .await?;
        let mut body = Vec::new();
        tcp.read_to_end(&mut body).await?;
        anyhow::Ok(String::from_utf8_lossy(&body).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(10), get)
        .await
        .context("timed out")??;
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header")?;
    anyhow::ensure!(head.contains(" 200 "), "answered {head:?}");
    Ok(body.to_string())
}

/// utime + stime of a process, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    // After the command: state is field 3; utime 14 and stime 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks / hz
}

/// A `kB` line of /proc/<pid>/status (`VmRSS:`, `VmHWM:`).
pub(crate) fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Machine facts for the report.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                Some(
                    l.strip_prefix("model name")?
                        .split_once(':')?
                        .1
                        .trim()
                        .to_string(),
                )
            })
        })
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let date = std::process::Command::new("date")
        .args(["-u", "+%F %H:%M"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{date} UTC, {nproc} cores ({cpu}), kernel {}, shoal {commit} (working tree), load {}",
        kernel.trim(),
        loadavg()
    )
}
