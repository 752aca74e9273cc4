//! Docker-engine tasks on the overlay, on real daemons and a real dockerd:
//! the shape of Docker's example voting app stack (five services on two
//! overlay networks, published ports, the database pinned to the manager)
//! deployed as written, with locally built images. Services reach what
//! they share a network with, by name and by VIP, and nothing else; the
//! mesh answers on every node; tasks reach outside the cluster through
//! their node; a task's network is there at its first
//! instruction; a daemon killed with -9 adopts its containers, and a dead
//! node's tasks come back elsewhere, reachable through the mesh.

use std::collections::BTreeSet;
use std::time::Duration;

use shoal_tests::docker::{IMAGE, docker};
use shoal_tests::{Cluster, eventually};

/// Each service answers HTTP on port 80 with its name and host name.
fn serve(name: &str) -> String {
    format!(
        "d=/tmp/www; mkdir -p $d; echo \"{name} $(hostname)\" > $d/index.html; exec httpd -f -p 80 -h $d"
    )
}

/// The stack, as the voting app's docker-stack.yml lays it out.
fn stack_file() -> String {
    // Compose interpolates `$`: the file escapes it as `$$`.
    let svc = |name: &str| format!("[\"sh\", \"-c\", {:?}]", serve(name).replace('$', "$$"));
    format!(
        r#"version: "3.9"
services:
  redis:
    image: {IMAGE}
    command: {redis}
    networks: [frontend]
  db:
    image: {IMAGE}
    command: {db}
    networks: [backend]
    deploy:
      placement:
        constraints: [node.role == manager]
  vote:
    image: {IMAGE}
    command: {vote}
    ports: ["8080:80"]
    networks: [frontend]
    deploy:
      replicas: 2
  result:
    image: {IMAGE}
    command: {result}
    ports:
      - target: 80
        published: 8081
        mode: host
    networks: [backend]
  worker:
    image: {IMAGE}
    command: {worker}
    networks: [frontend, backend]
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
networks:
  frontend:
  backend:
"#,
        redis = svc("redis"),
        db = svc("db"),
        vote = svc("vote"),
        result = svc("result"),
        worker = svc("worker"),
    )
}

/// GET `url` from host `from`'s namespace; the body, trimmed.
fn get(cluster: &Cluster, from: usize, url: &str) -> anyhow::Result<String> {
    let out = cluster.exec(from, "curl", &["-s", "--max-time", "2", url]);
    anyhow::ensure!(out.success(), "GET {url} from node-{from}: {}", out.stderr);
    Ok(out.stdout.trim().to_string())
}

/// The container of task `task_id`.
fn container(task_id: &str) -> anyhow::Result<String> {
    let filter = format!("label=com.docker.swarm.task.id={task_id}");
    let id = docker(&["ps", "-q", "--no-trunc", "--filter", &filter])?;
    let id = id.trim();
    anyhow::ensure!(!id.is_empty(), "no container for task {task_id}");
    Ok(id.to_string())
}

/// Runs `cmd` with `sh -c` in a running task of `service`; its output
/// and whether it succeeded.
fn exec_in(cluster: &Cluster, service: &str, cmd: &str) -> anyhow::Result<(bool, String)> {
    let (task, _) = cluster
        .running_tasks(service)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no running task of {service}"))?;
    let out = std::process::Command::new("docker")
        .args(["exec", &container(&task)?, "sh", "-c", cmd])
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text.trim().to_string()))
}

/// `wget` from inside a task of `from`; busybox's `-T` crashes, so the
/// whole call is bounded by `timeout`.
fn fetch(cluster: &Cluster, from: &str, url: &str) -> anyhow::Result<(bool, String)> {
    exec_in(
        cluster,
        from,
        &format!("timeout 3 wget -q -O - {url} 2>&1; echo rc=$?"),
    )
    .map(|(_, out)| (out.ends_with("rc=0"), out))
}

