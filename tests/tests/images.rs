//! The embedded engine on real daemons, a real registry and no Docker
//! engine: stacks that name images and no command run from images pulled
//! over the underlay, confined like Docker's defaults, reached through the
//! routing mesh; updates roll over to a new tag; pull failures are clear.

use std::time::Duration;

use shoal_tests::registry::{INSECURE_UNDERLAY, Registry};
use shoal_tests::{Cluster, eventually};

/// A swarm of `n` embedded-engine hosts (host 0 the manager) and a
/// registry with the demo images on host 0.
fn swarm(n: usize) -> anyhow::Result<(Cluster, Registry)> {
    let cluster = Cluster::builder()
        .hosts(n)
        .engine("embedded")
        .daemon_arg(INSECURE_UNDERLAY)
        .start()?;
    cluster.init_swarm(0)?;
    for i in 1..n {
        cluster.join(i, 0, "worker")?;
    }
    cluster.wait_nodes_ready(0, n, Duration::from_secs(30))?;
    let registry = cluster.registry(0)?;
    Ok((cluster, registry))
}

/// GET `url` from host `from`'s namespace; the body, trimmed.
fn get(cluster: &Cluster, from: usize, url: &str) -> anyhow::Result<String> {
    let out = cluster.exec(from, "curl", &["-s", "--max-time", "2", url]);
    anyhow::ensure!(out.success(), "GET {url} from node-{from}: {}", out.stderr);
    Ok(out.stdout.trim().to_string())
}

/// The `service ps` errors of `service`, one line each.
fn task_errors(cluster: &Cluster, service: &str) -> anyhow::Result<String> {
    cluster
        .shoal(
            0,
            &[
                "service",
                "ps",
                service,
                "--no-trunc",
                "--format",
                "{{.CurrentState}} {{.Error}}",
            ],
        )
        .ok()
}

#[test]
fn a_stack_without_commands_runs_from_images_and_rolls_to_a_new_tag() -> anyhow::Result<()> {
    let (cluster, registry) = swarm(3)?;
    let stack = cluster.dir().join("stack.yml");
    std::fs::write(
        &stack,
        format!(
            "version: \"3.8\"\nservices:\n  web:\n    image: {}\n    ports: [\"8080:80\"]\n    deploy:\n      replicas: 3\n      update_config: {{parallelism: 1, order: start-first}}\n",
            registry.image("web:1")
        ),
    )?;
    cluster
        .shoal(
            0,
            &["stack", "deploy", "-c", &stack.to_string_lossy(), "demo"],
        )
        .ok()?;
    let page = |i: usize| get(&cluster, (i + 1) % 3, &format!("http://{}:8080/cgi-bin/index.cgi", cluster.addr(i)));
    eventually("web v1 answers on every node", Duration::from_secs(60), || {
        for i in 0..3 {
            let body = page(i).unwrap_or_else(|e| format!("{e}"));
            anyhow::ensure!(
                body.starts_with("web v1 on "),
                "node-{i}: {body:?}; tasks:\n{}",
                task_errors(&cluster, "demo_web")?
            );
        }
        Ok(())
    })?;

    cluster
        .shoal(
            0,
            &[
                "service",
                "update",
                "--image",
                &registry.image("web:2"),
                "demo_web",
            ],
        )
        .ok()?;
    eventually("web v2 answers on every node", Duration::from_secs(60), || {
        for i in 0..3 {
            let body = page(i)?;
            anyhow::ensure!(body.starts_with("web v2 on "), "node-{i}: {body:?}");
        }
        Ok(())
    })?;
    // web:2's whiteout hides web:1's file in the layer below.
    let gone = get(
        &cluster,
        1,
        &format!("http://{}:8080/only-in-v1.html", cluster.addr(0)),
    )?;
    assert!(!gone.contains("only in v1"), "{gone:?}");
    Ok(())
}
