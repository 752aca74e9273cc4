//! `shoal events` against a real manager: a window in the past replays
//! the service's create and remove and ends by itself; a live watcher sees
//! a secret appear as it is made.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shoal_tests::Cluster;

/// Now as unix seconds with nanoseconds, one of the forms `--since` takes.
fn unix_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// Whether `line` is Docker's line for `kind action id (attributes)`,
/// behind a time printed as `2026-12-07T20:42:33.123456789Z`.
fn is_line(line: &str, rest: &str) -> bool {
    let Some((time, tail)) = line.split_once(' ') else {
        return false;
    };
    let fixed = time.len() == 30 && time.ends_with('Z') && time.as_bytes()[19] == b'.';
    fixed && tail == rest
}

#[test]
fn a_past_window_replays_service_events_and_ends() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    cluster.init_swarm(0)?;
    let t0 = unix_now();
    let id = cluster
        .shoal(
            0,
            &[
                "service", "create", "-d", "--name", "web", "busybox", "sleep", "1000",
            ],
        )
        .ok()?
        .trim()
        .to_string();
    cluster.shoal(0, &["service", "rm", "web"]).ok()?;
    let t1 = unix_now();

    let args = [
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "type=service",
    ];
    let out = cluster.shoal(0, &args).ok()?;
    let lines: Vec<&str> = out.lines().collect();
    let create = format!("service create {id} (name=web)");
    let remove = format!("service remove {id} (name=web)");
    assert!(lines.iter().any(|l| is_line(l, &create)), "{out}");
    assert!(lines.iter().any(|l| is_line(l, &remove)), "{out}");
    assert!(
        lines.iter().all(|l| l.contains(" service ")),
        "only services pass type=service: {out}"
    );
    Ok(())
}

#[test]
fn a_live_watcher_sees_a_secret_created() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    cluster.init_swarm(0)?;
    let mut child = cluster.shoal_spawn(0, &["events", "--filter", "type=secret"])?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if line.map(|l| tx.send(l)).is_err() {
                return;
            }
        }
    });

    // The watcher may not be subscribed yet when the first secret is made
    // (live only, nothing is replayed): make secrets until one is seen.
    let mut made = Vec::new();
    let mut seen = None;
    for n in 0..10 {
        let name = format!("live-{n}");
        let id = cluster
            .shoal_stdin(0, &["secret", "create", &name, "-"], b"value")
            .ok()?
            .trim()
            .to_string();
        made.push(format!("secret create {id} (name={name})"));
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(3)) {
            seen = Some(line);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = seen.expect("no event line arrived");
    assert!(
        made.iter().any(|m| is_line(&line, m)),
        "{line} not in {made:?}"
    );
    Ok(())
}