/// The service's VIP on its (first) network.
fn vip(cluster: &Cluster, service: &str) -> anyhow::Result<String> {
    let out = cluster
        .shoal(
            0,
            &[
                "service",
                "inspect",
                service,
                "--format",
                "{{json .Endpoint.VirtualIPs}}",
            ],
        )
        .ok()?;
    let vips: serde_json::Value = serde_json::from_str(out.trim())?;
    let addr = vips[0]["Addr"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .ok_or_else(|| anyhow::anyhow!("{service} has no VIP: {out:?}"))?;
    Ok(addr.to_string())
}

/// Sandboxes and task containers of the cluster's nodes, by task id.
fn sandboxes(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let mut all = Vec::new();
    for node in cluster.node_ids() {
        let filter = format!("label=com.docker.swarm.node.id={node}");
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            &filter,
            "--filter",
            "label=com.shoal.sandbox.task.id",
            "--format",
            r#"{{.Label "com.shoal.sandbox.task.id"}}"#,
        ])?;
        all.extend(out.lines().map(str::to_string));
    }
    Ok(all)
}

/// What dockerd does to the namespace it runs in: forwarding dropped but
/// for what `DOCKER-USER` (empty, for others' rules) and its own chains
/// accept. Shoal's nodes must still publish ports and give egress.
fn as_on_a_docker_host(cluster: &Cluster, i: usize) -> anyhow::Result<()> {
    for args in [
        &["-N", "DOCKER-USER"][..],
        &["-A", "DOCKER-USER", "-j", "RETURN"],
        &["-A", "FORWARD", "-j", "DOCKER-USER"],
        &["-P", "FORWARD", "DROP"],
    ] {
        cluster
            .exec(i, "iptables", &[&["-w"], args].concat())
            .ok()?;
    }
    Ok(())
}

/// The rules of host `i`'s `DOCKER-USER` chain.
fn docker_user(cluster: &Cluster, i: usize) -> anyhow::Result<String> {
    cluster
        .exec(i, "iptables", &["-w", "-S", "DOCKER-USER"])
        .ok()
}

/// `ip netns list`.
fn netns_list() -> anyhow::Result<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn three_docker_nodes() -> anyhow::Result<Cluster> {
    let cluster = Cluster::builder().hosts(3).engine("docker").start()?;
    for i in 0..3 {
        as_on_a_docker_host(&cluster, i)?;
    }
    cluster.init_swarm(0)?;
    for i in 1..3 {
        cluster.join(i, 0, "worker")?;
    }
    cluster.wait_nodes_ready(0, 3, Duration::from_secs(30))?;
    Ok(cluster)
}

