//! Lists past gRPC's 4 MB message limit: every list is streamed in chunks
//! (`shoal_proto::listing`), replica counts come from the manager, and a
//! follower passes the leader's chunks through. 12,000 tasks (about 10 MB
//! of task objects) on the `sim` engine, listed on the follower.

use std::time::Duration;

use shoal_tests::{Cluster, eventually};

const REPLICAS: usize = 12_000;

#[test]
fn lists_of_twelve_thousand_tasks_need_no_larger_messages() -> anyhow::Result<()> {
    let cluster = Cluster::builder().hosts(2).engine("sim").start()?;
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "manager")?;
    cluster.wait_nodes_ready(0, 2, Duration::from_secs(30))?;
    let replicas = REPLICAS.to_string();
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "big",
                "--replicas",
                &replicas,
                "busybox",
                "sleep",
                "1d",
            ],
        )
        .ok()?;
    eventually("12,000 tasks run", Duration::from_secs(120), || {
        let ls = cluster
            .shoal(1, &["service", "ls", "--format", "{{.Name}} {{.Replicas}}"])
            .ok()?;
        anyhow::ensure!(ls.trim() == format!("big {REPLICAS}/{REPLICAS}"), "{ls}");
        Ok(())
    })?;
    let ps = cluster.shoal(1, &["service", "ps", "-q", "big"]).ok()?;
    assert_eq!(ps.lines().count(), REPLICAS);
    let nodes = cluster
        .shoal(1, &["node", "ps", "-q", cluster.hostname(1)])
        .ok()?;
    assert!(
        nodes.lines().count() > 1000,
        "the follower's node runs its share"
    );
    Ok(())
}
