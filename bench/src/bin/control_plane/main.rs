//! `cp-bench`: the control plane at scale (issue 28). 1 or 3 managers,
//! Raft on, and 1,000 simulated workers; one service of 100,000 replicas.
//!
//! - The managers are real `shoal daemon --engine sim` processes, each in a
//!   network namespace of its own (the test harness: 198.18.0.10–12),
//!   serving `/metrics` (`--metrics-addr 0.0.0.0:9323`) and logging the
//!   orchestrator's, allocator's and scheduler's commits (debug). Once
//!   joined, every manager is drained: tasks go to the simulated workers
//!   only.
//! - The workers live in this process, on a thread inside node-0's
//!   namespace. Each joins as a node does (`node/src/swarm/join.rs`):
//!   a fresh key and CSR, the worker token, `IssueNodeCertificate` over a
//!   TLS connection pinned to the token's CA digest. Then it runs the
//!   node's own agent (`shoal_worker::agent::run`: session, heartbeats,
//!   assignment stream, batched status reports over mutual TLS) and worker
//!   (`shoal_worker::worker::run`: one actor per task) on the sim engine,
//!   without a data plane or a log publisher. Node descriptions differ by
//!   host name (`sim-0000` ...).
//! - Then `shoal service create -d --replicas N --name bench busybox` on
//!   node-0's socket, and every `--poll` seconds one `ListServices` with
//!   counts (to node-0, the leader) and this process's own task count.
//!
//! Measured, from just before `service create`:
//! - placements/s: tasks the scheduler assigned (the sum of its
//!   "scheduling pass committed assigned=..." lines in the managers' logs)
//!   divided by the time of its last such commit;
//! - time until the workers hold all N tasks, and until `ListServices`
//!   counts all N running;
//! - the leader's CPU seconds (utime + stime) and its peak resident memory
//!   (VmHWM; the highest VmRSS seen while polling too), the followers' and
//!   this process's CPU seconds;
//! - leader changes: `shoal_raft_leader_changes_total` summed over the
//!   managers, before and after;
//! - the assignment stream's bytes per task: `shoal_agent_assignment_bytes_total`
//!   of this process (every worker's stream: each part's protobuf size)
//!   divided by N.
//!
//! Everything it starts goes at exit, also on failure or Ctrl-C: the
//! harness kills the daemons and removes the namespaces and state.
//! Needs root. `SHOAL_BIN`, else `shoal` next to this executable.

mod phases;
mod probe;
mod report;
mod sim;

