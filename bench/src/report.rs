//! What the benchmark tells: facts about the machine (the numbers mean
//! little without them, fsync latency above all, since every committed
//! write waits for at least one), progress lines, the side-by-side table,
//! and the generated section of docs/benchmarks.md. The section sits
//! between two markers so the hand-written analysis around it survives a
//! re-run.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::load::Stats;
use crate::plan::{Mode, Plan, Row};

/// Marks the start of the generated section.
pub const BEGIN: &str = "<!-- raft-bench:begin (generated: edit outside these markers) -->";
/// Marks its end.
pub const END: &str = "<!-- raft-bench:end -->";

/// One line per finished step, as it finishes.
pub fn progress(system: &str, mode: Mode, clients: usize, s: &Stats) {
    let mut line = format!(
        "{system:>5} {mode:>7} c={clients:<4} {:>9.0} writes/s  p50 {:>8.2} ms  p99 {:>8.2} ms  ({} requests",
        s.throughput(),
        s.ms(0.5),
        s.ms(0.99),
        s.requests
    );
    if s.errors > 0 {
        let _ = write!(
            line,
            ", {} errors; first: {}",
            s.errors,
            s.first_error.as_deref().unwrap_or("?")
        );
    }
    line.push(')');
    println!("{line}");
}

/// fdatasync latency on the disk under `dir`: 4 KiB write + fdatasync,
/// `rounds` times. Returns (median, mean).
pub fn fsync_latency(dir: &Path, rounds: usize) -> std::io::Result<(Duration, Duration)> {
    let file = tempfile::tempfile_in(dir)?;
    let block = [0x5au8; 4096];
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let t = Instant::now();
        file.write_all_at(&block, (i % 16 * 4096) as u64)?;
        file.sync_data()?;
        times.push(t.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / rounds as u32;
    Ok((times[rounds / 2], mean))
}

/// What the numbers were measured on.
pub struct Machine {
    /// Lines of "what: value".
    pub facts: Vec<(String, String)>,
}

fn first_line_of(path: &str, prefix: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Machine {
    /// Gathers the facts; measures fsync where the harness keeps state.
    pub fn gather(etcd_version: Option<&str>) -> Machine {
        let mut facts = Vec::new();
        let mut add = |k: &str, v: String| facts.push((k.to_string(), v));
        add(
            "date (UTC)",
            run("date", &["-u", "+%F %H:%M"]).unwrap_or_default(),
        );
        add(
            "nproc",
            std::thread::available_parallelism()
                .map(|n| n.to_string())
                .unwrap_or_default(),
        );
        add(
            "cpu",
            first_line_of("/proc/cpuinfo", "model name").unwrap_or_default(),
        );
        add(
            "memory",
            first_line_of("/proc/meminfo", "MemTotal").unwrap_or_default(),
        );
        add(
            "kernel",
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        );
        let tmp = std::env::temp_dir();
        let fs = run("df", &["--output=fstype,source", &tmp.to_string_lossy()])
            .and_then(|s| {
                s.lines()
                    .nth(1)
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" on "))
            })
            .unwrap_or_default();
        add("state and data dirs", format!("{} ({fs})", tmp.display()));
        add(
            "fdatasync (4 KiB write + fdatasync, 200 rounds)",
            match fsync_latency(&tmp, 200) {
                Ok((p50, mean)) => format!(
                    "median {:.2} ms, mean {:.2} ms",
                    p50.as_secs_f64() * 1e3,
                    mean.as_secs_f64() * 1e3
                ),
                Err(e) => format!("not measured: {e}"),
            },
        );
        add(
            "load average at start",
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        );
        if let Some(v) = etcd_version {
            add("etcd", v.to_string());
        }
        if let Some(rev) = run("git", &["rev-parse", "--short", "HEAD"]) {
            add("shoal commit", rev);
        }
        Machine { facts }
    }
}

fn find<'a>(rows: &'a [Row], system: &str, mode: Mode, clients: usize) -> Option<&'a Stats> {
    rows.iter()
        .find(|r| r.system == system && r.mode == mode && r.clients == clients)
        .map(|r| &r.stats)
}

