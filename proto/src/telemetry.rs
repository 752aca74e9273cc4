//! `tracing` set-up shared by every Shoal binary: logs go to stderr, as
//! text for people or JSON for machines, filtered by `SHOAL_LOG` (same
//! syntax as `RUST_LOG`) or the given default level.

use tracing_subscriber::{EnvFilter, fmt};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines with structured fields.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. Safe to call more than once: later calls
/// do nothing.
pub fn init(default_level: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("SHOAL_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Installs a subscriber of errors only, as plain text on stderr, whatever
/// `SHOAL_LOG` says: for helper processes whose stderr is a file read by
/// people (the task shim's `shim.log`, which the container runtime's
/// processes inherit).
pub fn init_errors_only() {
    let _ = fmt()
        .with_max_level(tracing::Level::ERROR)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}