#[test]
fn the_voting_app_stack_runs_on_docker_tasks_over_the_overlay() -> anyhow::Result<()> {
    docker(&["image", "inspect", IMAGE])
        .map_err(|e| e.context(format!("{IMAGE} is missing: run tests/docker-engine.sh")))?;
    let mut cluster = three_docker_nodes()?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("docker-stack.yml");
    std::fs::write(&file, stack_file())?;
    cluster
        .shoal(
            0,
            &["stack", "deploy", "-c", &file.to_string_lossy(), "votes"],
        )
        .ok()?;
    let counts = [
        ("votes_redis", 1),
        ("votes_db", 1),
        ("votes_vote", 2),
        ("votes_result", 1),
        ("votes_worker", 2),
    ];
    eventually("every task runs", Duration::from_secs(90), || {
        for (service, n) in counts {
            let tasks = cluster.running_tasks(service)?;
            anyhow::ensure!(tasks.len() == n, "{service}: {tasks:?}");
        }
        Ok(())
    })?;
    let (_, db_node) = cluster.running_tasks("votes_db")?[0].clone();
    assert_eq!(db_node, 0, "db is pinned to the manager");

    // By name and by VIP on shared networks; nothing across them.
    eventually(
        "names resolve on shared networks",
        Duration::from_secs(20),
        || {
            for (from, to) in [
                ("votes_worker", "redis"),
                ("votes_worker", "db"),
                ("votes_vote", "redis"),
                ("votes_result", "db"),
                ("votes_worker", "votes_db"),
            ] {
                let (ok, out) = fetch(&cluster, from, &format!("http://{to}/"))?;
                anyhow::ensure!(ok, "{from} → {to}: {out}");
            }
            Ok(())
        },
    )?;
    let redis_vip = vip(&cluster, "votes_redis")?;
    let (ok, out) = fetch(&cluster, "votes_worker", &format!("http://{redis_vip}/"))?;
    assert!(ok && out.starts_with("redis "), "worker → redis VIP: {out}");
    for (from, to) in [("votes_vote", "db"), ("votes_result", "redis")] {
        let (ok, out) = fetch(&cluster, from, &format!("http://{to}/"))?;
        assert!(!ok, "{from} reached {to} across networks: {out}");
    }
    let (ok, out) = fetch(&cluster, "votes_result", &format!("http://{redis_vip}/"))?;
    assert!(!ok, "result reached redis's VIP across networks: {out}");

    // dnsrr: the name is every task's address.
    let (_, out) = exec_in(&cluster, "votes_redis", "nslookup worker 2>&1")?;
    let addrs: BTreeSet<&str> = out
        .lines()
        .filter(|l| l.starts_with("Address") && !l.contains("127.0.0.11"))
        .collect();
    assert_eq!(addrs.len(), 2, "nslookup worker: {out}");

    // The mesh: 8080 on every node, over both vote replicas.
    let mut seen = BTreeSet::new();
    eventually(
        "8080 answers on every node",
        Duration::from_secs(30),
        || {
            for i in 0..3 {
                let url = format!("http://{}:8080/", cluster.addr(i));
                for _ in 0..4 {
                    let body = get(&cluster, (i + 1) % 3, &url)?;
                    anyhow::ensure!(body.starts_with("vote "), "{url}: {body}");
                    seen.insert(body);
                }
            }
            anyhow::ensure!(seen.len() == 2, "only reached {seen:?}");
            Ok(())
        },
    )?;
    // A host-mode port answers where its task runs, and only there.
    let (_, result_node) = cluster.running_tasks("votes_result")?[0].clone();
    let url = format!("http://{}:8081/", cluster.addr(result_node));
    eventually("8081 on the result's node", Duration::from_secs(20), || {
        get(&cluster, (result_node + 1) % 3, &url)
    })?;
    for i in (0..3).filter(|&i| i != result_node) {
        let url = format!("http://{}:8081/", cluster.addr(i));
        assert!(get(&cluster, result_node, &url).is_err(), "{url} answered");
    }

    // Egress: out through the task's node, masqueraded (the outside host
    // has no route back to task addresses).
    let (_, redis_node) = cluster.running_tasks("votes_redis")?[0].clone();
    let _outside = cluster.outside(redis_node, "outside\n")?;
    let url = format!("http://{}/", shoal_tests::outside::OUTSIDE_ADDR);
    let (ok, out) = fetch(&cluster, "votes_redis", &url)?;
    assert!(ok && out.starts_with("outside"), "redis → outside: {out}");

    // The network is there at the first instruction: a one-shot wget that
    // never retries succeeds the first time.
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "probe",
                "--network",
                "votes_frontend",
                "--restart-condition",
                "none",
                IMAGE,
                "wget",
                "-q",
                "-O",
                "/dev/null",
                "http://redis/",
            ],
        )
        .ok()?;
    let states = eventually("probe ends", Duration::from_secs(60), || {
        let out = cluster
            .shoal(
                0,
                &["service", "ps", "probe", "--format", "{{.CurrentState}}"],
            )
            .ok()?;
        anyhow::ensure!(
            out.lines().any(|l| !l.starts_with("Running")
                && !l.starts_with("Starting")
                && !l.starts_with("Preparing")
                && !l.starts_with("Assigned")
                && !l.starts_with("Pending")
                && !l.starts_with("New")),
            "{out}"
        );
        Ok(out)
    })?;
    assert!(
        states.lines().count() == 1 && states.starts_with("Complete"),
        "the first wget failed: {states}"
    );

    // kill -9 a worker's daemon and start it again: same containers, still
    // reachable, no second sandbox.
    let victim = cluster
        .running_tasks("votes_vote")?
        .iter()
        .map(|(_, n)| *n)
        .find(|n| *n != 0)
        .unwrap_or(1);
    let before: BTreeSet<String> = cluster
        .running_tasks("votes_vote")?
        .into_iter()
        .chain(cluster.running_tasks("votes_worker")?)
        .filter(|(_, n)| *n == victim)
        .map(|(t, _)| container(&t))
        .collect::<anyhow::Result<_>>()?;
    let sandboxes_before = sandboxes(&cluster)?;
    cluster.kill(victim);
    cluster.restart(victim)?;
    eventually(
        "the restarted node's tasks answer",
        Duration::from_secs(30),
        || {
            let (ok, out) = fetch(&cluster, "votes_worker", "http://redis/")?;
            anyhow::ensure!(ok, "{out}");
            for i in 0..3 {
                get(
                    &cluster,
                    i,
                    &format!("http://{}:8080/", cluster.addr(victim)),
                )?;
            }
            Ok(())
        },
    )?;
    let after: BTreeSet<String> = cluster
        .running_tasks("votes_vote")?
        .into_iter()
        .chain(cluster.running_tasks("votes_worker")?)
        .filter(|(_, n)| *n == victim)
        .map(|(t, _)| container(&t))
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(before, after, "the restarted daemon adopted its containers");
    let mut now = sandboxes(&cluster)?;
    let mut then = sandboxes_before;
    now.sort();
    then.sort();
    assert_eq!(now, then, "no sandbox appeared or vanished");

    // A whole node dies: its tasks run elsewhere and answer through the mesh.
    cluster.kill(victim);
    // Its containers die with it (one dockerd serves every test host).
    let victim_id = cluster.node_id(victim).unwrap_or_default();
    shoal_tests::leftovers::remove_containers(&[victim_id]);
    eventually(
        "vote runs twice without the dead node",
        Duration::from_secs(60),
        || {
            let tasks = cluster.running_tasks("votes_vote")?;
            anyhow::ensure!(
                tasks.len() == 2 && tasks.iter().all(|(_, n)| *n != victim),
                "{tasks:?}"
            );
            Ok(())
        },
    )?;
    let alive: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    let mut seen = BTreeSet::new();
    eventually(
        "the mesh reaches both new replicas",
        Duration::from_secs(30),
        || {
            for &i in &alive {
                for &from in &alive {
                    seen.insert(get(
                        &cluster,
                        from,
                        &format!("http://{}:8080/", cluster.addr(i)),
                    )?);
                }
            }
            anyhow::ensure!(seen.len() >= 2, "{seen:?}");
            Ok(())
        },
    )?;

    // stack rm leaves no container and no sandbox behind on live nodes.
    cluster.shoal(0, &["service", "rm", "probe"]).ok()?;
    cluster.shoal(0, &["stack", "rm", "votes"]).ok()?;
    let ids = cluster.node_ids();
    eventually("nothing left in dockerd", Duration::from_secs(60), || {
        for &i in &alive {
            let left = shoal_tests::leftovers::containers_of(&ids[i]);
            anyhow::ensure!(left.is_empty(), "node-{i}: {left:?}");
        }
        Ok(())
    })?;

    // A worker that leaves takes its accepts out of Docker's chain and
    // its namespaces with it.
    let leaver = alive[alive.len() - 1];
    let prefix: String = ids[leaver].chars().take(6).collect();
    assert!(docker_user(&cluster, leaver)?.contains(&format!("m{prefix}")));
    cluster.shoal(leaver, &["swarm", "leave"]).ok()?;
    let rules = docker_user(&cluster, leaver)?;
    assert_eq!(
        rules.trim(),
        "-N DOCKER-USER\n-A DOCKER-USER -j RETURN",
        "{rules}"
    );
    let netns = netns_list()?;
    assert!(
        !netns.lines().any(|l| l.starts_with(&format!("{prefix}-"))),
        "namespaces left: {netns}"
    );
    Ok(())
}

