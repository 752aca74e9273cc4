//! Durability of the managers' replicated state, on real daemons:
//! a follower that missed 20,000 writes catches up from a streamed raft
//! snapshot; kill -9 of random managers under load loses no write a client
//! saw acknowledged; a damaged state dir or a wrong key is refused with an
//! error that says what is wrong, never served as an empty cluster.
//!
//! Managers are proved to hold identical state by `shoal info`'s
//! `Swarm.RaftAppliedIndex` and `Swarm.StoreDigest` (sha256 of the store).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use shoal_proto::control::CreateConfigRequest;
use shoal_proto::control::control_client::ControlClient;
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::objects::{Annotations, ConfigSpec};
use shoal_tests::cluster::strip_ansi;
use shoal_tests::managers::{
    Rng, client_runtime, converged, credentials, managers, spawn_in_netns, store_info,
};
use shoal_tests::{Cluster, eventually};
use tonic::Code;
use tonic::transport::Channel;

// ---- helpers ----

/// The names of every config, as host `i` lists them.
fn config_names(cluster: &Cluster, i: usize) -> anyhow::Result<Vec<String>> {
    let out = cluster
        .shoal(i, &["config", "ls", "--format", "{{.Name}}"])
        .ok()?;
    Ok(out.lines().map(str::to_string).collect())
}

/// `config ls -q` on host `i`, sorted.
fn config_ids(cluster: &Cluster, i: usize) -> anyhow::Result<Vec<String>> {
    let out = cluster.shoal(i, &["config", "ls", "-q"]).ok()?;
    let mut ids: Vec<String> = out.lines().map(str::to_string).collect();
    ids.sort();
    Ok(ids)
}

/// Creates config `name` (small data) through `client`.
async fn create_config(
    client: &mut ControlClient<Channel>,
    name: &str,
) -> Result<(), tonic::Status> {
    let request = CreateConfigRequest {
        spec: Some(ConfigSpec {
            annotations: Some(Annotations {
                name: name.to_string(),
                ..Default::default()
            }),
            data: format!("value of {name}").into_bytes(),
        }),
    };
    match tokio::time::timeout(Duration::from_secs(20), client.create_config(request)).await {
        Ok(r) => r.map(drop),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer within 20s")),
    }
}

/// What a bulk writer did.
#[derive(Debug, Default)]
struct Written {
    ok: usize,
    retries: usize,
    failed: Vec<String>,
}

/// Creates every config in `names` through the manager at `addr` on one
/// channel, `concurrency` requests in flight. A request that fails is
/// retried; on a retry, "already exists" means the earlier attempt took.
async fn write_all(
    addr: String,
    creds: NodeCredentials,
    names: Vec<String>,
    concurrency: usize,
) -> Written {
    let channel = shoal_proto::net::channel(&addr, creds.client_config().expect("tls"));
    let names = Arc::new(names);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (names, next) = (names.clone(), next.clone());
        let mut client = ControlClient::new(channel.clone());
        tasks.spawn(async move {
            let mut done = Written::default();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(k) else {
                    return done;
                };
                if k > 0 && k % 2_000 == 0 {
                    eprintln!(
                        "  {k} writes sent after {:.1}s",
                        started.elapsed().as_secs_f64()
                    );
                }
                let mut attempt = 0;
                loop {
                    match create_config(&mut client, name).await {
                        Ok(()) => break done.ok += 1,
                        Err(s) if attempt > 0 && s.code() == Code::AlreadyExists => {
                            break done.ok += 1;
                        }
                        Err(s) if attempt < 30 && s.code() != Code::AlreadyExists => {
                            attempt += 1;
                            done.retries += 1;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(s) => {
                            eprintln!("writing {name} failed: {s}");
                            break done.failed.push(name.clone());
                        }
                    }
                }
            }
        });
    }
    let mut all = Written::default();
    while let Some(part) = tasks.join_next().await {
        let part = part.expect("writer task");
        all.ok += part.ok;
        all.retries += part.retries;
        all.failed.extend(part.failed);
    }
    all
}

// ---- 1. snapshot catch-up ----