use phases::*;
use probe::*;
use report::*;
use sim::*;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use shoal_proto::ca::IssueNodeCertificateRequest;
use shoal_proto::ca::node_ca_client::NodeCaClient;
use shoal_proto::control::control_client::ControlClient;
use shoal_proto::control::{ListFilters, ListNodesRequest, ListServicesRequest};
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::identity::NodeKey;
use shoal_proto::listing::Joined;
use shoal_proto::net::ClientTls;
use shoal_proto::objects::node_status::State as NodeState;
use shoal_proto::objects::{EngineDescription, NodeDescription, Platform, Resources};
use shoal_proto::token::JoinToken;
use shoal_tests::Cluster;
use shoal_tests::cluster::strip_ansi;
use shoal_worker::agent::{AgentConfig, SessionState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Set by Ctrl-C or SIGTERM: every wait gives up, then all is cleaned up.
static STOP: AtomicBool = AtomicBool::new(false);

/// Where each manager serves `/metrics`, inside its namespace.
const METRICS_PORT: u16 = 9323;

/// The daemons' log filter unless `SHOAL_LOG` says otherwise: the loops'
/// commits are what the phases are read from.
const LOG_FILTER: &str = "info,shoal_manager::orchestrator=debug,shoal_manager::allocator=debug,shoal_manager::scheduler=debug";

/// The control plane with simulated workers.
#[derive(Debug, Parser)]
#[command(name = "cp-bench", version)]
struct Args {
    /// Managers (Raft members), all drained.
    #[arg(long, default_value_t = 1)]
    managers: usize,
    /// Simulated workers.
    #[arg(long, default_value_t = 1000)]
    workers: usize,
    /// Replicas of the one service.
    #[arg(long, default_value_t = 100_000)]
    tasks: u64,
    /// Seconds between two polls of the service's counts.
    #[arg(long, default_value_t = 1.0)]
    poll: f64,
    /// Workers joining at once.
    #[arg(long, default_value_t = 32)]
    join_concurrency: usize,
    /// Stop waiting when not all run after this many seconds (the
    /// figures so far are reported, marked as not converged).
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Prefix length of the networks the swarm allocates, the ingress
    /// network's included (`swarm init --default-addr-pool-mask-length`).
    /// Docker's 24 gives ingress 254 addresses: a node past that has no
    /// routing-mesh address (as in Docker, a 1,000-node swarm needs a
    /// larger ingress network); 20 gives every node one.
    #[arg(long, default_value_t = 20)]
    ingress_mask: u8,
    /// Where the managers' logs are kept (ANSI colours removed), one
    /// folder per run.
    #[arg(long, default_value = "/tmp/cp-bench-logs")]
    logs: PathBuf,
    /// Log the simulated workers' agents (sessions opened and ended, with
    /// why) to stderr, at `SHOAL_LOG`'s level.
    #[arg(long)]
    agent_log: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.managers >= 1 && args.workers >= 1 && args.tasks >= 1 && args.poll > 0.0,
        "--managers, --workers, --tasks and --poll must be positive"
    );
    locate_shoal()?;
    if std::env::var_os("SHOAL_LOG").is_none() {
        // SAFETY: no other thread exists yet; the harness reads it later.
        unsafe { std::env::set_var("SHOAL_LOG", LOG_FILTER) };
    }
    raise_open_files();
    stop_on_signals();
    if args.agent_log {
        shoal_proto::telemetry::init("info", shoal_proto::telemetry::LogFormat::Text);
    }
    shoal_proto::tls::install_default_provider();

    println!("machine: {}", machine());
    println!(
        "shape: {} manager(s), Raft on, drained; {} simulated workers in this process; {} replicas; polling every {} s",
        args.managers, args.workers, args.tasks, args.poll
    );
    let cluster = start_managers(args.managers, args.ingress_mask)?;
    let result = measure(&cluster, &args);
    let kept = keep_logs(&cluster, &args);
    if result.is_err() {
        for i in 0..args.managers {
            eprintln!(
                "---- node-{i} log, last 15 lines ----\n{}",
                cluster.log_tail(i, 15)
            );
        }
    }
    let figures = result?;
    let logs = kept?;
    let phases = Phases::read(&logs, figures.t0, figures.ended)?;
    report(&args, &figures, &phases);
    if let Some(dir) = logs.first().and_then(|l| l.parent()) {
        println!("managers' logs: {}", dir.display());
    }
    drop(cluster);
    Ok(())
}

/// Copies each manager's log, colours removed, to a folder of this run's.
fn keep_logs(cluster: &Cluster, args: &Args) -> anyhow::Result<Vec<PathBuf>> {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let dir = args.logs.join(format!(
        "{stamp}-{}m-{}w-{}t",
        args.managers, args.workers, args.tasks
    ));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let mut kept = Vec::new();
    for i in 0..args.managers {
        let from = cluster.dir().join(format!("node-{i}")).join("daemon.log");
        let text = std::fs::read_to_string(&from).with_context(|| from.display().to_string())?;
        let to = dir.join(format!("node-{i}.log"));
        let clean: String = text.lines().map(|l| strip_ansi(l) + "\n").collect();
        std::fs::write(&to, clean).with_context(|| to.display().to_string())?;
        kept.push(to);
    }
    Ok(kept)
}

