//! The scalar values of service flags and compose keys, as Docker's CLI
//! reads them: Go durations, binary sizes, CPUs, booleans, pids limits
//! and `KEY=VALUE` pairs.

use prost_types::Duration;

/// A Go duration (`300ms`, `10s`, `1m30s`, `1h`, `1.5s`); a bare `0` too.
pub fn duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. 500ms, 10s, 1m30s or 2h");
    if s == "0" {
        return Ok(Duration::default());
    }
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        nanos += value * scale;
        rest = &rest[unit_len..];
    }
    let nanos = nanos.round() as i64;
    Ok(Duration {
        seconds: nanos / 1_000_000_000,
        nanos: (nanos % 1_000_000_000) as i32,
    })
}

/// Nanoseconds of a duration, as Docker's JSON shows them (saturating: a
/// spec stored before the manager bounded durations still prints).
pub fn nanos(d: &Duration) -> i64 {
    d.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(d.nanos))
}

/// A size in bytes (`512M`, `1g`, `1.5GiB`, `1024`), in Docker's binary units.
pub fn memory(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid size {s:?}: expected e.g. 512M, 1g or 1048576");
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let value: f64 = t[..split].parse().map_err(|_| bad())?;
    let unit = t[split..].trim();
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b'));
    let scale: f64 = match unit.unwrap_or(&t[split..]).trim() {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        _ => return Err(bad()),
    };
    if value < 0.0 {
        return Err(bad());
    }
    Ok((value * scale) as i64)
}

/// CPUs as a decimal (`0.5`, `2`) → nano CPUs.
pub fn cpus(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid CPU count {s:?}: expected a number such as 0.5 or 2");
    let v: f64 = s.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    Ok((v * 1e9).round() as i64)
}

/// `KEY=VALUE` of a label-like flag; the key must not be empty.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.trim().is_empty() {
        return Err(format!("invalid value {s:?}: the key is empty"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Go's `strconv.ParseBool`, with a bare flag meaning true.
pub fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(format!("invalid boolean {v:?}: expected true or false")),
    }
}

/// The key of a `--*-rm` value: `nofile` of `nofile` or `nofile=1024`,
/// as Docker reads them.
pub fn key_of(s: &str) -> &str {
    s.split_once('=').map_or(s, |(k, _)| k)
}

/// `--limit-pids`: 0 (the engine's default, unlimited) or more.
pub fn pids(s: &str) -> Result<i64, String> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("invalid pids limit {s:?}: expected 0 (unlimited) or more"))
}
