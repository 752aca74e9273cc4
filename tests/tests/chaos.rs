//! Chaos: managers and workers under a write load from several clients,
//! with random `kill -9`s, graceful restarts, cuts, one-way partitions and
//! isolation, one fault at a time at random moments. After the run:
//! - every write a client saw acknowledged is there;
//! - no read went back in time: each client reads its own service after
//!   every write, from managers in turn, and never sees an older version,
//!   nor a sequence number below one it was told was written;
//! - every manager holds the same store (applied index and digest);
//! - every service runs its replicas.
//!
//! `SHOAL_CHAOS_SECS` sets the run's length (default 30) and
//! `SHOAL_TEST_SEED` replays a run's choices of faults.
//! `bench/chaos.sh` runs 10 minutes for 3 and for 5 managers and records
//! the figures in docs/benchmarks.md.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_proto::control::control_client::ControlClient;
use shoal_proto::control::{CreateConfigRequest, GetServiceRequest, UpdateServiceRequest};
use shoal_proto::objects::{Annotations, ConfigSpec, service_spec};
use shoal_tests::managers::{Rng, client_runtime, converged, credentials, spawn_in_netns};
use shoal_tests::{Cluster, eventually};
use tonic::transport::Channel;

const WORKERS: usize = 2;
const CLIENTS: usize = 4;
/// A request that takes longer has failed (its outcome is unknown).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the clients saw.
#[derive(Default)]
struct Tally {
    /// Config names whose create was acknowledged.
    created: Mutex<Vec<String>>,
    updates: AtomicUsize,
    reads: AtomicUsize,
    failures: AtomicUsize,
    /// Reads that went back in time, described.
    stale: Mutex<Vec<String>>,
    /// Per client, the last `seq` whose update was acknowledged.
    written: Mutex<Vec<u64>>,
}

/// What the fault loop did, by kind.
#[derive(Debug, Default)]
struct Faults(BTreeMap<&'static str, usize>);

impl Faults {
    fn count(&mut self, kind: &'static str) {
        *self.0.entry(kind).or_default() += 1;
    }

    fn total(&self) -> usize {
        self.0.values().sum()
    }
}

fn secs_from_env() -> u64 {
    std::env::var("SHOAL_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map(tonic::Response::into_inner),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer in time")),
    }
}

