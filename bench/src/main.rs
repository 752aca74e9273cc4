//! `raft-bench`: how many replicated, durable writes per second Shoal's
//! managers commit, and how long a client waits, next to a 3-member etcd
//! cluster driven the same way on the same machine.
//!
//! # Layout
//! - [`load`]: the closed-loop generator (N clients, each waits for its
//!   answer before the next request) and its latency histogram.
//! - [`plan`]: the run's shape, identical for both systems.
//! - [`shoal`]: 3 managers in network namespaces (the test harness),
//!   driven from node-0's namespace with a manager certificate.
//! - [`etcd`]: 3 etcd members on loopback, driven with `etcd-client`.
//! - [`report`]: machine facts (fsync latency first), the table, and the
//!   generated section of docs/benchmarks.md.
//!
//! It builds nothing: run `cargo build --release -p shoal -p shoal-bench`
//! first. The `shoal` binary is `SHOAL_BIN`, else the one next to this
//! executable. Needs root (namespaces) and, for the comparison, `etcd` on
//! PATH (Debian `etcd-server`). Everything it starts is stopped and
//! removed at the end, also when a step fails; Ctrl-C ends the run early
//! and cleans up the same way.

mod certs;
mod etcd;
mod load;
mod plan;
mod report;
mod shoal;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::load::Phase;
use crate::plan::{Mode, Plan, Row};

/// Shoal's replicated write path against etcd, closed loop.
#[derive(Debug, Parser)]
#[command(name = "raft-bench", version)]
struct Args {
    /// Concurrent clients, one step each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    concurrency: Vec<usize>,
    /// Modes run (a profile of one mode needs only that one).
    #[arg(long, value_delimiter = ',', default_value = "single,batched")]
    modes: Vec<Mode>,
    /// Seconds of warm-up per step (sent, not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured per step.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Objects per request in batched mode.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Client connections shared by the clients (same for both systems).
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Bytes of each object's value.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// The etcd binary (default: `etcd` on PATH).
    #[arg(long)]
    etcd_bin: Option<PathBuf>,
    /// Run Shoal only.
    #[arg(long)]
    skip_etcd: bool,
    /// etcd over mutual TLS (members, peers and client), as Shoal always
    /// runs; without it etcd runs plaintext, its default.
    #[arg(long)]
    etcd_tls: bool,
    /// Run etcd only.
    #[arg(long)]
    skip_shoal: bool,
    /// Shoal managers (1 measures the request path without replication).
    #[arg(long, default_value_t = 3)]
    managers: usize,
    /// Where to write the results (the generated section is replaced).
    #[arg(long, default_value = "docs/benchmarks.md")]
    doc: PathBuf,
    /// Print only; leave the doc alone.
    #[arg(long)]
    no_doc: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.batch >= 1 && args.conns >= 1 && args.payload >= 1,
        "--batch, --conns and --payload must be at least 1"
    );
    // A step run twice would create the same names again.
    anyhow::ensure!(
        distinct(&args.modes) && distinct(&args.concurrency),
        "--modes and --concurrency must not repeat a value"
    );
    let plan = Plan {
        concurrency: args.concurrency.clone(),
        modes: args.modes.clone(),
        phase: Phase {
            warmup: Duration::from_secs_f64(args.warmup),
            measure: Duration::from_secs_f64(args.duration),
        },
        batch: args.batch,
        conns: args.conns,
        payload: args.payload,
        etcd_tls: args.etcd_tls,
    };
    locate_shoal()?;
    stop_on_ctrl_c();
    let etcd_bin = if args.skip_etcd {
        None
    } else {
        Some(etcd::binary(args.etcd_bin.as_deref())?)
    };
    let machine = report::Machine::gather(etcd_bin.as_deref().map(etcd::version).as_deref());
    for (k, v) in &machine.facts {
        println!("{k}: {v}");
    }

    let mut rows: Vec<Row> = Vec::new();
    if !args.skip_shoal {
        // The harness removes every namespace and daemon when dropped.
        let n = args.managers.max(1);
        let cluster = shoal::start(n).with_context(|| format!("starting {n} Shoal managers"))?;
        println!(
            "Shoal: {n} managers up; leader is node-{}",
            cluster.leader(0)?
        );
        rows.extend(shoal::run(&cluster, &plan)?);
    }
    if let Some(bin) = etcd_bin
        .as_ref()
        .filter(|_| !load::STOP.load(Ordering::Relaxed))
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rows.extend(runtime.block_on(etcd::run(bin, &plan))?);
    }
    anyhow::ensure!(
        !load::STOP.load(Ordering::Relaxed),
        "interrupted: nothing written"
    );

    println!("\n{}", report::table(&plan, &rows));
    if !args.no_doc {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let section = report::section(&command, &machine, &plan, &rows);
        report::update_doc(&args.doc, &section)
            .with_context(|| format!("writing {}", args.doc.display()))?;
        println!("written to {}", args.doc.display());
    }
    Ok(())
}

/// Whether no value of `v` comes twice.
fn distinct<T: Eq + std::hash::Hash>(v: &[T]) -> bool {
    v.iter().collect::<std::collections::HashSet<_>>().len() == v.len()
}

/// Points the harness at `shoal` next to this executable unless
/// `SHOAL_BIN` says otherwise.
fn locate_shoal() -> anyhow::Result<()> {
    if std::env::var_os("SHOAL_BIN").is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("shoal");
    anyhow::ensure!(
        bin.is_file(),
        "{} not found: run `cargo build --release -p shoal` in the repository root and set SHOAL_BIN=target/release/shoal",
        bin.display()
    );
    // SAFETY: no other thread exists yet; the harness reads it later.
    unsafe { std::env::set_var("SHOAL_BIN", &bin) };
    Ok(())
}

/// Ctrl-C stops the clients; the run then ends and cleans up normally.
fn stop_on_ctrl_c() {
    std::thread::spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: stopping the clients, then cleaning up");
                load::STOP.store(true, Ordering::Relaxed);
            }
        });
    });
}
