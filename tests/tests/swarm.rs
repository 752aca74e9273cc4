//! Joining a swarm and trusting its members, on real daemons in network
//! namespaces: tokens, roles, refusals with their messages, and what a
//! worker's certificate may not do.

use std::time::Duration;

use shoal_tests::{Cluster, eventually};

#[test]
fn workers_and_managers_join_and_node_ls_shows_them_like_docker() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    let init = cluster.init_swarm(0)?;
    assert!(init.contains("Swarm initialized: current node ("), "{init}");
    assert!(
        init.contains("shoal swarm join --token SWMTKN-1-"),
        "{init}"
    );
    assert!(init.contains(&cluster.manager_addr(0)), "{init}");

    let joined = cluster.join(1, 0, "worker")?;
    assert_eq!(joined.trim(), "This node joined a swarm as a worker.");
    let joined = cluster.join(2, 0, "manager")?;
    assert_eq!(joined.trim(), "This node joined a swarm as a manager.");

    let rows = cluster.wait_nodes_ready(0, 3, Duration::from_secs(20))?;
    let status_of = |host: &str| {
        rows.iter()
            .find(|r| r["Hostname"] == host)
            .map(|r| r["ManagerStatus"].clone())
    };
    assert_eq!(status_of("node-0").as_deref(), Some("Leader"));
    assert_eq!(status_of("node-1").as_deref(), Some(""));
    eventually("node-2 reachable", Duration::from_secs(10), || {
        let rows = cluster.node_ls(0)?;
        let s = rows
            .iter()
            .find(|r| r["Hostname"] == "node-2")
            .map(|r| r["ManagerStatus"].clone());
        anyhow::ensure!(s.as_deref() == Some("Reachable"), "{rows:?}");
        Ok(())
    })?;

    // The table marks the node you talk to.
    let table = cluster.shoal(2, &["node", "ls"]).ok()?;
    let header = table.lines().next().unwrap_or_default();
    for column in [
        "ID",
        "HOSTNAME",
        "STATUS",
        "AVAILABILITY",
        "MANAGER STATUS",
        "ENGINE VERSION",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let me = table
        .lines()
        .find(|l| l.contains("node-2"))
        .unwrap_or_default();
    assert!(me.contains(" * "), "node-2's own row has no *: {table}");

    // A worker is no manager, in Docker's words.
    let out = cluster.shoal(1, &["node", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.contains("This node is not a swarm manager."),
        "{}",
        out.stderr
    );

    // Init or join twice is refused.
    let again = cluster.shoal(1, &["swarm", "init"]);
    assert!(
        again.stderr.contains("already part of a swarm"),
        "{}",
        again.stderr
    );

    // info tells each node's view.
    let info = cluster.shoal(2, &["info", "--format", "json"]).ok()?;
    assert!(
        info.contains("\"Managers\": 2") && info.contains("\"Nodes\": 3"),
        "{info}"
    );
    Ok(())
}

#[test]
fn bad_tokens_are_refused_with_clear_messages() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    cluster.init_swarm(0)?;
    cluster.init_swarm(2)?; // another cluster
    let good = cluster.join_token(0, "worker")?;
    let remote = cluster.manager_addr(0);
    let join = |token: &str| cluster.shoal(1, &["swarm", "join", "--token", token, &remote]);

    // Right cluster, wrong secret.
    let (prefix, _) = good.rsplit_once('-').unwrap();
    let out = join(&format!("{prefix}-{}", "a".repeat(25)));
    assert!(!out.success());
    assert!(out.stderr.contains("invalid join token"), "{}", out.stderr);

    // A token of another cluster pins another CA: refused before any secret is sent.
    let foreign = cluster.join_token(2, "worker")?;
    let out = join(&foreign);
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("does not match the CA digest in the join token"),
        "{}",
        out.stderr
    );

    // Garbage.
    let out = join("SWMTKN-1-nope");
    assert!(!out.success());
    assert!(out.stderr.contains("invalid join token"), "{}", out.stderr);

    // A rotated token stops working at once; the new one works.
    let rotated = cluster
        .shoal(0, &["swarm", "join-token", "--rotate", "worker"])
        .ok()?;
    assert!(
        rotated.contains("Successfully rotated worker join token."),
        "{rotated}"
    );
    let out = join(&good);
    assert!(
        out.stderr.contains("invalid join token"),
        "old token accepted: {}",
        out.stderr
    );
    cluster.join(1, 0, "worker")?;

    // Nobody listening.
    let out = cluster.shoal(1, &["swarm", "leave"]);
    assert!(out.success(), "{}", out.stderr);
    let out = cluster.shoal(1, &["swarm", "join", "--token", &good, "198.18.0.99:2377"]);
    assert!(
        out.stderr
            .contains("could not join through the manager at 198.18.0.99:2377"),
        "{}",
        out.stderr
    );
    Ok(())
}

#[test]
fn secrets_configs_and_networks_live_in_the_replicated_store() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3)?;
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "manager")?;
    cluster.join(2, 0, "manager")?;
    cluster.wait_nodes_ready(0, 3, Duration::from_secs(20))?;

    let secret = "s3cr3t-plaintext-never-on-disk";
    let file = std::env::temp_dir().join(format!("shoal-secret-{}", std::process::id()));
    std::fs::write(&file, secret)?;
    cluster
        .shoal(
            1,
            &["secret", "create", "db_password", file.to_str().unwrap()],
        )
        .ok()?;
    std::fs::remove_file(&file)?;
    cluster
        .shoal(2, &["network", "create", "--driver", "overlay", "front"])
        .ok()?;

    // Every manager serves the same objects; inspect never shows secret data.
    for i in 0..3 {
        let ls = cluster.shoal(i, &["secret", "ls"]).ok()?;
        assert!(ls.contains("db_password"), "node-{i}: {ls}");
        let inspect = cluster
            .shoal(i, &["secret", "inspect", "db_password"])
            .ok()?;
        assert!(
            !inspect.contains(secret) && !inspect.contains("Data"),
            "{inspect}"
        );
        assert!(cluster.shoal(i, &["network", "ls"]).ok()?.contains("front"));
    }
    let dup = cluster.shoal(0, &["secret", "create", "db_password", "-"]);
    assert!(!dup.success());

    // The plaintext is on no disk, on any manager, even after a restart.
    for i in 0..3 {
        cluster.restart(i)?;
    }
    eventually(
        "secret still there after restarts",
        Duration::from_secs(20),
        || {
            anyhow::ensure!(
                cluster
                    .shoal(0, &["secret", "ls"])
                    .ok()?
                    .contains("db_password")
            );
            Ok(())
        },
    )?;
    for i in 0..3 {
        let grep = std::process::Command::new("grep")
            .args(["-rlF", secret])
            .arg(cluster.state_dir(i))
            .output()?;
        assert!(
            grep.stdout.is_empty(),
            "plaintext found: {}",
            String::from_utf8_lossy(&grep.stdout)
        );
    }
    Ok(())
}