/// Client `k`: creates configs `chaos-<k>-<n>` and updates its service's
/// `seq` label to `n`, reading the service back after each write.
async fn client(
    k: usize,
    managers: Vec<ControlClient<Channel>>,
    service_id: String,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let mut seen_version = 0u64;
    let mut written_seq = 0u64;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let pick = |i: u64| managers[(k as u64 + n + i) as usize % managers.len()].clone();
        let name = format!("chaos-{k}-{n}");
        let create = CreateConfigRequest {
            spec: Some(ConfigSpec {
                annotations: Some(Annotations {
                    name: name.clone(),
                    ..Default::default()
                }),
                data: name.clone().into_bytes(),
            }),
        };
        match timed(pick(0).create_config(create)).await {
            Ok(_) => tally.created.lock().unwrap().push(name),
            Err(_) => {
                tally.failures.fetch_add(1, Ordering::Relaxed);
            }
        }

        // Read, check, update, from different managers.
        let read = GetServiceRequest {
            service_id: service_id.clone(),
        };
        let service = match timed(pick(1).get_service(read)).await {
            Ok(r) => r.service.unwrap_or_default(),
            Err(_) => {
                tally.failures.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tally.reads.fetch_add(1, Ordering::Relaxed);
        let version = service.meta.as_ref().map_or(0, |m| m.version);
        let mut spec = service.spec.unwrap_or_default();
        let annotations = spec.annotations.get_or_insert_default();
        let seq: u64 = annotations
            .labels
            .get("seq")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if version < seen_version || seq < written_seq {
            tally.stale.lock().unwrap().push(format!(
                "client {k}: read version {version} seq {seq} after version {seen_version} seq {written_seq}"
            ));
        }
        seen_version = seen_version.max(version);
        annotations.labels.insert("seq".into(), n.to_string());
        // Now and then the replica count changes too, so tasks move.
        if n.is_multiple_of(7)
            && let Some(service_spec::Mode::Replicated(r)) = spec.mode.as_mut()
        {
            r.replicas = 1 + n % 3;
        }
        let update = UpdateServiceRequest {
            service_id: service_id.clone(),
            version,
            spec: Some(spec),
            rollback: false,
        };
        match timed(pick(2).update_service(update)).await {
            Ok(r) => {
                tally.updates.fetch_add(1, Ordering::Relaxed);
                written_seq = n;
                tally.written.lock().unwrap()[k] = n;
                let v = r.service.and_then(|s| s.meta).map_or(0, |m| m.version);
                seen_version = seen_version.max(v);
            }
            Err(_) => {
                tally.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One fault, held for a random moment, then undone.
fn inject(
    cluster: &mut Cluster,
    rng: &mut Rng,
    managers: usize,
    client_host: usize,
    faults: &mut Faults,
) -> anyhow::Result<()> {
    let hosts = cluster.len();
    // The leader half the time, when someone can name it.
    let leader = (0..managers).find_map(|i| cluster.leader(i).ok());
    let pick_manager = |rng: &mut Rng| match leader {
        Some(l) if rng.below(2) == 0 => l,
        _ => rng.below(managers as u64) as usize,
    };
    let hold = rng.millis(300, 4_000);
    match rng.below(7) {
        0 => {
            let m = pick_manager(rng);
            cluster.kill(m);
            std::thread::sleep(hold);
            cluster.restart(m)?;
            faults.count("kill -9 manager");
        }
        1 => {
            let m = pick_manager(rng);
            cluster.stop(m)?;
            std::thread::sleep(rng.millis(0, 1_000));
            cluster.restart(m)?;
            faults.count("restart manager");
        }
        kind @ (2 | 3) => {
            // A manager and another one.
            let a = pick_manager(rng);
            let b = (a + 1 + rng.below(managers as u64 - 1) as usize) % managers;
            if kind == 2 {
                cluster.cut(a, b)?;
            } else {
                cluster.cut_one_way(a, b)?;
            }
            std::thread::sleep(hold);
            cluster.heal(a)?;
            faults.count(if kind == 2 {
                "cut manager-manager"
            } else {
                "one-way partition"
            });
        }
        4 => {
            let m = pick_manager(rng);
            cluster.isolate(m)?;
            std::thread::sleep(hold);
            cluster.heal(m)?;
            faults.count("isolate manager");
        }
        5 => {
            let w = managers + rng.below(WORKERS as u64) as usize;
            cluster.kill(w);
            std::thread::sleep(hold);
            cluster.restart(w)?;
            faults.count("kill -9 worker");
        }
        _ => {
            // The clients' host is never cut off: its clients would be too.
            let w = (managers..hosts)
                .filter(|&h| h != client_host)
                .nth(rng.below((WORKERS - 1) as u64) as usize)
                .unwrap_or(managers);
            cluster.isolate(w)?;
            std::thread::sleep(hold);
            cluster.heal(w)?;
            faults.count("isolate worker");
        }
    }
    Ok(())
}

/// Every service's replicas running, as the leader counts them.
fn services_converged(cluster: &Cluster, asker: usize) -> anyhow::Result<()> {
    let out = cluster
        .shoal(
            asker,
            &["service", "ls", "--format", "{{.Name}} {{.Replicas}}"],
        )
        .ok()?;
    for line in out.lines() {
        let replicas = line.split(' ').nth(1).unwrap_or_default();
        let (running, wanted) = replicas.split_once('/').unwrap_or_default();
        anyhow::ensure!(running == wanted && !wanted.is_empty(), "{line}");
    }
    Ok(())
}

fn chaos(managers: usize) -> anyhow::Result<()> {
    shoal_proto::tls::install_default_provider();
    let secs = secs_from_env();
    let mut rng = Rng::from_env();
    let mut cluster = Cluster::start(managers + WORKERS)?;
    cluster.init_swarm(0)?;
    for i in 1..managers {
        cluster.join(i, 0, "manager")?;
    }
    for i in managers..managers + WORKERS {
        cluster.join(i, 0, "worker")?;
    }
    cluster.wait_nodes_ready(0, managers + WORKERS, Duration::from_secs(30))?;
    let client_host = managers + WORKERS - 1;

    let mut service_ids = Vec::new();
    for k in 0..CLIENTS {
        let name = format!("svc-{k}");
        let id = cluster
            .shoal(
                0,
                &[
                    "service",
                    "create",
                    "-d",
                    "--name",
                    &name,
                    "--replicas",
                    "2",
                    "busybox",
                    "sleep",
                    "100000",
                ],
            )
            .ok()?;
        service_ids.push(id.trim().to_string());
    }

    let tally = Arc::new(Tally {
        written: Mutex::new(vec![0; CLIENTS]),
        ..Default::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<String> = (0..managers).map(|i| cluster.manager_addr(i)).collect();
    let creds = credentials(&cluster, 0)?;
    let clients = {
        let (tally, stop) = (tally.clone(), stop.clone());
        spawn_in_netns(&cluster, client_host, move || {
            client_runtime().block_on(async move {
                let tls = creds.client_config().expect("tls");
                let channels: Vec<_> = addrs
                    .iter()
                    .map(|a| ControlClient::new(shoal_proto::net::channel(a, tls.clone())))
                    .collect();
                let mut tasks = tokio::task::JoinSet::new();
                for (k, id) in service_ids.into_iter().enumerate() {
                    tasks.spawn(client(k, channels.clone(), id, tally.clone(), stop.clone()));
                }
                while tasks.join_next().await.is_some() {}
            })
        })?
    };

    let started = Instant::now();
    let mut faults = Faults::default();
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(rng.millis(300, 2_000));
        inject(&mut cluster, &mut rng, managers, client_host, &mut faults)?;
    }
    let healed = Instant::now();
    stop.store(true, Ordering::Relaxed);
    clients
        .join()
        .map_err(|_| anyhow::anyhow!("clients panicked"))??;

    // Agreement: same store everywhere, every acknowledged write in it.
    let leader = eventually("a leader", Duration::from_secs(30), || cluster.leader(0))?;
    let floor = shoal_tests::managers::store_info(&cluster, leader)?.applied;
    let hosts: Vec<usize> = (0..managers).collect();
    let agreed = converged(&cluster, &hosts, floor, Duration::from_secs(60))?;
    let agree_secs = healed.elapsed().as_secs_f64();
    eventually("every service converges", Duration::from_secs(60), || {
        services_converged(&cluster, leader)
    })?;
    let converge_secs = healed.elapsed().as_secs_f64();

    let names: HashSet<String> = {
        let out = cluster
            .shoal(leader, &["config", "ls", "--format", "{{.Name}}"])
            .ok()?;
        out.lines().map(str::to_string).collect()
    };
    let created = tally.created.lock().unwrap().clone();
    let lost: Vec<&String> = created.iter().filter(|n| !names.contains(*n)).collect();
    let stale = tally.stale.lock().unwrap().clone();
    // Each service holds at least the last update its client saw acknowledged.
    let written = tally.written.lock().unwrap().clone();
    for (k, &seq) in written.iter().enumerate() {
        let out = cluster
            .shoal(leader, &["service", "inspect", &format!("svc-{k}")])
            .ok()?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        let label = v[0]["Spec"]["Labels"]["seq"].as_str().unwrap_or("0");
        let now: u64 = label.parse()?;
        assert!(
            now >= seq,
            "svc-{k} has seq {now}, but {seq} was acknowledged"
        );
    }

    println!(
        "chaos: {managers} managers + {WORKERS} workers, {secs} s, seed replayable above\n\
         faults: {} ({:?})\n\
         writes acknowledged: {} creates, {} updates; lost: {}\n\
         reads: {}, back in time: {}; failed or timed-out requests: {}\n\
         managers agree at index {} {:.1} s after the last fault; services converged after {:.1} s",
        faults.total(),
        faults.0,
        created.len(),
        tally.updates.load(Ordering::Relaxed),
        lost.len(),
        tally.reads.load(Ordering::Relaxed),
        stale.len(),
        tally.failures.load(Ordering::Relaxed),
        agreed.applied,
        agree_secs,
        converge_secs,
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    assert!(stale.is_empty(), "reads went back in time: {stale:#?}");
    assert!(faults.total() > 0, "no fault was injected");
    assert!(!created.is_empty(), "no write was acknowledged");
    Ok(())
}

#[test]
fn chaos_3_managers() -> anyhow::Result<()> {
    chaos(3)
}

#[test]
fn chaos_5_managers() -> anyhow::Result<()> {
    chaos(5)
}
