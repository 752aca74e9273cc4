//! When a node renews: at a point between 50% and 80% of its
//! certificate's lifetime that depends on the node id, so a cluster's
//! nodes don't all renew at once (as swarmkit does).

use std::time::SystemTime;

/// Where in its lifetime a node renews: 0.5–0.8, fixed per node id.
pub fn renewal_fraction(node_id: &str) -> f64 {
    let spread = node_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 1000;
    0.5 + 0.3 * f64::from(spread) / 1000.0
}

/// Whether credentials issued at `issued` and expiring at `expires` are due.
pub fn due(issued: SystemTime, expires: SystemTime, fraction: f64, now: SystemTime) -> bool {
    let life = expires.duration_since(issued).unwrap_or_default();
    now >= issued + life.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn nodes_renew_between_half_and_four_fifths_of_the_lifetime() {
        for id in ["a", "node-1", "x7k2m9q4w8e6r1t3y5u0i2o4p"] {
            let f = renewal_fraction(id);
            assert!((0.5..=0.8).contains(&f), "{id}: {f}");
        }
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = t0 + Duration::from_secs(100);
        assert!(!due(t0, end, 0.6, t0 + Duration::from_secs(59)));
        assert!(due(t0, end, 0.6, t0 + Duration::from_secs(60)));
        assert!(
            due(t0, end, 0.6, end + Duration::from_secs(1)),
            "an expired certificate is due"
        );
    }
}
