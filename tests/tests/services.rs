//! Services on real daemons (process engine): replicas spread over the
//! workers, scaling up and down, global services following nodes, tasks
//! moving off a node that dies, and a short network cut that must not.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shoal_tests::{Cluster, eventually};

/// One manager (node-0) and `workers` workers, all Ready. The manager
/// runs no tasks, so the spread is over the workers only.
fn swarm(workers: usize) -> anyhow::Result<Cluster> {
    let cluster = Cluster::manager_and_workers(workers)?;
    cluster.drain_manager()?;
    Ok(cluster)
}

/// Running tasks of `service` (desired running), counted by node hostname.
fn running_by_node(cluster: &Cluster, service: &str) -> anyhow::Result<BTreeMap<String, usize>> {
    let out = cluster
        .shoal(
            0,
            &[
                "service",
                "ps",
                service,
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Node}}|{{.CurrentState}}",
            ],
        )
        .ok()?;
    let mut counts = BTreeMap::new();
    for line in out.lines() {
        let (node, state) = line.split_once('|').unwrap_or((line, ""));
        if state.starts_with("Running") {
            *counts.entry(node.to_string()).or_default() += 1;
        }
    }
    Ok(counts)
}

fn total(counts: &BTreeMap<String, usize>) -> usize {
    counts.values().sum()
}

#[test]
fn replicas_spread_scale_and_global_follows_new_nodes() -> anyhow::Result<()> {
    let cluster = swarm(3)?;
    let out = cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "web",
                "--replicas",
                "9",
                "busybox",
                "sleep",
                "1000",
            ],
        )
        .ok()?;
    assert!(!out.trim().is_empty(), "create prints the service id");
    eventually("9 replicas spread 3/3/3", Duration::from_secs(30), || {
        let counts = running_by_node(&cluster, "web")?;
        let expected: BTreeMap<String, usize> = ["node-1", "node-2", "node-3"]
            .iter()
            .map(|n| (n.to_string(), 3))
            .collect();
        anyhow::ensure!(counts == expected, "running: {counts:?}");
        Ok(())
    })?;
    let ls = cluster.shoal(0, &["service", "ls"]).ok()?;
    assert!(ls.contains("web") && ls.contains("9/9"), "{ls}");

    cluster
        .shoal(0, &["service", "scale", "-d", "web=20"])
        .ok()?;
    eventually("20 replicas", Duration::from_secs(30), || {
        let counts = running_by_node(&cluster, "web")?;
        anyhow::ensure!(total(&counts) == 20, "running: {counts:?}");
        anyhow::ensure!(
            counts.values().all(|c| (6..=7).contains(c)),
            "uneven: {counts:?}"
        );
        Ok(())
    })?;
    cluster
        .shoal(0, &["service", "scale", "-d", "web=2"])
        .ok()?;
    eventually("2 replicas", Duration::from_secs(30), || {
        let counts = running_by_node(&cluster, "web")?;
        anyhow::ensure!(total(&counts) == 2, "running: {counts:?}");
        // Scaled-down processes are really gone from the workers.
        let processes: usize = (1..=3).map(|i| cluster.task_processes(i).len()).sum();
        anyhow::ensure!(processes == 2, "{processes} task processes still running");
        Ok(())
    })?;

    // Draining two workers moves both replicas to the third.
    for node in ["node-1", "node-2"] {
        cluster
            .shoal(0, &["node", "update", "--availability", "drain", node])
            .ok()?;
    }
    eventually("both replicas on node-3", Duration::from_secs(30), || {
        let counts = running_by_node(&cluster, "web")?;
        anyhow::ensure!(
            counts.get("node-3") == Some(&2) && counts.len() == 1,
            "{counts:?}"
        );
        Ok(())
    })?;
    for node in ["node-1", "node-2"] {
        cluster
            .shoal(0, &["node", "update", "--availability", "active", node])
            .ok()?;
    }

    // A global service: one task per active node, the drained manager aside.
    cluster
        .shoal(
            0,
            &[
                "service", "create", "-d", "--name", "agent", "--mode", "global", "busybox",
                "sleep", "1000",
            ],
        )
        .ok()?;
    eventually("one agent per worker", Duration::from_secs(30), || {
        let counts = running_by_node(&cluster, "agent")?;
        anyhow::ensure!(counts.len() == 3 && total(&counts) == 3, "{counts:?}");
        Ok(())
    })?;
    // The manager becomes active: the global service follows it there.
    cluster
        .shoal(0, &["node", "update", "--availability", "active", "node-0"])
        .ok()?;
    eventually("an agent on node-0 too", Duration::from_secs(30), || {
        let counts = running_by_node(&cluster, "agent")?;
        anyhow::ensure!(
            counts.get("node-0") == Some(&1) && total(&counts) == 4,
            "{counts:?}"
        );
        Ok(())
    })?;

    cluster.shoal(0, &["service", "rm", "web", "agent"]).ok()?;
    eventually("no task processes left", Duration::from_secs(30), || {
        for i in 0..=3 {
            let left = cluster.task_processes(i);
            anyhow::ensure!(left.is_empty(), "node-{i} still runs tasks {left:?}");
        }
        let ls = cluster.shoal(0, &["service", "ls", "-q"]).ok()?;
        anyhow::ensure!(ls.trim().is_empty(), "services left: {ls}");
        Ok(())
    })?;
    Ok(())
}

