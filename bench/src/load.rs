//! The closed-loop load generator both systems are driven with: N clients,
//! each sends one request, waits for its answer, sends the next. What a
//! client measures is what a user waiting on a write would see; throughput
//! is whatever the system sustains at that concurrency (no coordinated
//! omission: a slow answer delays that client's next request, and that
//! request's latency is measured from when it was sent).
//!
//! Only requests sent after the warm-up and answered before the end count.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// Set by Ctrl-C: clients stop sending, so the run ends and cleans up.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// How long to warm up and to measure.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// Requests in this first stretch are sent but not counted.
    pub warmup: Duration,
    /// The measured stretch.
    pub measure: Duration,
}

/// What one load step measured.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Requests answered successfully in the window.
    pub requests: u64,
    /// Objects (writes) those requests committed.
    pub objects: u64,
    /// Failed requests in the window.
    pub errors: u64,
    /// The first failure, if any, to show.
    pub first_error: Option<String>,
    /// The window's length.
    pub window: Duration,
    /// Latency of successful requests, in microseconds.
    pub latency: Histogram<u64>,
}

impl Stats {
    /// Committed objects per second.
    pub fn throughput(&self) -> f64 {
        self.objects as f64 / self.window.as_secs_f64()
    }

    /// A latency quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 120 s, 3 significant digits.
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

/// Runs `clients` closed loops of `op(client, seq)` for `phase`; each
/// successful request commits `objects_per_request` objects.
pub async fn run<F, Fut>(clients: usize, objects_per_request: u64, phase: Phase, op: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let measure_from = start + phase.warmup;
    let end = measure_from + phase.measure;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram();
            let (mut errors, mut first_error) = (0u64, None);
            let mut seq = 0u64;
            loop {
                let sent = Instant::now();
                if sent >= end || STOP.load(Ordering::Relaxed) {
                    break;
                }
                let result = op(client, seq).await;
                seq += 1;
                let done = Instant::now();
                if sent < measure_from || done > end {
                    continue;
                }
                match result {
                    Ok(()) => {
                        let us = (done - sent).as_micros().max(1) as u64;
                        latency.saturating_record(us);
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                        // Do not spin on a refusing server.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (latency, errors, first_error)
        }));
    }
    let mut stats = Stats {
        requests: 0,
        objects: 0,
        errors: 0,
        first_error: None,
        window: phase.measure,
        latency: histogram(),
    };
    for task in tasks {
        match task.await {
            Ok((latency, errors, first_error)) => {
                stats.latency.add(&latency).expect("same histogram bounds");
                stats.errors += errors;
                if stats.first_error.is_none() {
                    stats.first_error = first_error;
                }
            }
            Err(e) => {
                stats.errors += 1;
                stats
                    .first_error
                    .get_or_insert(format!("client panicked: {e}"));
            }
        }
    }
    stats.requests = stats.latency.len();
    stats.objects = stats.requests * objects_per_request;
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_only_the_measured_window() {
        let phase = Phase {
            warmup: Duration::from_millis(100),
            measure: Duration::from_secs(1),
        };
        let stats = run(2, 16, phase, |_, _| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        })
        .await;
        // Two clients, 10 ms each, over 1 s: about 200 requests.
        assert!((190..=200).contains(&stats.requests), "{}", stats.requests);
        assert_eq!(stats.objects, stats.requests * 16);
        assert_eq!(stats.errors, 0);
        assert!((9.9..=10.1).contains(&stats.ms(0.5)), "{}", stats.ms(0.5));
    }
}
