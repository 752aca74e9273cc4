//! `store-bench`: what one manager's store costs per object, alone.
//!
//! Applies config creates in batches, as the leader does for `Batch`
//! requests: each batch is built through a transaction (the leader's
//! check), then applied at the next log index (the check and write every
//! manager does). A frozen copy is held a third of the time, as the
//! snapshot thread holds one, so writes pay for copying shared trie nodes.
//!
//! Single-threaded and with no disk or network, so it repeats to a few per
//! cent on a host whose throughput runs move 10–20 %: use it to compare
//! two builds of the store. Prints time per create, peak resident memory
//! and page faults.

use std::time::Instant;

use clap::Parser;
use shoal_manager::store::Store;
use shoal_proto::identity::new_id;
use shoal_proto::objects::{Annotations, Config, ConfigSpec};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One manager's store, config creates in batches, no Raft.
#[derive(Debug, Parser)]
#[command(name = "store-bench")]
struct Args {
    /// Configs created in all.
    #[arg(long, default_value_t = 1_000_000)]
    objects: usize,
    /// Configs per batch (one log entry).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Bytes of data per config.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Batches per cycle of the frozen copy: held for the last third.
    #[arg(long, default_value_t = 3000)]
    freeze_cycle: usize,
}

fn config(n: usize, payload: usize) -> Config {
    Config {
        id: new_id(),
        spec: Some(ConfigSpec {
            annotations: Some(Annotations {
                name: format!("bench-{n}"),
                ..Default::default()
            }),
            data: vec![b'x'; payload],
        }),
        ..Default::default()
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.batch > 0 && args.freeze_cycle > 0,
        "batch and cycle must be positive"
    );
    let store = Store::new();
    let batches = args.objects.div_ceil(args.batch);
    let mut frozen = None;
    let started = Instant::now();
    for b in 0..batches {
        match b % args.freeze_cycle {
            0 => frozen = None,
            x if x == args.freeze_cycle * 2 / 3 => frozen = Some(store.frozen()),
            _ => {}
        }
        let first = b * args.batch;
        let (batch, ()) = store.build(|tx| {
            (first..first + args.batch).try_for_each(|n| tx.create(config(n, args.payload)))
        })?;
        store.apply(b as u64 + 1, batch)?;
    }
    let elapsed = started.elapsed();
    drop(frozen);
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    // The snapshot thread's work: the whole store encoded.
    let (_, frozen) = store.frozen();
    let started = Instant::now();
    let mut buf = Vec::with_capacity(args.objects * (args.payload + 160));
    let at = frozen.encode_snapshot_field(1, &mut buf);
    let encoded = started.elapsed();
    let objects = batches * args.batch;
    println!(
        "{objects} creates in batches of {}: {:.2} µs per create, peak RSS {} MB, {} page faults",
        args.batch,
        elapsed.as_secs_f64() * 1e6 / objects as f64,
        usage.ru_maxrss / 1024,
        usage.ru_minflt,
    );
    println!(
        "snapshot: {} MB encoded in {:.0} ms, {:.2} µs per object",
        (buf.len() - at) >> 20,
        encoded.as_secs_f64() * 1e3,
        encoded.as_secs_f64() * 1e6 / objects as f64,
    );
    Ok(())
}