/// The index in the daemon log line saying a raft snapshot was restored.
fn restored_snapshot_index(log: &str) -> Option<u64> {
    strip_ansi(log)
        .lines()
        .filter(|l| l.contains("restored store from raft snapshot"))
        .filter_map(|l| {
            let rest = &l[l.find("index=")? + "index=".len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .max()
}

#[test]
fn a_follower_down_for_20000_writes_catches_up_by_snapshot() -> anyhow::Result<()> {
    const WRITES: usize = 20_000;
    // Writes that reach the leader together share a log entry: with 8 in
    // flight at most 8 do, so the snapshot taken after 10,000 writes lies
    // at entry 1,250 or later and the log is compacted (500 entries kept
    // behind it) past the follower. With 256 in flight ~26 shared each
    // entry, the snapshot came at entry ~380, nothing was compacted, and
    // the follower caught up from the log instead.
    const IN_FLIGHT: usize = 8;
    shoal_proto::tls::install_default_provider();
    let mut cluster = managers(3)?;
    let leader = cluster.leader(0)?;
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let down_at = store_info(&cluster, follower)?.applied;
    cluster.kill(follower);

    let names: Vec<String> = (0..WRITES).map(|k| format!("bulk-{k:05}")).collect();
    let (addr, creds) = (cluster.manager_addr(leader), credentials(&cluster, leader)?);
    let started = Instant::now();
    let written = cluster.in_netns(leader, move || {
        client_runtime().block_on(write_all(addr, creds, names, IN_FLIGHT))
    })?;
    let took = started.elapsed();
    eprintln!(
        "{WRITES} configs written in {:.1}s ({:.0}/s, {IN_FLIGHT} in flight, {} retries) with node-{follower} down",
        took.as_secs_f64(),
        WRITES as f64 / took.as_secs_f64(),
        written.retries
    );
    assert!(written.failed.is_empty(), "writes failed: {written:?}");
    assert_eq!(written.ok, WRITES);
    let ahead = store_info(&cluster, leader)?;
    // Writes that reach the leader together share a log entry, so the
    // log grew by fewer entries than writes.
    assert!(ahead.applied > down_at, "{ahead:?}");

    let log_before = cluster.log_tail(follower, usize::MAX).len();
    let started = Instant::now();
    cluster.restart(follower)?;
    let agreed = converged(&cluster, &[0, 1, 2], ahead.applied, Duration::from_secs(60))?;
    eprintln!(
        "node-{follower} caught up to index {} in {:.1}s",
        agreed.applied,
        started.elapsed().as_secs_f64()
    );
    assert!(agreed.applied >= ahead.applied, "{agreed:?} < {ahead:?}");
    // It caught up from a snapshot: the entries it missed were compacted
    // away on the others (snapshot every 10,000 writes, 500 entries kept
    // behind).
    let log = cluster.log_tail(follower, usize::MAX);
    let restored =
        restored_snapshot_index(&log[log_before.min(log.len())..]).with_context(|| {
            format!(
                "node-{follower} never restored a raft snapshot:\n{}",
                cluster.log_tail(follower, 40)
            )
        })?;
    assert!(
        restored > down_at + 500,
        "node-{follower} restored a snapshot at {restored}, down at {down_at}"
    );
    eprintln!(
        "node-{follower} (down at index {down_at}) restored a raft snapshot at index {restored}"
    );

    // Everyone stops and starts from disk alone.
    let ids = config_ids(&cluster, leader)?;
    assert_eq!(ids.len(), WRITES);
    for i in 0..3 {
        let status = cluster.stop(i)?;
        assert!(status.success(), "node-{i} stopped with {status}");
    }
    let started = Instant::now();
    for i in 0..3 {
        cluster.restart(i)?;
    }
    let after = converged(
        &cluster,
        &[0, 1, 2],
        agreed.applied,
        Duration::from_secs(60),
    )?;
    let again = eventually("configs listed", Duration::from_secs(30), || {
        config_ids(&cluster, follower)
    })?;
    eprintln!(
        "all three restarted from disk and agree at index {} after {:.1}s",
        after.applied,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(again.len(), WRITES);
    assert!(again == ids, "the configs changed across a full restart");
    Ok(())
}

// ---- 2. kill -9 under load ----

#[test]
fn kill_9_under_load_loses_no_acknowledged_write() -> anyhow::Result<()> {
    const KILLS: usize = 5;
    const IN_FLIGHT: usize = 16;
    shoal_proto::tls::install_default_provider();
    let mut cluster = managers(3)?;
    let mut rng = Rng::from_env();

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<String> = (0..3).map(|i| cluster.manager_addr(i)).collect();
    let creds = credentials(&cluster, 0)?;
    let writer = {
        let (acked, failures, stop) = (acked.clone(), failures.clone(), stop.clone());
        spawn_in_netns(&cluster, 0, move || {
            client_runtime().block_on(async move {
                let tls = creds.client_config().expect("tls");
                let clients: Vec<_> = addrs
                    .iter()
                    .map(|a| ControlClient::new(shoal_proto::net::channel(a, tls.clone())))
                    .collect();
                let seq = Arc::new(AtomicUsize::new(0));
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..IN_FLIGHT {
                    let (acked, failures, stop, seq) =
                        (acked.clone(), failures.clone(), stop.clone(), seq.clone());
                    let clients = clients.clone();
                    tasks.spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            let k = seq.fetch_add(1, Ordering::Relaxed);
                            let name = format!("load-{k:06}");
                            // Spread over every manager; followers forward.
                            let mut client = clients[k % clients.len()].clone();
                            match create_config(&mut client, &name).await {
                                Ok(()) => acked.lock().unwrap().push(name),
                                Err(_) => {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                            }
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
            })
        })?
    };
    let acked_count = || acked.lock().unwrap().len();
    let started = Instant::now();
    // Writes must flow before the first kill.
    eventually("first writes", Duration::from_secs(20), || {
        anyhow::ensure!(acked_count() >= 50);
        Ok(())
    })?;

    for round in 1..=KILLS {
        std::thread::sleep(rng.millis(200, 2_000));
        let victim = rng.below(3) as usize;
        let was_leader = cluster.leader(victim).ok() == Some(victim);
        let at = acked_count();
        cluster.kill(victim);
        eprintln!(
            "kill {round}: kill -9 node-{victim}{} after {at} acknowledged writes",
            if was_leader { " (the leader)" } else { "" }
        );
        std::thread::sleep(rng.millis(0, 1_500));
        cluster.restart(victim)?;
        // Back to a healthy cluster before the next kill: writes flow again
        // and the victim has caught up.
        let resumed = acked_count();
        eventually(
            &format!("writes after restarting node-{victim}"),
            Duration::from_secs(60),
            || {
                anyhow::ensure!(acked_count() >= resumed + 50);
                let (v, l) = (
                    store_info(&cluster, victim)?,
                    store_info(&cluster, cluster.leader(victim)?)?,
                );
                anyhow::ensure!(v.applied + 200 >= l.applied, "{v:?} vs {l:?}");
                Ok(())
            },
        )?;
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    eprintln!(
        "{} writes acknowledged, {} failed, over {:.1}s and {KILLS} kill -9s",
        acked.len(),
        failures.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );

    let leader_now = eventually("a leader", Duration::from_secs(30), || cluster.leader(0))?;
    let floor = store_info(&cluster, leader_now)?.applied;
    let agreed = converged(&cluster, &[0, 1, 2], floor, Duration::from_secs(60))?;
    eprintln!("managers agree at index {}", agreed.applied);
    let names: std::collections::HashSet<String> = config_names(&cluster, 0)?.into_iter().collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !names.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    Ok(())
}

// ---- 3. damaged state ----

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Copies of files, to put back after damaging them.
struct Saved(Vec<(PathBuf, Vec<u8>)>);

impl Saved {
    fn of(paths: &[PathBuf]) -> anyhow::Result<Saved> {
        Ok(Saved(
            paths
                .iter()
                .map(|p| Ok((p.clone(), std::fs::read(p)?)))
                .collect::<anyhow::Result<_>>()?,
        ))
    }

    fn restore(&self) -> anyhow::Result<()> {
        for (path, bytes) in &self.0 {
            std::fs::write(path, bytes)?;
        }
        Ok(())
    }
}

/// Restarting host `i` must fail: its daemon exits non-zero and its log
/// says why. Returns the error the daemon printed.
fn refused_start(cluster: &mut Cluster, i: usize) -> anyhow::Result<String> {
    match cluster.restart(i) {
        Ok(()) => {
            let listed = cluster.shoal(i, &["config", "ls", "-q"]);
            anyhow::bail!(
                "node-{i} started on a damaged state dir; config ls: {:?} {}",
                listed.status,
                listed.stderr
            )
        }
        Err(e) => {
            let message = format!("{e:#}");
            anyhow::ensure!(
                message.contains("daemon exited with exit status: 1"),
                "{message}"
            );
            let error = cluster
                .log_tail(i, 5)
                .lines()
                .rev()
                .find(|l| l.starts_with("Error: "))
                .with_context(|| format!("no error line in the log: {message}"))?
                .to_string();
            Ok(error)
        }
    }
}

#[test]
fn a_damaged_state_dir_is_refused_with_a_clear_error() -> anyhow::Result<()> {
    const CONFIGS: usize = 50;
    shoal_proto::tls::install_default_provider();
    // Two separate single-manager clusters.
    let mut cluster = Cluster::start(2)?;
    for host in 0..2 {
        cluster.init_swarm(host)?;
    }
    let (addr, creds) = (cluster.manager_addr(0), credentials(&cluster, 0)?);
    let names: Vec<String> = (0..CONFIGS).map(|k| format!("kept-{k:02}")).collect();
    let written = cluster.in_netns(0, move || {
        client_runtime().block_on(write_all(addr, creds, names, 8))
    })?;
    assert_eq!(written.ok, CONFIGS, "{written:?}");
    let ids = config_ids(&cluster, 0)?;
    assert_eq!(ids.len(), CONFIGS);

    // (a) One flipped byte in the middle of sled's log file. sled takes it
    // for a torn write and drops it with everything after it.
    let status = cluster.stop(0)?;
    assert!(status.success(), "node-0 stopped with {status}");
    let state = cluster.state_dir(0).to_path_buf();
    let raft_dir = state.join("manager/raft");
    let sled_log = raft_dir.join("db/db");
    let saved = Saved::of(&files(&raft_dir))?;
    let mut bytes = std::fs::read(&sled_log).context("sled's log file")?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&sled_log, bytes)?;
    let error = refused_start(&mut cluster, 0)?;
    eprintln!("one flipped byte in {}: {error}", sled_log.display());
    assert!(
        error.contains(&raft_dir.display().to_string())
            && (error.contains("damaged") || error.contains("corrupt")),
        "unclear error: {error}"
    );
    // Nothing was thrown away: with the files put back it starts whole.
    saved.restore()?;
    cluster.restart(0)?;
    let back = eventually("node-0 back", Duration::from_secs(20), || {
        config_ids(&cluster, 0)
    })?;
    assert_eq!(back, ids);

    // (b) Another cluster's data key.
    let keys = state.join("manager/keys");
    let other_keys = cluster.state_dir(1).join("manager/keys");
    let status = cluster.stop(0)?;
    assert!(status.success());
    let saved = Saved::of(&[keys.join("data-key"), keys.join("kek")])?;
    std::fs::copy(other_keys.join("data-key"), keys.join("data-key"))?;
    let error = refused_start(&mut cluster, 0)?;
    eprintln!("another cluster's data-key: {error}");
    assert!(
        error.contains(&keys.join("data-key").display().to_string()),
        "the error does not name the data key file: {error}"
    );

    // ... with its key-encryption key too: the key opens, the state does not.
    std::fs::copy(other_keys.join("kek"), keys.join("kek"))?;
    let error = refused_start(&mut cluster, 0)?;
    eprintln!("another cluster's data-key and kek: {error}");
    assert!(
        error.contains(&raft_dir.display().to_string()) && error.contains("wrong data key"),
        "unclear error: {error}"
    );

    // A damaged data key.
    saved.restore()?;
    let mut dek = std::fs::read(keys.join("data-key"))?;
    let last = dek.len() - 1;
    dek[last] ^= 0x01;
    std::fs::write(keys.join("data-key"), dek)?;
    let error = refused_start(&mut cluster, 0)?;
    eprintln!("damaged data-key: {error}");
    assert!(
        error.contains(&keys.join("data-key").display().to_string()) && error.contains("damaged"),
        "unclear error: {error}"
    );

    // A missing data key: not a new cluster.
    std::fs::remove_file(keys.join("data-key"))?;
    let error = refused_start(&mut cluster, 0)?;
    eprintln!("missing data-key: {error}");
    assert!(
        error.contains(&keys.join("data-key").display().to_string()),
        "the error does not name the data key file: {error}"
    );

    // Put back, it is whole again.
    saved.restore()?;
    cluster.restart(0)?;
    let back = eventually("node-0 back", Duration::from_secs(20), || {
        config_ids(&cluster, 0)
    })?;
    assert_eq!(back, ids);
    Ok(())
}