#[test]
fn tasks_leave_a_dead_worker_fast_but_survive_a_short_cut() -> anyhow::Result<()> {
    let mut cluster = swarm(3)?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "api",
                "--replicas",
                "6",
                "busybox",
                "sleep",
                "1000",
            ],
        )
        .ok()?;
    eventually("6 replicas running", Duration::from_secs(30), || {
        let counts = running_by_node(&cluster, "api")?;
        anyhow::ensure!(total(&counts) == 6 && counts.len() == 3, "{counts:?}");
        Ok(())
    })?;

    // A one-second cut of node-3 must not mark it down or move its tasks.
    let before = running_by_node(&cluster, "api")?;
    cluster.isolate(3)?;
    std::thread::sleep(Duration::from_secs(1));
    cluster.heal(3)?;
    std::thread::sleep(Duration::from_secs(4));
    let after = running_by_node(&cluster, "api")?;
    assert_eq!(before, after, "a 1 s cut moved tasks");
    let nodes = cluster.node_ls(0)?;
    let node3 = nodes
        .iter()
        .find(|r| r["Hostname"] == "node-3")
        .expect("node-3 listed");
    assert_eq!(node3["Status"], "Ready", "a 1 s cut marked node-3 down");

    // kill -9 node-3 (its daemon and its tasks): its tasks run elsewhere.
    let killed_at = Instant::now();
    cluster.kill(3);
    eventually(
        "node-3's tasks run elsewhere",
        Duration::from_secs(20),
        || {
            let counts = running_by_node(&cluster, "api")?;
            anyhow::ensure!(
                total(&counts) == 6 && !counts.contains_key("node-3"),
                "{counts:?}"
            );
            Ok(())
        },
    )?;
    let moved = killed_at.elapsed();
    println!("tasks of a killed worker running elsewhere after {moved:.2?}");
    let nodes = cluster.node_ls(0)?;
    let node3 = nodes
        .iter()
        .find(|r| r["Hostname"] == "node-3")
        .expect("node-3 listed");
    assert_eq!(node3["Status"], "Down");
    assert!(
        moved < Duration::from_secs(5).mul_f64(shoal_tests::eventually::patience()),
        "took {moved:?} (goal: 5 s)"
    );

    // A node that goes silent (no connection closes: cut off for good)
    // is declared down after the heartbeat grace instead.
    let cut_at = Instant::now();
    cluster.isolate(2)?;
    eventually(
        "node-2's tasks run on node-1",
        Duration::from_secs(20),
        || {
            let counts = running_by_node(&cluster, "api")?;
            anyhow::ensure!(
                counts.get("node-1") == Some(&6) && counts.len() == 1,
                "{counts:?}"
            );
            Ok(())
        },
    )?;
    let moved = cut_at.elapsed();
    println!("tasks of a silently cut-off worker running elsewhere after {moved:.2?}");
    assert!(
        moved < Duration::from_secs(7).mul_f64(shoal_tests::eventually::patience()),
        "took {moved:?}"
    );
    cluster.heal(2)?;

    // A task no node can take says why in `service ps`.
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "nowhere",
                "--constraint",
                "node.labels.zone==mars",
                "busybox",
                "sleep",
                "1",
            ],
        )
        .ok()?;
    eventually(
        "the scheduler explains itself",
        Duration::from_secs(20),
        || {
            let ps = cluster
                .shoal(0, &["service", "ps", "nowhere", "--no-trunc"])
                .ok()?;
            anyhow::ensure!(
                ps.contains("no suitable node") && ps.contains("Pending"),
                "{ps}"
            );
            Ok(())
        },
    )?;
    Ok(())
}

