//! Times as `docker events` takes and prints them. `--since`/`--until`
//! accept what Docker's `timetypes.GetTimestamp` does: a Go duration
//! before now (`10m`, `1h30m`), unix seconds (`1700000000`, `…0.5`), or an
//! RFC 3339-like date (`2026-12-07`, `…T20:42`, `…T20:42:33.5Z`,
//! `…+01:00`). Lines print the time as Go's `RFC3339NanoFixed`.
//!
//! Times without a zone are read, and times are printed, in UTC: the
//! `time` crate finds the local offset only with its `local-offset`
//! feature, which this crate does not enable (daemons run with TZ=UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// `value` as a point in time; durations count back from `now`.
pub fn parse(value: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    let value = value.trim();
    if value != "0"
        && let Some(nanos) = go_duration(value)
    {
        return shift(now, -nanos).with_context(|| format!("time {value:?} is out of range"));
    }
    if value.contains('-') && !value.starts_with('-') || value.contains('T') {
        return date_time(value).with_context(|| format!("invalid time {value:?}"));
    }
    unix(value).with_context(|| format!("failed to parse value as time or duration: {value:?}"))
}

/// `time` as `docker events` prints it: `2026-12-07T20:42:33.123456789Z`.
pub fn format(time: SystemTime) -> String {
    let nanos = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return "0001-01-01T00:00:00.000000000Z".into();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// `now` moved by `nanos` (negative: back).
fn shift(now: SystemTime, nanos: i128) -> Option<SystemTime> {
    let d = Duration::from_nanos(u64::try_from(nanos.unsigned_abs()).ok()?);
    if nanos < 0 {
        now.checked_sub(d)
    } else {
        now.checked_add(d)
    }
}

/// A Go duration (`time.ParseDuration`) in nanoseconds: a sign, then
/// numbers with units (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`).
fn go_duration(s: &str) -> Option<i128> {
    let (sign, mut rest) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .filter(|&i| i > 0)?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += number * unit;
        rest = &rest[unit_end..];
    }
    Some(sign * total as i128)
}

/// Unix seconds with an optional fraction (`1700000000.5`).
fn unix(value: &str) -> anyhow::Result<SystemTime> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let secs: u64 = secs.parse()?;
    if !frac.chars().all(|c| c.is_ascii_digit()) || frac.len() > 9 {
        bail!("bad fraction");
    }
    let nanos: u32 = format!("{frac:0<9}").parse()?;
    Ok(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// `YYYY-MM-DD`, then optionally `THH[:MM[:SS[.frac]]]`, then optionally
/// `Z` or `±HH:MM`.
fn date_time(value: &str) -> anyhow::Result<SystemTime> {
    let date = value.get(..10).context("expected YYYY-MM-DD")?;
    let (body, offset) = split_zone(&value[10..])?;
    let time = match body {
        "" => Time::MIDNIGHT,
        t => clock(
            t.strip_prefix(['T', 't'])
                .context("expected T after the date")?,
        )?,
    };
    let at = PrimitiveDateTime::new(calendar_date(date)?, time).assume_offset(offset);
    let nanos = at.unix_timestamp_nanos();
    let since_epoch = Duration::from_nanos(u64::try_from(nanos).context("before 1970")?);
    Ok(UNIX_EPOCH + since_epoch)
}

/// The zone at the end of `rest`, and what comes before it.
fn split_zone(rest: &str) -> anyhow::Result<(&str, UtcOffset)> {
    if let Some(body) = rest.strip_suffix(['Z', 'z']) {
        return Ok((body, UtcOffset::UTC));
    }
    let Some(at) = rest.rfind(['+', '-']) else {
        return Ok((rest, UtcOffset::UTC));
    };
    let (hours, minutes) = rest[at + 1..]
        .split_once(':')
        .context("expected a zone as ±HH:MM")?;
    let sign = if rest[at..].starts_with('-') { -1 } else { 1 };
    let offset = UtcOffset::from_hms(
        sign * hours.parse::<i8>()?,
        sign * minutes.parse::<i8>()?,
        0,
    )?;
    Ok((&rest[..at], offset))
}

fn calendar_date(date: &str) -> anyhow::Result<Date> {
    let mut parts = date.splitn(3, '-');
    let mut next = || parts.next().context("expected YYYY-MM-DD");
    let year: i32 = next()?.parse()?;
    let month = Month::try_from(next()?.parse::<u8>()?)?;
    let day: u8 = next()?.parse()?;
    Ok(Date::from_calendar_date(year, month, day)?)
}

fn clock(t: &str) -> anyhow::Result<Time> {
    let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
    let mut parts = hms.split(':');
    let mut next = || -> anyhow::Result<u8> { Ok(parts.next().unwrap_or("0").parse()?) };
    let (h, m, s) = (next()?, next()?, next()?);
    if frac.len() > 9 || !frac.chars().all(|c| c.is_ascii_digit()) {
        bail!("bad fraction of a second");
    }
    let nanos: u32 = format!("{frac:0<9}").parse()?;
    Ok(Time::from_hms_nano(h, m, s, nanos)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn durations_count_back_from_now() {
        let now = at(1_700_000_000, 0);
        assert_eq!(parse("10m", now).unwrap(), at(1_699_999_400, 0));
        assert_eq!(parse("1h30m", now).unwrap(), at(1_699_994_600, 0));
        assert_eq!(parse("1.5s", now).unwrap(), at(1_699_999_998, 500_000_000));
        assert_eq!(parse("-1m", now).unwrap(), at(1_700_000_060, 0));
    }

    #[test]
    fn unix_seconds_with_a_fraction() {
        let now = at(5, 0);
        assert_eq!(parse("1700000000", now).unwrap(), at(1_700_000_000, 0));
        assert_eq!(
            parse("1700000000.5", now).unwrap(),
            at(1_700_000_000, 500_000_000)
        );
        assert_eq!(parse("0", now).unwrap(), at(0, 0));
        assert!(parse("soon", now).is_err());
        assert!(parse("10x", now).is_err());
    }

    #[test]
    fn dates_in_dockers_forms() {
        let now = at(0, 0);
        let t = |s| parse(s, now).unwrap();
        assert_eq!(t("2023-11-14"), at(1_699_920_000, 0));
        assert_eq!(t("2023-11-14T22:13"), at(1_700_000_000 - 20, 0));
        assert_eq!(t("2023-11-14T22:13:20Z"), at(1_700_000_000, 0));
        assert_eq!(t("2023-11-14T22:13:20.25Z"), at(1_700_000_000, 250_000_000));
        assert_eq!(t("2023-11-14T23:13:20+01:00"), at(1_700_000_000, 0));
        assert_eq!(t("2023-11-14T21:13:20-01:00"), at(1_700_000_000, 0));
        assert!(parse("2023-13-01", now).is_err());
        assert!(parse("2023-11-14T25:00", now).is_err());
    }

    #[test]
    fn printed_with_nine_digits_like_docker() {
        assert_eq!(
            format(at(1_700_000_000, 123_456_789)),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            format(at(1_700_000_000, 0)),
            "2023-11-14T22:13:20.000000000Z"
        );
    }
}
