//! Raft-replicated managers under fire, on real daemons: kill -9 the
//! leader during a stream of writes, cut it off from the majority, restart
//! everyone. What the CLI saw succeed must survive; nothing stale is served.

use std::time::{Duration, Instant};

use shoal_tests::{Cluster, eventually};

/// `n` hosts, all managers, all Ready.
fn managers(n: usize) -> anyhow::Result<Cluster> {
    let cluster = Cluster::start(n)?;
    cluster.init_swarm(0)?;
    for i in 1..n {
        cluster.join(i, 0, "manager")?;
    }
    cluster.wait_nodes_ready(0, n, Duration::from_secs(30))?;
    Ok(cluster)
}

/// Creates secret `name` through host `i`; true if the CLI said it worked.
fn write(cluster: &Cluster, i: usize, name: &str) -> bool {
    let mut cmd = std::process::Command::new("sh");
    // The secret's value comes on stdin.
    cmd.arg("-c").arg(format!(
        "echo value-of-{name} | {} -H unix://{} secret create {name} -",
        shoal_tests::cluster::shoal_binary().unwrap().display(),
        cluster.socket(i).display()
    ));
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

fn secrets_on(cluster: &Cluster, i: usize) -> anyhow::Result<String> {
    cluster
        .shoal(i, &["secret", "ls", "--format", "{{.Name}}"])
        .ok()
}

fn kill_leader_during_writes(n: usize) -> anyhow::Result<()> {
    let mut cluster = managers(n)?;
    let leader = cluster.leader(0)?;
    let writer = (0..n).find(|&i| i != leader).unwrap();
    let mut acknowledged = Vec::new();
    for k in 0..10 {
        let name = format!("before-{k}");
        if write(&cluster, writer, &name) {
            acknowledged.push(name);
        }
    }
    assert_eq!(
        acknowledged.len(),
        10,
        "writes failed with a healthy cluster"
    );

    let killed_at = Instant::now();
    cluster.kill(leader);
    let new_leader = eventually("a new leader", Duration::from_secs(15), || {
        let l = cluster.leader(writer)?;
        anyhow::ensure!(l != leader, "still the old leader");
        Ok(l)
    })?;
    let elapsed = killed_at.elapsed();
    eprintln!(
        "{n} managers: new leader node-{new_leader} {} ms after kill -9 of node-{leader}",
        elapsed.as_millis()
    );

    for k in 0..10 {
        let name = format!("after-{k}");
        if write(&cluster, writer, &name) {
            acknowledged.push(name);
        }
    }
    assert!(
        acknowledged.len() >= 19,
        "too few writes succeeded after failover: {acknowledged:?}"
    );
    for i in (0..n).filter(|&i| i != leader) {
        let names = secrets_on(&cluster, i)?;
        for name in &acknowledged {
            assert!(
                names.lines().any(|l| l == name),
                "node-{i} lost {name}: {names}"
            );
        }
    }
    // The old leader comes back as a follower and catches up.
    cluster.restart(leader)?;
    eventually("old leader catches up", Duration::from_secs(20), || {
        let names = secrets_on(&cluster, leader)?;
        anyhow::ensure!(
            acknowledged.iter().all(|a| names.lines().any(|l| l == a)),
            "{names}"
        );
        Ok(())
    })?;
    assert!(
        elapsed < Duration::from_secs(5),
        "failover took {elapsed:?}"
    );
    Ok(())
}

#[test]
fn three_managers_survive_kill_9_of_the_leader() -> anyhow::Result<()> {
    kill_leader_during_writes(3)
}

#[test]
fn five_managers_survive_kill_9_of_the_leader() -> anyhow::Result<()> {
    kill_leader_during_writes(5)
}

#[test]
fn a_single_manager_restarts_with_every_write() -> anyhow::Result<()> {
    let mut cluster = managers(1)?;
    for k in 0..20 {
        assert!(write(&cluster, 0, &format!("s{k}")));
    }
    cluster.kill(0);
    cluster.restart(0)?;
    let names = eventually("store back", Duration::from_secs(15), || {
        secrets_on(&cluster, 0)
    })?;
    assert_eq!(
        names.lines().filter(|l| l.starts_with('s')).count(),
        20,
        "{names}"
    );
    Ok(())
}

#[test]
fn a_partitioned_leader_steps_down_and_serves_nothing_stale() -> anyhow::Result<()> {
    let cluster = managers(3)?;
    let old = cluster.leader(0)?;
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    assert!(write(&cluster, others[0], "before"));

    cluster.isolate(old)?;
    let new_leader = eventually("majority elects a leader", Duration::from_secs(15), || {
        let l = cluster.leader(others[0])?;
        anyhow::ensure!(l != old);
        Ok(l)
    })?;
    assert!(
        write(&cluster, new_leader, "during"),
        "the majority must keep serving"
    );

    // The old leader neither accepts writes nor answers reads it can't vouch for.
    let started = Instant::now();
    assert!(!write(&cluster, old, "minority"));
    let stale = cluster.shoal(old, &["secret", "ls"]);
    assert!(
        !stale.success(),
        "an isolated manager served a read:\n{}",
        stale.stdout
    );
    assert!(started.elapsed() < Duration::from_secs(25));

    cluster.heal(old)?;
    eventually(
        "everyone agrees after healing",
        Duration::from_secs(20),
        || {
            for i in 0..3 {
                let names = secrets_on(&cluster, i)?;
                anyhow::ensure!(
                    names.contains("during") && !names.contains("minority"),
                    "node-{i}: {names}"
                );
            }
            anyhow::ensure!(cluster.leader(old)? == cluster.leader(others[0])?);
            Ok(())
        },
    )?;
    Ok(())
}

#[test]
fn a_dead_manager_is_removed_with_force_and_the_rest_go_on() -> anyhow::Result<()> {
    let mut cluster = managers(3)?;
    let leader = cluster.leader(0)?;
    let dead = (0..3).find(|&i| i != leader).unwrap();
    let dead_host = cluster.hostname(dead).to_string();
    cluster.kill(dead);

    let out = cluster.shoal(leader, &["node", "rm", &dead_host]);
    assert!(
        out.stderr
            .contains("must be demoted to worker before removal"),
        "{}",
        out.stderr
    );
    eventually(
        "the dead manager can be removed",
        Duration::from_secs(15),
        || {
            cluster
                .shoal(leader, &["node", "rm", "--force", &dead_host])
                .ok()
        },
    )?;
    let rows = cluster.node_ls(leader)?;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let info = cluster.shoal(leader, &["info", "--format", "json"]).ok()?;
    assert!(info.contains("\"Managers\": 2"), "{info}");
    // Two managers now: both are needed, and both are there.
    assert!(write(&cluster, leader, "after-removal"));
    Ok(())
}

#[test]
fn force_new_cluster_recovers_a_survivor_with_all_its_state() -> anyhow::Result<()> {
    let mut cluster = managers(3)?;
    for k in 0..5 {
        assert!(write(&cluster, 0, &format!("kept-{k}")));
    }
    // Lose the majority: the survivor alone can't serve.
    cluster.kill(1);
    cluster.kill(2);
    let out = cluster.shoal(0, &["secret", "ls"]);
    assert!(!out.success(), "a manager without quorum served a read");

    let out = cluster
        .shoal(0, &["swarm", "init", "--force-new-cluster"])
        .ok()?;
    assert!(out.contains("Swarm initialized"), "{out}");
    let names = eventually("the survivor serves again", Duration::from_secs(15), || {
        secrets_on(&cluster, 0)
    })?;
    for k in 0..5 {
        assert!(
            names.lines().any(|l| l == format!("kept-{k}")),
            "lost kept-{k}: {names}"
        );
    }
    assert!(write(&cluster, 0, "after-recovery"));
    let info = cluster.shoal(0, &["info", "--format", "json"]).ok()?;
    assert!(info.contains("\"Managers\": 1"), "{info}");
    // It survives its own restart as a one-manager cluster.
    cluster.kill(0);
    cluster.restart(0)?;
    eventually("after restart", Duration::from_secs(15), || {
        anyhow::ensure!(secrets_on(&cluster, 0)?.contains("after-recovery"));
        Ok(())
    })?;
    Ok(())
}
