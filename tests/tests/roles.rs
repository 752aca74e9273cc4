//! `node promote` and `node demote` on real daemons: the role moves with a
//! reissued certificate, Raft membership follows, the last manager can't
//! be demoted, and demoting the leader hands leadership on first.

use std::time::Duration;

use shoal_tests::{Cluster, eventually};

fn manager_status(cluster: &Cluster, asker: usize, host: &str) -> anyhow::Result<String> {
    let rows = cluster.node_ls(asker)?;
    rows.iter()
        .find(|r| r["Hostname"] == host)
        .map(|r| r["ManagerStatus"].clone())
        .ok_or_else(|| anyhow::anyhow!("{host} not in node ls: {rows:?}"))
}

#[test]
fn promote_and_demote_move_roles_and_raft_membership() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "worker")?;
    cluster.join(2, 0, "worker")?;
    cluster.wait_nodes_ready(0, 3, Duration::from_secs(20))?;

    let out = cluster.shoal(0, &["node", "demote", "node-0"]);
    assert!(!out.success());
    assert!(out.stderr.contains("last manager"), "{}", out.stderr);

    let out = cluster
        .shoal(0, &["node", "promote", "node-1", "node-2"])
        .ok()?;
    assert!(
        out.contains("Node node-1 promoted to a manager in the swarm."),
        "{out}"
    );
    eventually(
        "node-1 and node-2 are managers",
        Duration::from_secs(30),
        || {
            for host in ["node-1", "node-2"] {
                anyhow::ensure!(
                    manager_status(&cluster, 0, host)? == "Reachable",
                    "{host} not reachable yet"
                );
            }
            cluster.shoal(1, &["node", "ls"]).ok()?;
            cluster.shoal(2, &["node", "ls"]).ok()?;
            Ok(())
        },
    )?;

    // Demote the leader, from the leader: leadership moves on first.
    let out = cluster.shoal(0, &["node", "demote", "node-0"]).ok()?;
    assert!(
        out.contains("Manager node-0 demoted in the swarm."),
        "{out}"
    );
    eventually("node-0 is a worker", Duration::from_secs(30), || {
        anyhow::ensure!(
            manager_status(&cluster, 1, "node-0")?.is_empty(),
            "still a manager"
        );
        let out = cluster.shoal(0, &["node", "ls"]);
        anyhow::ensure!(
            out.stderr.contains("This node is not a swarm manager"),
            "{}",
            out.stderr
        );
        Ok(())
    })?;
    let leader = cluster.leader(1)?;
    assert_ne!(leader, 0);
    assert!(
        cluster
            .shoal(2, &["network", "create", "after-demotion"])
            .success()
    );
    cluster.wait_nodes_ready(1, 3, Duration::from_secs(20))?;
    Ok(())
}