/// `n` sim managers in the harness's namespaces: node-0 inits, the others
/// join as managers, all drained.
fn start_managers(n: usize, mask: u8) -> anyhow::Result<Cluster> {
    let metrics = format!("--metrics-addr=0.0.0.0:{METRICS_PORT}");
    let cluster = Cluster::builder()
        .hosts(n)
        .engine("sim")
        .daemon_arg(&metrics)
        .start()
        .context("starting the managers")?;
    let addr = cluster.addr(0).to_string();
    cluster
        .shoal(
            0,
            &[
                "swarm",
                "init",
                "--advertise-addr",
                &addr,
                "--default-addr-pool-mask-length",
                &mask.to_string(),
            ],
        )
        .ok()
        .context("swarm init")?;
    for i in 1..n {
        cluster.join(i, 0, "manager")?;
    }
    cluster.wait_nodes_ready(0, n, Duration::from_secs(60))?;
    for i in 0..n {
        cluster
            .shoal(
                0,
                &[
                    "node",
                    "update",
                    "--availability",
                    "drain",
                    cluster.hostname(i),
                ],
            )
            .ok()
            .with_context(|| format!("draining node-{i}"))?;
    }
    Ok(cluster)
}

/// What one run measured.
#[derive(Debug)]
struct Figures {
    /// Just before `service create` (wall clock, to compare with logs).
    t0: SystemTime,
    /// `service create` returned.
    created: Duration,
    /// The workers held all N tasks.
    delivered: Option<Duration>,
    /// `ListServices` counted all N running (None: not within --timeout).
    running: Option<Duration>,
    /// The last poll: tasks held by workers, tasks counted running.
    last_held: f64,
    last_running: Option<u64>,
    /// When the polling ended.
    ended: Duration,
    leader: usize,
    leader_after: Option<usize>,
    leader_cpu: f64,
    followers_cpu: f64,
    bench_cpu: f64,
    leader_hwm_kb: u64,
    leader_rss_max_kb: u64,
    leader_rss_before_kb: u64,
    leader_changes: f64,
    assignment_bytes: f64,
    /// Heartbeats the workers sent during the run, and those that failed.
    beats: f64,
    beat_failures: f64,
    joined_in: Duration,
    sessions_in: Duration,
    load_before: String,
    load_after: String,
    polls: u64,
}

fn measure(cluster: &Cluster, args: &Args) -> anyhow::Result<Figures> {
    let n = args.managers;
    let token: String = cluster.join_token(0, "worker")?;
    let managers: Vec<String> = (0..n).map(|i| cluster.manager_addr(i)).collect();
    let metrics: Vec<String> = (0..n)
        .map(|i| format!("{}:{METRICS_PORT}", cluster.addr(i)))
        .collect();
    let pids: Vec<u32> = (0..n)
        .map(|i| cluster.daemon_pid(i).context("a daemon is not running"))
        .collect::<anyhow::Result<_>>()?;
    let creds = NodeCredentials::load(&NodeCredentials::dir(cluster.state_dir(0)))?
        .context("node-0 has no credentials")?;
    let bin = PathBuf::from(std::env::var_os("SHOAL_BIN").context("SHOAL_BIN")?);
    let socket = cluster.socket(0).to_path_buf();
    let plan = Plan {
        token,
        managers,
        metrics,
        pids,
        creds,
        bin,
        socket,
        workers: args.workers,
        tasks: args.tasks,
        poll: Duration::from_secs_f64(args.poll),
        join_concurrency: args.join_concurrency.max(1),
        timeout: Duration::from_secs(args.timeout),
    };
    cluster.in_netns(0, move || {
        // Built on the namespaced thread: its workers inherit the namespace.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let result = runtime.block_on(run(plan));
        runtime.shutdown_timeout(Duration::from_secs(5));
        result
    })?
}

/// What the namespaced thread needs.
struct Plan {
    token: String,
    managers: Vec<String>,
    metrics: Vec<String>,
    pids: Vec<u32>,
    creds: NodeCredentials,
    bin: PathBuf,
    socket: PathBuf,
    workers: usize,
    tasks: u64,
    poll: Duration,
    join_concurrency: usize,
    timeout: Duration,
}

