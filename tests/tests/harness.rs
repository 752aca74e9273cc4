//! The harness itself, proven on real daemons: namespaces, underlay,
//! kill -9 and restart, cuts and heals, and cleanup after itself.

use std::time::Duration;

use shoal_tests::{Cluster, eventually};

#[test]
fn three_daemons_in_three_namespaces_answer_and_reach_each_other() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    for i in 0..3 {
        let out = cluster.shoal(i, &["version"]).ok()?;
        assert!(out.contains("Server: Shoal daemon"), "{out}");
        let info = cluster.shoal(i, &["info", "--format", "json"]).ok()?;
        assert!(
            info.contains(&format!("\"Name\": \"{}\"", cluster.hostname(i))),
            "{info}"
        );
        let state_dir = cluster.state_dir(i).display().to_string();
        assert!(info.contains(&state_dir), "{info}");
        assert!(info.contains("\"LocalNodeState\": \"inactive\""), "{info}");
    }
    for from in 0..3 {
        for to in 0..3 {
            assert!(
                cluster.can_reach(from, to),
                "node-{from} cannot reach node-{to}"
            );
        }
    }
    Ok(())
}

#[test]
fn kill_and_restart_a_host() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(2)?;
    let first_pid = cluster.daemon_pid(1).expect("running");
    cluster.kill(1);
    let out = cluster.shoal(1, &["version"]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("Cannot connect to the Shoal daemon"),
        "{}",
        out.stderr
    );
    // Host 0 is untouched.
    cluster.shoal(0, &["version"]).ok()?;

    cluster.restart(1)?;
    assert_ne!(cluster.daemon_pid(1), Some(first_pid));
    cluster.shoal(1, &["info"]).ok()?;
    Ok(())
}

#[test]
fn sigterm_stops_a_daemon_cleanly() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(1)?;
    let status = cluster.stop(0)?;
    assert!(status.success(), "daemon exited with {status}");
    assert!(!cluster.socket(0).exists(), "socket file left behind");
    assert!(cluster.log_tail(0, 5).contains("shoal daemon stopped"));
    Ok(())
}

#[test]
fn cut_and_heal_links() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    cluster.cut(0, 1)?;
    assert!(!cluster.can_reach(0, 1));
    assert!(!cluster.can_reach(1, 0));
    assert!(
        cluster.can_reach(0, 2),
        "a cut is only between the two hosts"
    );
    assert!(cluster.can_reach(1, 2));

    cluster.isolate(2)?;
    assert!(!cluster.can_reach(2, 0));
    cluster.heal(2)?;
    assert!(cluster.can_reach(2, 0));
    assert!(
        !cluster.can_reach(0, 1),
        "healing node-2 leaves the 0-1 cut"
    );

    cluster.heal(0)?;
    eventually("0 and 1 reconnect", Duration::from_secs(3), || {
        anyhow::ensure!(cluster.can_reach(0, 1) && cluster.can_reach(1, 0));
        Ok(())
    })?;
    Ok(())
}

#[test]
fn dropping_a_cluster_removes_namespaces_and_processes() -> anyhow::Result<()> {
    let cluster = Cluster::start(2)?;
    let names: Vec<String> = (0..2).map(|i| cluster.netns(i).to_string()).collect();
    let pids: Vec<u32> = (0..2).filter_map(|i| cluster.daemon_pid(i)).collect();
    let run = names[0]
        .rsplit_once("-h")
        .map(|(run, _)| run.to_string())
        .unwrap();
    drop(cluster);

    let list = shoal_tests::netns::ip(&["netns", "list"])?;
    assert!(!list.contains(&run), "namespaces left behind:\n{list}");
    for pid in pids {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok();
        assert!(!alive, "daemon {pid} still running");
    }
    Ok(())
}

#[test]
fn a_panicking_test_still_cleans_up() {
    let run = std::panic::catch_unwind(|| {
        let cluster = Cluster::start(1).expect("cluster");
        let name = cluster.netns(0).to_string();
        std::panic::panic_any(name);
    });
    let payload = run.expect_err("the closure panics");
    let name = payload.downcast_ref::<String>().expect("namespace name");
    let list = shoal_tests::netns::ip(&["netns", "list"]).unwrap();
    assert!(
        !list.contains(name.as_str()),
        "{name} survived a panic:\n{list}"
    );
}
