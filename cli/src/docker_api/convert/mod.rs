//! Shoal's objects in the Engine API's own types (bollard's generated
//! models) and back. Pure functions: no I/O, so each is unit-tested.
//!
//! Docker encodes durations as integer nanoseconds and times as RFC 3339
//! strings with nanoseconds; the helpers here do that once.

pub mod cluster;
pub mod node;
pub mod resources;
pub mod service;
pub mod task;

use std::collections::{BTreeMap, HashMap};

use bollard::models::ObjectVersion;
use shoal_proto::objects::Meta;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A protobuf time as Docker writes it (`2026-12-07T20:42:33.123456789Z`).
pub fn rfc3339(ts: Option<&prost_types::Timestamp>) -> Option<String> {
    let ts = ts?;
    let nanos = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

/// Docker's zero time, for objects without one.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The object version clients send back with updates.
pub fn version(meta: Option<&Meta>) -> Option<ObjectVersion> {
    Some(ObjectVersion {
        index: Some(meta.map_or(0, |m| m.version)),
    })
}

/// Created and updated times of `meta`.
pub fn times(meta: Option<&Meta>) -> (Option<String>, Option<String>) {
    (
        rfc3339(meta.and_then(|m| m.created_at.as_ref())),
        rfc3339(meta.and_then(|m| m.updated_at.as_ref())),
    )
}

/// A protobuf duration in Docker's integer nanoseconds.
pub fn nanos(d: Option<&prost_types::Duration>) -> Option<i64> {
    let d = d?;
    Some(
        d.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(d.nanos)),
    )
}

/// Docker's nanoseconds as a protobuf duration; negative ones are refused.
pub fn duration(nanos: Option<i64>, what: &str) -> Result<Option<prost_types::Duration>, String> {
    match nanos {
        None => Ok(None),
        Some(n) if n < 0 => Err(format!("{what} must not be negative")),
        Some(n) => Ok(Some(prost_types::Duration {
            seconds: n / 1_000_000_000,
            nanos: (n % 1_000_000_000) as i32,
        })),
    }
}

/// Go's `omitempty`: `None` for an empty list, map or string, zero or false.
pub fn omit_empty<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

/// A Docker count, port or size (`i64` in the API) as Shoal's field of
/// type `T`; absent is zero, a negative or too large value is refused.
pub fn unsigned<T: TryFrom<i64> + Default>(v: Option<i64>, what: &str) -> Result<T, String> {
    match v {
        None => Ok(T::default()),
        Some(n) if n < 0 => Err(format!("{what} must not be negative")),
        Some(n) => T::try_from(n).map_err(|_| format!("{what} is out of range: {n}")),
    }
}

/// Shoal's unsigned counts as the API's `i64` (saturating; never reached).
pub fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Shoal's ordered map as the API's.
pub fn to_hash(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The API's map (absent is empty) as Shoal's ordered one.
pub fn from_hash(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}

/// A field Shoal cannot honour, as the 400 answer names it.
pub fn unsupported(field: &str) -> String {
    format!("{field} is not supported by Shoal")
}

/// The first of `checks` (field under `prefix`, whether it is set) that
/// holds, refused.
pub fn refuse<const N: usize>(prefix: &str, checks: [(&str, bool); N]) -> Result<(), String> {
    match checks.into_iter().find(|(_, set)| *set) {
        Some((field, _)) => Err(unsupported(&format!("{prefix}.{field}"))),
        None => Ok(()),
    }
}

/// Set to something other than its default (absent, empty, zero, false).
pub fn is_set<T: Default + PartialEq>(v: &Option<T>) -> bool {
    v.as_ref().is_some_and(|v| *v != T::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_with_nanoseconds() {
        let ts = prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 5,
        };
        assert_eq!(
            rfc3339(Some(&ts)).as_deref(),
            Some("2027-01-15T08:00:00.000000005Z")
        );
        assert_eq!(rfc3339(None), None);
    }

    #[test]
    fn durations_round_trip_in_nanoseconds() {
        let d = duration(Some(1_500_000_000), "delay").unwrap();
        assert_eq!(nanos(d.as_ref()), Some(1_500_000_000));
        assert!(duration(Some(-1), "delay").is_err());
    }
}
