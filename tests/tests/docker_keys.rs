//! Swarm's container keys on real Docker-engine tasks: a stack file with
//! `read_only`, `cap_drop`/`cap_add`, `ulimits`, `sysctls`, `extra_hosts`,
//! `logging`, `init`, a pids limit and a named volume with a driver, labels
//! and `nocopy` is deployed on one node, and every setting is found on the
//! task's container (`docker inspect`) and felt inside it (`docker exec`).

use std::time::Duration;

use serde_json::Value;
use shoal_tests::docker::{IMAGE, docker};
use shoal_tests::{Cluster, eventually};

const STACK: &str = "keys";
const SERVICE: &str = "keys_app";
/// The stack's named volume, as Docker's stack deploy scopes it.
const VOLUME: &str = "keys_data";

fn stack_file() -> String {
    format!(
        r#"version: "3.9"
services:
  app:
    image: {IMAGE}
    command: ["sleep", "3600"]
    read_only: true
    init: true
    cap_drop: [ALL]
    cap_add: [NET_BIND_SERVICE]
    ulimits:
      nproc: 512
      nofile:
        soft: 1024
        hard: 2048
    sysctls:
      net.ipv4.ip_unprivileged_port_start: 1000
    extra_hosts:
      - "db.local:10.0.0.5"
      - "cache=10.0.0.6"
    logging:
      driver: json-file
      options:
        max-size: 1m
        max-file: "2"
    volumes:
      - data:/data:nocopy
    deploy:
      resources:
        limits:
          pids: 100
volumes:
  data:
    driver: local
    driver_opts:
      type: tmpfs
      device: tmpfs
      o: size=1m
    labels:
      purpose: docker-keys-test
"#
    )
}

/// The running container of `service`'s one task.
fn task_container(cluster: &Cluster, service: &str) -> anyhow::Result<String> {
    let tasks = cluster.running_tasks(service)?;
    anyhow::ensure!(tasks.len() == 1, "{service}: {tasks:?}");
    let filter = format!("label=com.docker.swarm.task.id={}", tasks[0].0);
    let id = docker(&["ps", "-q", "--no-trunc", "--filter", &filter])?;
    let id = id.trim();
    anyhow::ensure!(!id.is_empty(), "no running container for {service}");
    Ok(id.to_string())
}

/// `docker inspect` of `id`, as JSON.
fn inspect(id: &str) -> anyhow::Result<Value> {
    let out = docker(&["inspect", id])?;
    let all: Value = serde_json::from_str(&out)?;
    Ok(all[0].clone())
}

/// `sh -c cmd` in container `id`: whether it succeeded, and its output.
fn exec(id: &str, cmd: &str) -> anyhow::Result<(bool, String)> {
    let out = std::process::Command::new("docker")
        .args(["exec", id, "sh", "-c", cmd])
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text.trim().to_string()))
}

