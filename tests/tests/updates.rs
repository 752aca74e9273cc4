//! Rolling updates on real daemons (process engine): a good update rolls
//! through every slot and the CLI follows it to convergence; a failing new
//! version pauses the update, or rolls it back, and says why in
//! `service inspect` and `service ps`.

use std::time::Duration;

use shoal_tests::{Cluster, eventually};

fn swarm() -> anyhow::Result<Cluster> {
    Cluster::manager_and_workers(2)
}

fn update_status(cluster: &Cluster, service: &str) -> anyhow::Result<(String, String)> {
    let out = cluster.shoal(0, &["service", "inspect", service]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let status = &v[0]["UpdateStatus"];
    Ok((
        status["State"].as_str().unwrap_or_default().to_string(),
        status["Message"].as_str().unwrap_or_default().to_string(),
    ))
}

/// `service ps` rows of tasks that should run: (args of the task, state).
fn running_args(cluster: &Cluster, service: &str) -> anyhow::Result<Vec<String>> {
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
                "{{.CurrentState}}",
            ],
        )
        .ok()?;
    Ok(out.lines().map(str::to_string).collect())
}

#[test]
fn a_good_update_rolls_through_and_the_cli_follows_it() -> anyhow::Result<()> {
    let cluster = swarm()?;
    // Without -d the CLI follows the service until it converges.
    let out = cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "--name",
                "app",
                "--replicas",
                "4",
                "busybox",
                "sleep",
                "1000",
            ],
        )
        .ok()?;
    assert!(out.contains("verify: Service converged"), "{out}");
    let out = cluster
        .shoal(
            0,
            &[
                "service",
                "update",
                "--update-parallelism",
                "2",
                "--update-monitor",
                "500ms",
                "--env-add",
                "V=2",
                "app",
            ],
        )
        .ok()?;
    assert!(out.contains("verify: Service converged"), "{out}");
    let (state, message) = update_status(&cluster, "app")?;
    assert_eq!(state, "completed", "{message}");
    // Every running task has the new spec; the old ones are history.
    let out = cluster.shoal(0, &["service", "inspect", "app"]).ok()?;
    assert!(out.contains("V=2"), "{out}");
    let running = running_args(&cluster, "app")?;
    assert_eq!(running.len(), 4, "{running:?}");
    assert!(
        running.iter().all(|s| s.starts_with("Running")),
        "{running:?}"
    );
    let history = cluster.shoal(0, &["service", "ps", "app"]).ok()?;
    assert_eq!(history.matches("Shutdown").count(), 4, "{history}");
    Ok(())
}

#[test]
fn a_failing_update_pauses_and_says_why() -> anyhow::Result<()> {
    let cluster = swarm()?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "app",
                "--replicas",
                "4",
                "--update-parallelism",
                "2",
                // A lane waits this long after its task runs: the failing
                // first batch is seen (the monitor runs alongside) before
                // any other slot is touched.
                "--update-delay",
                "10s",
                "--update-failure-action",
                "pause",
                "busybox",
                "sleep",
                "1000",
            ],
        )
        .ok()?;
    eventually("4 running", Duration::from_secs(30), || {
        let running = running_args(&cluster, "app")?;
        anyhow::ensure!(
            running.iter().filter(|s| s.starts_with("Running")).count() == 4,
            "{running:?}"
        );
        Ok(())
    })?;
    // The new version exits at once: the CLI reports the pause and fails.
    let out = cluster.shoal(0, &["service", "update", "--args", "false", "app"]);
    assert!(
        !out.success(),
        "update of a failing version succeeded: {}",
        out.stdout
    );
    assert!(out.stderr.contains("paused"), "{}", out.stderr);
    let (state, message) = update_status(&cluster, "app")?;
    assert_eq!(state, "paused");
    assert!(
        message.contains("update paused due to failure or early termination of task"),
        "{message}"
    );
    // Only the first batch (2 slots) was touched: 2 old tasks still run.
    let ps = cluster
        .shoal(0, &["service", "ps", "app", "--no-trunc"])
        .ok()?;
    assert!(ps.contains("task: non-zero exit (1)"), "{ps}");
    let out = cluster.shoal(0, &["service", "inspect", "app"]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let id = v[0]["ID"].as_str().unwrap_or_default().to_string();
    let tasks = cluster
        .shoal(
            0,
            &[
                "service",
                "ps",
                &id,
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Name}} {{.CurrentState}}",
            ],
        )
        .ok()?;
    let old_running = tasks.lines().filter(|l| l.contains("Running")).count();
    assert!(old_running >= 2, "{tasks}");
    Ok(())
}

#[test]
fn a_failing_update_rolls_back_with_that_failure_action() -> anyhow::Result<()> {
    let cluster = swarm()?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "app",
                "--replicas",
                "4",
                "--update-parallelism",
                "2",
                "--update-failure-action",
                "rollback",
                "--rollback-parallelism",
                "0",
                "--rollback-monitor",
                "500ms",
                "busybox",
                "sleep",
                "1000",
            ],
        )
        .ok()?;
    eventually("4 running", Duration::from_secs(30), || {
        let running = running_args(&cluster, "app")?;
        anyhow::ensure!(
            running.iter().filter(|s| s.starts_with("Running")).count() == 4,
            "{running:?}"
        );
        Ok(())
    })?;
    cluster
        .shoal(0, &["service", "update", "-d", "--args", "false", "app"])
        .ok()?;
    eventually("rolled back", Duration::from_secs(40), || {
        let (state, message) = update_status(&cluster, "app")?;
        anyhow::ensure!(state == "rollback_completed", "{state}: {message}");
        Ok(())
    })?;
    let out = cluster.shoal(0, &["service", "inspect", "app"]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let args = &v[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"];
    assert_eq!(args, &serde_json::json!(["sleep", "1000"]), "{out}");
    eventually("4 running the old version", Duration::from_secs(30), || {
        let running = running_args(&cluster, "app")?;
        anyhow::ensure!(
            running.len() == 4 && running.iter().all(|s| s.starts_with("Running")),
            "{running:?}"
        );
        Ok(())
    })?;
    Ok(())
}

#[test]
fn health_checks_gate_and_replace_tasks() -> anyhow::Result<()> {
    let cluster = swarm()?;
    // A healthy service: its tasks report healthy and the create converges.
    let out = cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "--name",
                "ok",
                "--replicas",
                "2",
                "--health-cmd",
                "true",
                "--health-interval",
                "200ms",
                "busybox",
                "sleep",
                "1000",
            ],
        )
        .ok()?;
    assert!(out.contains("verify: Service converged"), "{out}");
    // An unhealthy one: each task is failed and replaced, as Docker does.
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "sick",
                "--health-cmd",
                "false",
                "--health-interval",
                "200ms",
                "--health-retries",
                "1",
                "--restart-delay",
                "100ms",
                "busybox",
                "sleep",
                "1000",
            ],
        )
        .ok()?;
    eventually(
        "an unhealthy task is replaced",
        Duration::from_secs(30),
        || {
            let ps = cluster
                .shoal(0, &["service", "ps", "sick", "--no-trunc"])
                .ok()?;
            anyhow::ensure!(
                ps.contains("container is unhealthy") && ps.lines().count() >= 3,
                "{ps}"
            );
            Ok(())
        },
    )?;
    Ok(())
}