#[test]
fn a_replicated_job_runs_all_its_completions_a_few_at_a_time() -> anyhow::Result<()> {
    let cluster = shoal_tests::Cluster::manager_and_workers(1)?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "batch",
                "--mode",
                "replicated-job",
                "--replicas",
                "5",
                "--max-concurrent",
                "2",
                "busybox",
                "sh",
                "-c",
                "sleep 0.3",
            ],
        )
        .ok()?;
    shoal_tests::eventually(
        "5 completions, 2 at a time",
        std::time::Duration::from_secs(60),
        || {
            let out = cluster
                .shoal(
                    0,
                    &["service", "ps", "batch", "--format", "{{.CurrentState}}"],
                )
                .ok()?;
            let done = out.lines().filter(|l| l.starts_with("Complete")).count();
            anyhow::ensure!(done == 5, "{out}");
            Ok(())
        },
    )?;
    Ok(())
}

/// What no leader could carry out is refused at the API, naming the field;
/// nothing is stored, and the leader keeps working (before, a billion
/// replicas made every leader in turn allocate every slot).
#[test]
fn absurd_counts_and_durations_are_refused_by_name() -> anyhow::Result<()> {
    let cluster = shoal_tests::Cluster::manager_and_workers(0)?;
    let create = |flags: &[&str]| {
        let mut args = vec!["service", "create", "-d", "--name", "web"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "sleep", "1000"]);
        cluster.shoal(0, &args)
    };
    let cases: [(&[&str], &str); 5] = [
        (
            &["--replicas", "1000000000"],
            "replicas 1000000000 is over Shoal's limit of 100000 per service",
        ),
        (
            &["--mode", "replicated-job", "--max-concurrent", "200000"],
            "max-concurrent 200000 is over Shoal's limit",
        ),
        (
            &["--restart-delay", "1000000h"],
            "restart-delay cannot be longer than 876000h0m0s",
        ),
        (
            &["--stop-grace-period", "1000000h"],
            "stop-grace-period cannot be longer than 876000h0m0s",
        ),
        (
            &["--health-cmd", "true", "--health-interval", "10us"],
            "health-interval cannot be less than 1ms",
        ),
    ];
    for (flags, want) in cases {
        let out = create(flags);
        assert!(
            !out.success() && out.stderr.contains(want),
            "{flags:?}: {out:?}"
        );
    }
    let ls = cluster.shoal(0, &["service", "ls", "-q"]).ok()?;
    assert_eq!(ls.trim(), "", "nothing stored");

    create(&["--replicas", "2"]).ok()?;
    let out = cluster.shoal(0, &["service", "scale", "web=1000000000"]);
    assert!(
        !out.success() && out.stderr.contains("over Shoal's limit of 100000"),
        "{out:?}"
    );
    eventually("2 replicas run", Duration::from_secs(30), || {
        let n = total(&running_by_node(&cluster, "web")?);
        anyhow::ensure!(n == 2, "{n} running");
        Ok(())
    })?;
    Ok(())
}
