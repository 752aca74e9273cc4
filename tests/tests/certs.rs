//! Certificates over time, on real daemons: they renew themselves before
//! they expire, and `swarm ca --rotate` moves the whole cluster to a new
//! root without stopping it.

use std::time::Duration;

use shoal_proto::credentials::NodeCredentials;
use shoal_tests::{Cluster, eventually};

fn cert_of(cluster: &Cluster, i: usize) -> anyhow::Result<String> {
    Ok(
        NodeCredentials::load(&NodeCredentials::dir(cluster.state_dir(i)))?
            .expect("credentials")
            .cert_pem,
    )
}

#[test]
fn certificates_renew_before_they_expire_and_the_cluster_keeps_working() -> anyhow::Result<()> {
    let cluster = Cluster::start(2)?;
    let addr = cluster.addr(0).to_string();
    cluster
        .shoal(
            0,
            &[
                "swarm",
                "init",
                "--advertise-addr",
                &addr,
                "--cert-expiry",
                "12s",
            ],
        )
        .ok()?;
    cluster.join(1, 0, "worker")?;
    let (manager_before, worker_before) = (cert_of(&cluster, 0)?, cert_of(&cluster, 1)?);
    let validity = NodeCredentials::load(&NodeCredentials::dir(cluster.state_dir(1)))?
        .expect("creds")
        .validity()?;
    assert!(
        validity.1.duration_since(validity.0)? <= Duration::from_secs(13),
        "expiry not applied: {validity:?}"
    );

    // Twice the lifetime: each node must have renewed at least once, and
    // the cluster must never have stopped working.
    let renewed = eventually("both certificates renewed", Duration::from_secs(20), || {
        anyhow::ensure!(
            cert_of(&cluster, 0)? != manager_before,
            "manager not renewed yet"
        );
        anyhow::ensure!(
            cert_of(&cluster, 1)? != worker_before,
            "worker not renewed yet"
        );
        Ok(())
    });
    renewed?;
    std::thread::sleep(Duration::from_secs(14));
    let rows = cluster.wait_nodes_ready(0, 2, Duration::from_secs(10))?;
    assert_eq!(rows.len(), 2);
    let out = cluster.shoal(0, &["network", "create", "after-renewals"]);
    assert!(out.success(), "{}", out.stderr);
    Ok(())
}

#[test]
fn ca_rotation_moves_every_node_to_a_new_root_without_downtime() -> anyhow::Result<()> {
    let cluster = Cluster::start(4)?;
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "manager")?;
    cluster.join(2, 0, "worker")?;
    cluster.wait_nodes_ready(0, 3, Duration::from_secs(20))?;
    let old_token = cluster.join_token(0, "worker")?;
    let old_root = cluster.shoal(0, &["swarm", "ca"]).ok()?;
    assert!(
        old_root.starts_with("-----BEGIN CERTIFICATE-----"),
        "{old_root}"
    );

    let out = cluster.shoal(1, &["swarm", "ca", "--rotate"]);
    assert!(out.success(), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("-----BEGIN CERTIFICATE-----") && out.stdout != old_root,
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("rotated CA certificates"),
        "{}",
        out.stderr
    );

    // Everyone is still there and trusts the new root only.
    cluster.wait_nodes_ready(0, 3, Duration::from_secs(20))?;
    eventually(
        "every node trusts only the new root",
        Duration::from_secs(15),
        || {
            for i in 0..3 {
                let roots = NodeCredentials::load(&NodeCredentials::dir(cluster.state_dir(i)))?
                    .expect("creds")
                    .roots_pem;
                anyhow::ensure!(
                    roots.trim() == out.stdout.trim(),
                    "node-{i} roots not updated yet"
                );
            }
            Ok(())
        },
    )?;
    assert!(
        cluster
            .shoal(1, &["network", "create", "after-rotation"])
            .success()
    );

    // Tokens now pin the new root: the old one is refused, the new one works.
    let new_token = cluster.join_token(0, "worker")?;
    assert_ne!(new_token, old_token);
    let remote = cluster.manager_addr(0);
    let refused = cluster.shoal(3, &["swarm", "join", "--token", &old_token, &remote]);
    assert!(!refused.success(), "the old token still works");
    cluster.join(3, 0, "worker")?;
    cluster.wait_nodes_ready(0, 4, Duration::from_secs(20))?;
    Ok(())
}
