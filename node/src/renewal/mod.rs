//! Certificate renewal. A node renews its certificate on its own, well
//! before it expires ([`schedule`]), or at once when the cluster's trusted
//! roots change (`swarm ca --rotate`) or its desired role does (`node
//! promote/demote`); [`request`] asks the CA, [`apply`] puts the new
//! certificate to use, including the role change.

use std::sync::Weak;
use std::time::{Duration, SystemTime};

use shoal_proto::shutdown::CancellationToken;

use crate::swarm::SwarmNode;

mod apply;
mod request;
mod schedule;

/// How often the loop looks at its certificate.
const TICK: Duration = Duration::from_secs(1);
/// How often (in ticks) it asks the CA for its trusted roots and its
/// desired role.
const STATUS_EVERY: u32 = 3;

/// Runs until `stop` or the node is gone.
pub(crate) async fn run(node: Weak<SwarmNode>, stop: CancellationToken) {
    let mut tick = 0u32;
    let mut warned_expired = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        tick = tick.wrapping_add(1);
        let Some(node) = node.upgrade() else { return };
        let Some((creds, manager, tls)) = node.renewal_view() else {
            continue;
        };
        let identity = match creds.identity() {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "own certificate unreadable; not renewing");
                continue;
            }
        };
        let Ok((issued, expires)) = creds.validity() else {
            continue;
        };
        if SystemTime::now() > expires {
            // Renewal needs a valid certificate: an expired one can't get a new one.
            if !warned_expired {
                tracing::error!(
                    expired_at = %prost_types::Timestamp::from(expires),
                    "this node's certificate has expired (was the node down longer than its lifetime, or is its clock wrong?); \
                     leave the swarm (`shoal swarm leave --force`) and join it again"
                );
                warned_expired = true;
            }
            continue;
        }
        warned_expired = false;
        let fraction = schedule::renewal_fraction(&identity.node_id);
        let mut reason = schedule::due(issued, expires, fraction, SystemTime::now())
            .then_some("certificate due for renewal");
        if reason.is_none() && tick.is_multiple_of(STATUS_EVERY) {
            // The CA's answers are awaited only while the node runs: a
            // leave or a shutdown waits for this loop to end.
            let wanted = tokio::select! {
                _ = stop.cancelled() => return,
                wanted = request::wanted(&manager, &tls, &identity.node_id) => wanted,
            };
            match wanted {
                Ok((roots, _)) if roots != creds.roots_pem => {
                    reason = Some("the cluster's root CA changed")
                }
                Ok((_, role)) if role != identity.role => reason = Some("the node's role changed"),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "could not ask the CA about this node"),
            }
        }
        let Some(reason) = reason else { continue };
        let renewed = tokio::select! {
            _ = stop.cancelled() => return,
            renewed = request::renew(&creds, &manager, &tls) => renewed,
        };
        match renewed {
            Ok(renewed) => {
                let applied = node.apply_renewed(renewed, &manager, &stop).await;
                if stop.is_cancelled() {
                    return;
                }
                match applied {
                    Ok(()) => {
                        tracing::info!(node = %identity.node_id, reason, "certificate renewed")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "renewed certificate could not be applied")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, reason, manager = %manager, "certificate renewal failed; will retry")
            }
        }
    }
}