#[test]
fn health_checks_and_rolling_updates_keep_working_on_docker_tasks() -> anyhow::Result<()> {
    let cluster = Cluster::builder().hosts(2).engine("docker").start()?;
    for i in 0..2 {
        as_on_a_docker_host(&cluster, i)?;
    }
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "worker")?;
    cluster.wait_nodes_ready(0, 2, Duration::from_secs(30))?;
    cluster
        .shoal(0, &["network", "create", "-d", "overlay", "front"])
        .ok()?;
    let serve = "d=/tmp/www; mkdir -p $d; echo \"$VERSION $(hostname)\" > $d/index.html; exec httpd -f -p 80 -h $d";
    let create = |name: &str, extra: &[&str], cmd: &str| {
        let mut args = vec![
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--network",
            "front",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sh", "-c", cmd]);
        cluster.shoal(0, &args).ok()
    };
    create(
        "api",
        &[
            "--replicas",
            "2",
            "--env",
            "VERSION=v1",
            "--health-cmd",
            "wget -q -O /dev/null http://localhost/",
            "--health-interval",
            "1s",
            "--update-parallelism",
            "1",
        ],
        serve,
    )?;
    create("client", &[], "sleep 1000")?;
    eventually("api answers v1 by name", Duration::from_secs(60), || {
        let (ok, out) = fetch(&cluster, "client", "http://api/")?;
        anyhow::ensure!(ok && out.starts_with("v1 "), "{out}");
        Ok(())
    })?;
    // Docker runs the health check; the task reports it.
    eventually("api tasks are healthy", Duration::from_secs(30), || {
        for (task, _) in cluster.running_tasks("api")? {
            let health = docker(&[
                "inspect",
                "-f",
                "{{.State.Health.Status}}",
                &container(&task)?,
            ])?;
            anyhow::ensure!(health.trim() == "healthy", "{task}: {health}");
        }
        Ok(())
    })?;

    // A rolling update (the CLI follows it to the end): every replica is
    // replaced, answers with the new version, and the old tasks' sandboxes
    // are gone.
    let before: BTreeSet<String> = cluster
        .running_tasks("api")?
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    cluster
        .shoal(0, &["service", "update", "--env-add", "VERSION=v2", "api"])
        .ok()?;
    let after: BTreeSet<String> = cluster
        .running_tasks("api")?
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(after.len(), 2);
    assert!(before.is_disjoint(&after), "{before:?} → {after:?}");
    for _ in 0..6 {
        let (ok, out) = fetch(&cluster, "client", "http://api/")?;
        assert!(ok && out.starts_with("v2 "), "after the update: {out}");
    }
    eventually("old sandboxes removed", Duration::from_secs(20), || {
        let left: Vec<String> = sandboxes(&cluster)?
            .into_iter()
            .filter(|t| before.contains(t))
            .collect();
        anyhow::ensure!(left.is_empty(), "{left:?}");
        Ok(())
    })?;

    // An unhealthy task is replaced, as Swarm does.
    create(
        "sick",
        &[
            "--health-cmd",
            "exit 1",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
        serve,
    )?;
    eventually(
        "the unhealthy task is replaced",
        Duration::from_secs(60),
        || {
            let out = cluster
                .shoal(
                    0,
                    &[
                        "service",
                        "ps",
                        "sick",
                        "--no-trunc",
                        "--format",
                        "{{.CurrentState}}|{{.Error}}",
                    ],
                )
                .ok()?;
            anyhow::ensure!(
                out.lines()
                    .any(|l| l.starts_with("Failed") && l.contains("unhealthy")),
                "{out}"
            );
            Ok(())
        },
    )?;
    Ok(())
}