async fn run(plan: Plan) -> anyhow::Result<Figures> {
    let tls = plan.creds.client_config()?;
    let control = ControlClient::new(shoal_proto::net::channel(&plan.managers[0], tls));

    // --- join the workers (bounded concurrency), then start them --------
    let started = Instant::now();
    let token: JoinToken = plan.token.parse().context("the worker token")?;
    let gate = Arc::new(Semaphore::new(plan.join_concurrency));
    let mut joins = tokio::task::JoinSet::new();
    for i in 0..plan.workers {
        let (gate, token, raw, addr) = (
            gate.clone(),
            token.clone(),
            plan.token.clone(),
            plan.managers[i % plan.managers.len()].clone(),
        );
        joins.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            anyhow::Ok((i, join(&addr, &token, &raw).await?))
        });
    }
    let mut tls_of: Vec<Option<ClientTls>> = vec![None; plan.workers];
    while let Some(joined) = joins.join_next().await {
        stopped()?;
        let (i, tls) = joined??;
        tls_of[i] = Some(tls);
    }
    let joined_in = started.elapsed();
    println!(
        "{} workers joined in {:.1} s",
        plan.workers,
        joined_in.as_secs_f64()
    );
    let sims: Vec<Sim> = tls_of
        .into_iter()
        .enumerate()
        .map(|(i, tls)| start_sim(i, tls.expect("joined"), &plan.managers))
        .collect();

    // --- every session open, every node Ready -----------------------------
    let all_nodes = plan.workers + plan.managers.len();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        stopped()?;
        let open = sims
            .iter()
            .filter(|s| s.session.borrow().manager.is_some())
            .count();
        let ready = ready_nodes(&control).await.unwrap_or(0);
        if open == plan.workers && ready == all_nodes {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {open} sessions open and {ready}/{all_nodes} nodes Ready after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let sessions_in = started.elapsed();
    println!(
        "{all_nodes} nodes Ready, every session open, {:.1} s after the first join",
        sessions_in.as_secs_f64()
    );
    // Let the joins' writes and the first assignment sets settle.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // --- before -------------------------------------------------------------
    let scrapes = scrape_all(&plan.metrics).await?;
    let leader = leader_of(&scrapes).context("no manager says it leads")?;
    let changes_before: f64 = scrapes
        .iter()
        .map(|s| value(s, "shoal_raft_leader_changes_total").unwrap_or(0.0))
        .sum();
    let cpu_before: Vec<f64> = plan.pids.iter().map(|&p| cpu_seconds(p)).collect();
    let self_before = cpu_seconds(std::process::id());
    let nodes_before = worker_metrics();
    let leader_pid = plan.pids[leader];
    let leader_rss_before_kb = status_kb(leader_pid, "VmRSS:");
    let load_before = loadavg();
    println!(
        "leader: node-{leader} (pid {leader_pid}, {} MB resident); load {load_before}",
        leader_rss_before_kb / 1024
    );

    // --- the service ----------------------------------------------------------
    let t0 = SystemTime::now();
    let start = Instant::now();
    let out = tokio::process::Command::new(&plan.bin)
        .arg("-H")
        .arg(format!("unix://{}", plan.socket.display()))
        .args(["service", "create", "-d", "--name", "bench", "--replicas"])
        .arg(plan.tasks.to_string())
        .arg("busybox")
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "service create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created = start.elapsed();
    println!(
        "service create returned after {:.2} s",
        created.as_secs_f64()
    );

    let mut delivered = None;
    let mut leader_rss_max_kb = 0;
    let mut polls = 0;
    let mut last_running = None;
    let (running, last_held) = loop {
        stopped()?;
        tokio::time::sleep(plan.poll).await;
        polls += 1;
        let held = worker_metrics().held;
        if delivered.is_none() && held >= plan.tasks as f64 {
            delivered = Some(start.elapsed());
        }
        leader_rss_max_kb = leader_rss_max_kb.max(status_kb(leader_pid, "VmRSS:"));
        let counted = running_tasks(&control).await;
        let t = start.elapsed();
        println!(
            "  {:6.1} s  held by workers {:>7}  running {:>7}  leader cpu {:6.1} s  rss {:5} MB",
            t.as_secs_f64(),
            held,
            match &counted {
                Ok(c) => c.to_string(),
                Err(e) => format!("? ({e})"),
            },
            cpu_seconds(leader_pid) - cpu_before[leader],
            status_kb(leader_pid, "VmRSS:") / 1024,
        );
        if let Ok(c) = counted {
            last_running = Some(c);
            if c >= plan.tasks {
                break (Some(t), held);
            }
        }
        if t > plan.timeout {
            println!(
                "NOT CONVERGED: not all running after {} s; reporting the figures so far",
                plan.timeout.as_secs()
            );
            break (None, held);
        }
    };
    let ended = start.elapsed();

    // --- after -----------------------------------------------------------------
    let cpu_after: Vec<f64> = plan.pids.iter().map(|&p| cpu_seconds(p)).collect();
    let self_after = cpu_seconds(std::process::id());
    let leader_hwm_kb = status_kb(leader_pid, "VmHWM:");
    let nodes_after = worker_metrics();
    let load_after = loadavg();
    let scrapes = scrape_all(&plan.metrics).await?;
    let changes_after: f64 = scrapes
        .iter()
        .map(|s| value(s, "shoal_raft_leader_changes_total").unwrap_or(0.0))
        .sum();
    let leader_after = leader_of(&scrapes);
    let followers_cpu = (0..plan.pids.len())
        .filter(|&i| i != leader)
        .map(|i| cpu_after[i] - cpu_before[i])
        .sum();

    for sim in &sims {
        sim.stop.cancel();
    }
    Ok(Figures {
        t0,
        created,
        delivered,
        running,
        last_held,
        last_running,
        ended,
        leader,
        leader_after,
        leader_cpu: cpu_after[leader] - cpu_before[leader],
        followers_cpu,
        bench_cpu: self_after - self_before,
        leader_hwm_kb,
        leader_rss_max_kb,
        leader_rss_before_kb,
        leader_changes: changes_after - changes_before,
        assignment_bytes: nodes_after.bytes - nodes_before.bytes,
        beats: nodes_after.beats - nodes_before.beats,
        beat_failures: nodes_after.beat_failures - nodes_before.beat_failures,
        joined_in,
        sessions_in,
        load_before,
        load_after,
        polls,
    })
}

