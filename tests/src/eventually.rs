//! Retrying assertions for things that converge: a daemon that starts, a
//! leader that is elected. Patience scales with `SHOAL_TEST_PATIENCE` so a
//! slow CI machine can be given more time without editing tests.

use std::time::{Duration, Instant};

/// The patience multiplier from the environment (default 1).
pub fn patience() -> f64 {
    std::env::var("SHOAL_TEST_PATIENCE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|p: &f64| *p > 0.0)
        .unwrap_or(1.0)
}

/// Calls `check` every 100 ms until it returns `Ok` or `timeout` (times the
/// patience) has passed; returns the last error, saying how long it tried.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout.mul_f64(patience());
    let started = Instant::now();
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(err) if Instant::now() >= deadline => {
                return Err(err.context(format!(
                    "{what}: still failing after {:.1}s",
                    started.elapsed().as_secs_f64()
                )));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
