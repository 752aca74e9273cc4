//! Output helpers shared by commands: `--format json`, and human sizes.
//! Docker-style tables, templates and times live in the submodules.

pub mod listing;
pub mod table;
pub mod template;
pub mod time;

use serde::Serialize;

/// Prints `value` as indented JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Bytes as Docker shows them in `info`: `23.44GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

/// The `--format` values every command accepts today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON, for scripts.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_like_docker() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1536), "1.50KiB");
        assert_eq!(human_bytes(24 * 1024 * 1024 * 1024), "24.00GiB");
    }
}