fn cells(s: Option<&Stats>) -> [String; 3] {
    match s {
        Some(s) if s.requests > 0 => [
            format!("{:.0}", s.throughput()),
            format!("{:.1}", s.ms(0.5)),
            format!("{:.1}", s.ms(0.99)),
        ],
        Some(_) => ["failed".into(), "-".into(), "-".into()],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

/// The side-by-side table as Markdown (it reads fine in a terminal too).
pub fn table(plan: &Plan, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| mode | clients | Shoal writes/s | Shoal p50 ms | Shoal p99 ms | etcd writes/s | etcd p50 ms | etcd p99 ms | Shoal / etcd |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (mode, n) in plan.steps() {
        let shoal = find(rows, "Shoal", mode, n);
        let etcd = find(rows, "etcd", mode, n);
        let [st, s50, s99] = cells(shoal);
        let [et, e50, e99] = cells(etcd);
        let ratio = match (shoal, etcd) {
            (Some(a), Some(b)) if b.throughput() > 0.0 => {
                format!("{:.2}x", a.throughput() / b.throughput())
            }
            _ => "-".into(),
        };
        let label = match mode {
            Mode::Single => "single".to_string(),
            Mode::Batched => format!("batch of {}", plan.batch),
        };
        let _ = writeln!(
            out,
            "| {label} | {n} | {st} | {s50} | {s99} | {et} | {e50} | {e99} | {ratio} |"
        );
    }
    let errors: Vec<String> = rows
        .iter()
        .filter(|r| r.stats.errors > 0)
        .map(|r| {
            format!(
                "{} {} c={}: {} errors (first: {})",
                r.system,
                r.mode,
                r.clients,
                r.stats.errors,
                r.stats.first_error.as_deref().unwrap_or("?")
            )
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "\nErrors during the run:\n");
        for e in errors {
            let _ = writeln!(out, "- {e}");
        }
    }
    out
}

/// The generated section: command, machine, shape, table.
pub fn section(command: &str, machine: &Machine, plan: &Plan, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{BEGIN}\n");
    let _ = writeln!(out, "Command:\n\n```sh\n{command}\n```\n");
    let _ = writeln!(out, "Machine:\n");
    for (k, v) in &machine.facts {
        let _ = writeln!(out, "- {k}: {v}");
    }
    let _ = writeln!(
        out,
        "\nShape: closed loop; per step {} s warm-up then {} s measured; {} client connection(s) shared round robin; {}-byte values; batched = {} objects in one atomic write (Shoal `Batch` RPC, etcd txn); Shoal over mutual TLS, etcd {}. Throughput counts committed objects; latency is per request.\n",
        plan.phase.warmup.as_secs_f64(),
        plan.phase.measure.as_secs_f64(),
        plan.conns,
        plan.payload,
        plan.batch,
        if plan.etcd_tls {
            "over mutual TLS too (`--etcd-tls`)"
        } else {
            "plaintext (its default)"
        },
    );
    out.push_str(&table(plan, rows));
    let _ = writeln!(out, "\n{END}");
    out
}

/// Replaces the generated section of `path` (or appends one; creates the
/// file with a heading if it does not exist).
pub fn update_doc(path: &Path, section: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Benchmarks\n\nWritten by `raft-bench` (bench/); see its crate docs.\n\n".to_string()
    });
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!(
                "{}{}{}",
                &old[..b],
                section.trim_end(),
                &old[e + END.len()..]
            )
        }
        _ => format!("{}\n{}", old.trim_end(), section),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::File::create(path)?;
    file.write_all(new.as_bytes())?;
    if !new.ends_with('\n') {
        file.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_section_is_replaced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.md");
        update_doc(&path, &format!("{BEGIN}\none\n{END}\n")).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("\n## Analysis\n\nkept\n");
        std::fs::write(&path, text).unwrap();
        update_doc(&path, &format!("{BEGIN}\ntwo\n{END}\n")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("two") && !text.contains("one"), "{text}");
        assert!(text.contains("## Analysis\n\nkept"), "{text}");
        assert_eq!(text.matches(BEGIN).count(), 1);
    }
}