#[test]
fn swarm_container_keys_reach_the_docker_container() -> anyhow::Result<()> {
    docker(&["image", "inspect", IMAGE])
        .map_err(|e| e.context(format!("{IMAGE} is missing: run tests/docker-engine.sh")))?;
    // A volume left by an earlier run would keep its old options.
    let _ = docker(&["volume", "rm", "-f", VOLUME]);
    let cluster = Cluster::builder().hosts(1).engine("docker").start()?;
    cluster.init_swarm(0)?;
    cluster.wait_nodes_ready(0, 1, Duration::from_secs(30))?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("stack.yml");
    std::fs::write(&file, stack_file())?;
    let deployed = cluster.shoal(
        0,
        &["stack", "deploy", "-c", &file.to_string_lossy(), STACK],
    );
    let said = format!("{}{}", deployed.stdout, deployed.stderr);
    deployed.ok()?;
    assert!(!said.contains("Ignoring unsupported"), "{said}");

    // The spec, as `service inspect` shows it in Docker's names.
    let spec = cluster
        .shoal(
            0,
            &[
                "service",
                "inspect",
                SERVICE,
                "--format",
                "{{json .Spec.TaskTemplate}}",
            ],
        )
        .ok()?;
    let spec: Value = serde_json::from_str(spec.trim())?;
    let c = &spec["ContainerSpec"];
    assert_eq!(
        c["CapabilityAdd"],
        serde_json::json!(["CAP_NET_BIND_SERVICE"])
    );
    assert_eq!(c["CapabilityDrop"], serde_json::json!(["ALL"]));
    assert_eq!(c["ReadOnly"], true);
    assert_eq!(c["Init"], true);
    assert_eq!(
        c["Hosts"],
        serde_json::json!(["10.0.0.5 db.local", "10.0.0.6 cache"])
    );
    assert_eq!(spec["Resources"]["Limits"]["Pids"], 100);
    assert_eq!(spec["LogDriver"]["Name"], "json-file");

    let id = eventually("the task runs", Duration::from_secs(60), || {
        task_container(&cluster, SERVICE)
    })?;
    let container = inspect(&id)?;
    let hc = &container["HostConfig"];
    assert_eq!(hc["ReadonlyRootfs"], true, "{hc}");
    assert_eq!(hc["Init"], true, "{hc}");
    assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"]), "{hc}");
    assert_eq!(
        hc["CapAdd"],
        serde_json::json!(["CAP_NET_BIND_SERVICE"]),
        "{hc}"
    );
    assert_eq!(hc["PidsLimit"], 100, "{hc}");
    assert_eq!(
        hc["Ulimits"],
        serde_json::json!([
            {"Name": "nofile", "Soft": 1024, "Hard": 2048},
            {"Name": "nproc", "Soft": 512, "Hard": 512},
        ]),
        "{hc}"
    );
    assert_eq!(
        hc["Sysctls"],
        serde_json::json!({"net.ipv4.ip_unprivileged_port_start": "1000"}),
        "{hc}"
    );
    assert_eq!(hc["LogConfig"]["Type"], "json-file", "{hc}");
    assert_eq!(
        hc["LogConfig"]["Config"],
        serde_json::json!({"max-size": "1m", "max-file": "2"}),
        "{hc}"
    );
    let mount = &hc["Mounts"][0];
    assert_eq!(mount["Source"], VOLUME, "{hc}");
    assert_eq!(mount["VolumeOptions"]["NoCopy"], true, "{hc}");

    // The extra hosts are the sandbox's, whose /etc/hosts the task shares.
    let (_, hosts) = exec(&id, "cat /etc/hosts")?;
    for (ip, name) in [("10.0.0.5", "db.local"), ("10.0.0.6", "cache")] {
        assert!(
            hosts
                .lines()
                .any(|l| l.split_whitespace().eq([ip, name].into_iter())),
            "{ip} {name} missing from /etc/hosts:\n{hosts}"
        );
    }
    // Felt inside: a read-only root, the init as pid 1, only the one
    // capability (CAP_NET_BIND_SERVICE is bit 10), the limits, the sysctl.
    let (wrote, out) = exec(&id, "touch /x")?;
    assert!(!wrote, "a write to / succeeded: {out}");
    assert!(out.contains("Read-only file system"), "{out}");
    let (_, pid1) = exec(&id, "tr '\\0' ' ' < /proc/1/cmdline")?;
    assert!(pid1.contains("init"), "pid 1 is {pid1:?}");
    let (_, status) = exec(&id, "grep CapEff /proc/self/status")?;
    assert!(status.ends_with("0000000000000400"), "{status}");
    let (_, limits) = exec(&id, "ulimit -n; ulimit -Hn")?;
    assert_eq!(
        limits.split_whitespace().collect::<Vec<_>>(),
        ["1024", "2048"]
    );
    let (_, port) = exec(&id, "cat /proc/sys/net/ipv4/ip_unprivileged_port_start")?;
    assert_eq!(port, "1000");
    let (_, pids) = exec(
        &id,
        "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null",
    )?;
    assert_eq!(pids, "100");

    // The named volume was made as declared: driver options and labels.
    let volume: Value = serde_json::from_str(&docker(&["volume", "inspect", VOLUME])?)?;
    let volume = &volume[0];
    assert_eq!(volume["Driver"], "local", "{volume}");
    assert_eq!(volume["Options"]["type"], "tmpfs", "{volume}");
    assert_eq!(
        volume["Labels"]["com.docker.stack.namespace"], STACK,
        "{volume}"
    );
    assert_eq!(volume["Labels"]["purpose"], "docker-keys-test", "{volume}");

    drop(cluster);
    let _ = docker(&["volume", "rm", "-f", VOLUME]);
    Ok(())
}
