//! Overlay networks and the routing mesh on real daemons (process engine,
//! nftables; this kernel has no IPVS): a published port answers on every
//! node and balances over the tasks wherever they run; tasks reach each
//! other by service name over the overlay, and only on shared networks.

use std::collections::BTreeSet;
use std::time::Duration;

use shoal_tests::{Cluster, eventually};

/// A task that serves its own hostname over HTTP on port 80.
const WEB: &str = "d=/tmp/shoal-web-$(hostname); mkdir -p $d; hostname > $d/index.html; exec busybox httpd -f -p 80 -h $d";

fn swarm() -> anyhow::Result<Cluster> {
    Cluster::manager_and_workers(2)
}

/// GET `url` from host `from`'s namespace; the body, trimmed.
fn get(cluster: &Cluster, from: usize, url: &str) -> anyhow::Result<String> {
    let out = cluster.exec(from, "curl", &["-s", "--max-time", "2", url]);
    anyhow::ensure!(out.success(), "GET {url} from node-{from}: {}", out.stderr);
    Ok(out.stdout.trim().to_string())
}

#[test]
fn published_port_answers_on_every_node_and_balances() -> anyhow::Result<()> {
    let mut cluster = swarm()?;
    cluster
        .shoal(0, &["network", "create", "--driver", "overlay", "front"])
        .ok()?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "web",
                "--replicas",
                "3",
                "-p",
                "8080:80",
                "--network",
                "front",
                "busybox",
                "sh",
                "-c",
                WEB,
            ],
        )
        .ok()?;
    let mut seen = BTreeSet::new();
    eventually(
        "every node answers on 8080",
        Duration::from_secs(40),
        || {
            for i in 0..3 {
                let url = format!("http://{}:8080/", cluster.addr(i));
                for _ in 0..4 {
                    seen.insert(get(&cluster, (i + 1) % 3, &url)?);
                }
            }
            anyhow::ensure!(seen.len() >= 2, "only reached {seen:?}");
            Ok(())
        },
    )?;
    println!("reached tasks {seen:?} through the mesh");

    // Scale down and lose a node: the port still answers on the others.
    cluster
        .shoal(0, &["service", "scale", "-d", "web=1"])
        .ok()?;
    cluster.kill(2);
    eventually(
        "the mesh answers after scale and a dead node",
        Duration::from_secs(30),
        || {
            for i in 0..2 {
                get(&cluster, i, &format!("http://{}:8080/", cluster.addr(i)))?;
            }
            Ok(())
        },
    )?;
    Ok(())
}

#[test]
fn tasks_find_services_by_name_only_on_shared_networks() -> anyhow::Result<()> {
    let cluster = swarm()?;
    for net in ["front", "back"] {
        cluster
            .shoal(0, &["network", "create", "--driver", "overlay", net])
            .ok()?;
    }
    // Two networks with overlapping subnets coexist.
    cluster
        .shoal(
            0,
            &[
                "network",
                "create",
                "--driver",
                "overlay",
                "--subnet",
                "10.9.0.0/24",
                "left",
            ],
        )
        .ok()?;
    cluster
        .shoal(
            0,
            &[
                "network",
                "create",
                "--driver",
                "overlay",
                "--subnet",
                "10.9.0.0/24",
                "right",
            ],
        )
        .ok()?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "web",
                "--replicas",
                "2",
                "--network",
                "front",
                "busybox",
                "sh",
                "-c",
                WEB,
            ],
        )
        .ok()?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "client",
                "--network",
                "front",
                "--network",
                "left",
                "busybox",
                "sleep",
                "1000",
            ],
        )
        .ok()?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "other",
                "--network",
                "back",
                "--network",
                "right",
                "busybox",
                "sleep",
                "1000",
            ],
        )
        .ok()?;
    eventually(
        "client reaches web by name",
        Duration::from_secs(40),
        || {
            let ps = cluster
                .shoal(
                    0,
                    &[
                        "service",
                        "ps",
                        "client",
                        "--format",
                        "{{.ID}} {{.CurrentState}}",
                    ],
                )
                .ok()?;
            anyhow::ensure!(ps.contains("Running"), "{ps}");
            let body = exec_in_service(
                &cluster,
                "client",
                "timeout 3 busybox wget -q -O- http://web/",
            )?;
            anyhow::ensure!(
                body.trim().len() == 12,
                "GET http://web/ from client: {body:?}"
            );
            let tasks = exec_in_service(&cluster, "client", "busybox nslookup tasks.web")?;
            let front = tasks
                .lines()
                .filter(|l| l.contains("Address") && !l.contains("127.0.0.11"))
                .count();
            anyhow::ensure!(front == 2, "tasks.web should list 2 addresses: {tasks}");
            Ok(())
        },
    )?;
    println!("client reached web by name");
    let out = exec_in_service(
        &cluster,
        "other",
        "timeout 3 busybox wget -q -O- http://web/ 2>&1; echo rc=$?",
    )?;
    assert!(
        !out.contains("rc=0"),
        "a task on another network reached web: {out}"
    );
    Ok(())
}

/// Runs `cmd` in the namespaces of a running task of `service`.
fn exec_in_service(cluster: &Cluster, service: &str, cmd: &str) -> anyhow::Result<String> {
    let (task_id, i) = cluster
        .running_tasks(service)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no running task of {service}"))?;
    let pid_file = cluster
        .state_dir(i)
        .join("process/tasks")
        .join(&task_id)
        .join("pid.json");
    let text = std::fs::read_to_string(&pid_file)?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let pid = v["pid"].as_i64().unwrap_or_default().to_string();
    let out = cluster.exec(
        i,
        "nsenter",
        &["-t", &pid, "-n", "-m", "-u", "sh", "-c", cmd],
    );
    Ok(format!("{}{}", out.stdout, out.stderr))
}

#[test]
fn host_mode_ports_answer_only_on_the_tasks_node() -> anyhow::Result<()> {
    let cluster = swarm()?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "edge",
                "--constraint",
                "node.hostname==node-1",
                "-p",
                "mode=host,published=8081,target=80",
                "busybox",
                "sh",
                "-c",
                WEB,
            ],
        )
        .ok()?;
    eventually("node-1 answers on 8081", Duration::from_secs(40), || {
        get(&cluster, 2, &format!("http://{}:8081/", cluster.addr(1)))
    })?;
    // Not through the mesh: node-0 and node-2 do not publish it.
    for i in [0, 2] {
        let url = format!("http://{}:8081/", cluster.addr(i));
        assert!(
            get(&cluster, 1, &url).is_err(),
            "{url} answered a host-mode port"
        );
    }
    Ok(())
}

#[test]
fn tasks_reach_outside_the_cluster_through_their_node() -> anyhow::Result<()> {
    let cluster = swarm()?;
    let _outside = cluster.outside(1, "outside\n")?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "client",
                "--constraint",
                "node.hostname==node-1",
                "busybox",
                "sleep",
                "1000",
            ],
        )
        .ok()?;
    let url = format!("http://{}/", shoal_tests::outside::OUTSIDE_ADDR);
    let out = eventually(
        "the task reaches the outside host",
        Duration::from_secs(30),
        || {
            let out =
                exec_in_service(&cluster, "client", &format!("timeout 3 wget -q -O - {url}"))?;
            anyhow::ensure!(out.starts_with("outside"), "{out}");
            Ok(out)
        },
    )?;
    println!("a task on no network reached {url}: {out}");
    Ok(())
}
