//! `service logs` on real daemons (process engine): lines of every task
//! across the workers with Docker's prefix, `--tail`, `--follow` streaming
//! new lines, and stderr lines on stderr.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shoal_tests::cluster::shoal_binary;
use shoal_tests::{Cluster, eventually};

fn swarm() -> anyhow::Result<Cluster> {
    let cluster = Cluster::manager_and_workers(2)?;
    cluster.drain_manager()?;
    Ok(cluster)
}

/// Splits `talker.1.abcdefghijkl@node-1    | line 3 from x` into prefix
/// and line, checking the prefix's shape.
fn split<'a>(service: &str, line: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    let (prefix, text) = line
        .split_once("    | ")
        .ok_or_else(|| anyhow::anyhow!("no `    | ` in {line:?}"))?;
    let (task, node) = prefix
        .split_once('@')
        .ok_or_else(|| anyhow::anyhow!("no @node in {prefix:?}"))?;
    let parts: Vec<&str> = task.split('.').collect();
    anyhow::ensure!(
        parts.len() == 3
            && parts[0] == service
            && parts[1].parse::<u64>().is_ok()
            && parts[2].len() == 12
            && node.starts_with("node-"),
        "prefix {prefix:?} is not {service}.<slot>.<12-char id>@node-N"
    );
    Ok((prefix, text))
}

/// Lines per prefix.
fn by_task(service: &str, out: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut tasks: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in out.lines() {
        let (prefix, text) = split(service, line)?;
        tasks
            .entry(prefix.to_string())
            .or_default()
            .push(text.to_string());
    }
    Ok(tasks)
}

#[test]
fn service_logs_tail_follow_and_stderr() -> anyhow::Result<()> {
    let cluster = swarm()?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "talker",
                "--replicas",
                "2",
                "busybox",
                "sh",
                "-c",
                "i=0; while true; do echo line $i from $(hostname); i=$((i+1)); sleep 0.2; done",
            ],
        )
        .ok()?;

    // Both tasks, one per worker, with Docker's prefix.
    eventually("lines from both tasks", Duration::from_secs(40), || {
        let out = cluster.shoal(0, &["service", "logs", "talker"]).ok()?;
        let tasks = by_task("talker", &out)?;
        anyhow::ensure!(tasks.len() == 2, "tasks with lines: {:?}", tasks.keys());
        let nodes: std::collections::BTreeSet<&str> = tasks
            .keys()
            .filter_map(|p| p.split_once('@').map(|(_, n)| n))
            .collect();
        anyhow::ensure!(nodes.len() == 2, "both workers: {nodes:?}");
        for lines in tasks.values() {
            anyhow::ensure!(lines.len() >= 3, "a few lines each: {lines:?}");
            anyhow::ensure!(lines.iter().all(|l| l.starts_with("line ")), "{lines:?}");
        }
        Ok(())
    })?;

    // --tail 2: the last two lines of each task, in order.
    let out = cluster
        .shoal(0, &["service", "logs", "--tail", "2", "talker"])
        .ok()?;
    let tasks = by_task("talker", &out)?;
    assert_eq!(tasks.len(), 2, "{out}");
    for lines in tasks.values() {
        assert_eq!(lines.len(), 2, "{out}");
        let n: Vec<u64> = lines
            .iter()
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect();
        assert!(n.len() == 2 && n[1] == n[0] + 1, "consecutive: {lines:?}");
    }

    // --timestamps: RFC 3339 with nanoseconds after the bar.
    let out = cluster
        .shoal(0, &["service", "logs", "-t", "--tail", "1", "talker"])
        .ok()?;
    for line in out.lines() {
        let (_, text) = split("talker", line)?;
        let (ts, rest) = text.split_once(' ').unwrap_or_default();
        assert!(
            ts.len() == 30 && ts.ends_with('Z') && rest.starts_with("line "),
            "{line}"
        );
    }

    // -f: new lines keep coming until the reader goes away.
    let socket = format!("unix://{}", cluster.socket(0).display());
    let mut child = Command::new(shoal_binary()?)
        .args([
            "-H", &socket, "service", "logs", "-f", "--tail", "0", "talker",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while started.elapsed() < Duration::from_secs(20)
        && (seen.len() < 2 || seen.values().any(|n| *n < 3))
    {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            let (prefix, _) = split("talker", &line)?;
            *seen.entry(prefix.to_string()).or_default() += 1;
        }
    }
    let still_running = child.try_wait()?.is_none();
    child.kill()?;
    let status = child.wait()?;
    assert!(
        still_running,
        "-f exited on its own ({status}); saw {seen:?}"
    );
    assert!(
        seen.len() == 2 && seen.values().all(|n| *n >= 3),
        "followed lines from both tasks: {seen:?}\n{}",
        cluster.log_tail(0, 30)
    );

    // stderr lines go to stderr.
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "grumbler",
                "busybox",
                "sh",
                "-c",
                "while true; do echo oops >&2; echo fine; sleep 0.2; done",
            ],
        )
        .ok()?;
    eventually("stderr apart from stdout", Duration::from_secs(30), || {
        let out = cluster.shoal(0, &["service", "logs", "grumbler"]);
        anyhow::ensure!(out.success(), "{}", out.stderr);
        let err: Vec<&str> = out.stderr.lines().collect();
        let std: Vec<&str> = out.stdout.lines().collect();
        anyhow::ensure!(!err.is_empty() && !std.is_empty(), "{out:?}");
        for line in &err {
            anyhow::ensure!(split("grumbler", line)?.1 == "oops", "{line}");
        }
        for line in &std {
            anyhow::ensure!(split("grumbler", line)?.1 == "fine", "{line}");
        }
        Ok(())
    })?;

    // A worker is no manager: Docker's message.
    let out = cluster.shoal(1, &["service", "logs", "talker"]);
    assert!(
        !out.success() && out.stderr.contains("not a swarm manager"),
        "{out:?}"
    );
    Ok(())
}

#[test]
fn a_follower_manager_forwards_service_logs_to_the_leader() -> anyhow::Result<()> {
    // node-0 leads, node-1 is a second manager, node-2 runs the task.
    let cluster = Cluster::start(3)?;
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "manager")?;
    cluster.join(2, 0, "worker")?;
    cluster.wait_nodes_ready(0, 3, Duration::from_secs(30))?;
    for node in ["node-0", "node-1"] {
        cluster
            .shoal(0, &["node", "update", "--availability", "drain", node])
            .ok()?;
    }
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "echo",
                "busybox",
                "sh",
                "-c",
                "while true; do echo hi; sleep 0.2; done",
            ],
        )
        .ok()?;
    eventually("logs through the follower", Duration::from_secs(40), || {
        let out = cluster
            .shoal(1, &["service", "logs", "--tail", "3", "echo"])
            .ok()?;
        let tasks = by_task("echo", &out)?;
        anyhow::ensure!(tasks.len() == 1, "{out}");
        for (prefix, lines) in &tasks {
            anyhow::ensure!(prefix.ends_with("@node-2"), "{prefix}");
            anyhow::ensure!(
                lines.len() == 3 && lines.iter().all(|l| l == "hi"),
                "{lines:?}"
            );
        }
        Ok(())
    })
}