fn stopped() -> anyhow::Result<()> {
    if STOP.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

async fn ready_nodes(control: &ControlClient<Channel>) -> anyhow::Result<usize> {
    let nodes = control
        .clone()
        .list_nodes(ListNodesRequest::default())
        .joined()
        .await?
        .nodes;
    Ok(nodes
        .iter()
        .filter(|n| n.status.as_ref().map(|s| s.state()) == Some(NodeState::Ready))
        .count())
}

/// The service's running tasks, as `service ls` counts them.
async fn running_tasks(control: &ControlClient<Channel>) -> anyhow::Result<u64> {
    let listed = control
        .clone()
        .list_services(ListServicesRequest {
            filters: Some(ListFilters {
                names: vec!["bench".into()],
                ..Default::default()
            }),
            status: true,
        })
        .joined()
        .await?;
    Ok(listed.statuses.iter().map(|c| c.running_tasks).sum())
}

/// Points the harness at `shoal` next to this executable unless
/// `SHOAL_BIN` says otherwise.
fn locate_shoal() -> anyhow::Result<()> {
    if let Some(bin) = std::env::var_os("SHOAL_BIN") {
        anyhow::ensure!(
            Path::new(&bin).is_file(),
            "SHOAL_BIN={} is not a file",
            Path::new(&bin).display()
        );
        return Ok(());
    }
    let bin = std::env::current_exe()?.with_file_name("shoal");
    anyhow::ensure!(
        bin.is_file(),
        "{} not found: run `cargo build --release -p shoal` in the repository root and set SHOAL_BIN=target/release/shoal",
        bin.display()
    );
    // SAFETY: no other thread exists yet; the harness reads it later.
    unsafe { std::env::set_var("SHOAL_BIN", &bin) };
    Ok(())
}

/// 1,000 sessions need more descriptors than the usual 1,024, here and in
/// the daemons (they inherit the limit).
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Ctrl-C or SIGTERM: the waits give up, and the harness cleans up.
fn stop_on_signals() {
    std::thread::spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("interrupted: stopping, then cleaning up");
            STOP.store(true, Ordering::Relaxed);
        });
    });
}
