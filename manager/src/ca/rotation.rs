//! `swarm ca --rotate`, driven by the leader from the cluster object:
//!
//! ```text
//!  spec.ca_config.force_rotate bumped
//!     └─▶ start: new root + new root cross-signed by the old; nodes trust
//!         both and renew (they notice the trust bundle changed)
//!            └─▶ every node's certificate is from the new root
//!                  └─▶ finish: the new root is the root; tokens pin it
//! ```
//!
//! Each step is one store update, so a leader change mid-rotation simply
//! resumes it. A node that is down keeps the rotation waiting, as Docker's.
//!
//! A leader-only component ([`crate::leader::Supervisor`]): it looks once
//! when it starts, then after every commit that touches the cluster
//! object or a node (a node's renewed certificate may be the last one the
//! rotation waits for), through [`crate::passes`]; a failed step is tried
//! again after a backoff.

use std::time::Duration;

use shoal_proto::objects::{Cluster, JoinTokens as ProtoTokens, Node, RootRotation};
use shoal_proto::token::JoinToken;
use tokio_util::sync::CancellationToken;

use super::{JoinTokens, RootCa};
use crate::context::{CommitError, ManagerContext};
use crate::passes::{Passes, Timing, drive};
use crate::store::{Changed, Commit};

/// A burst of renewals settles before the nodes are counted again.
const TIMING: Timing = Timing {
    quiet: Duration::from_millis(20),
    max_delay: Duration::from_millis(200),
    backoff: (Duration::from_millis(500), Duration::from_secs(5)),
};

/// Runs until `stop` (the end of this manager's leadership).
pub async fn run(ctx: ManagerContext, stop: CancellationToken) {
    let ((), watch) = ctx.store.view_and_watch(|_| ());
    drive(Rotation { ctx }, watch, stop, TIMING, "root CA rotation").await
}

struct Rotation {
    ctx: ManagerContext,
}

impl Passes for Rotation {
    fn wakes(&self, commit: &Commit) -> bool {
        commit.reset
            || commit
                .events
                .iter()
                .any(|e| matches!(e.object, Changed::Cluster(_) | Changed::Node(_)))
    }

    async fn pass(&mut self) -> Result<(), CommitError> {
        let ctx = &self.ctx;
        let Some(cluster) = ctx.store.view(|t| t.cluster().cloned()) else {
            return Ok(());
        };
        match next_step(ctx, &cluster) {
            Some(Step::Start(updated)) => {
                commit(ctx, *updated).await?;
                tracing::info!("root CA rotation started");
            }
            Some(Step::Finish(updated)) => {
                commit(ctx, *updated).await?;
                tracing::info!(
                    "root CA rotation finished: every node holds a certificate from the new root"
                );
            }
            None => {}
        }
        Ok(())
    }
}

enum Step {
    Start(Box<Cluster>),
    Finish(Box<Cluster>),
}

async fn commit(ctx: &ManagerContext, cluster: Cluster) -> Result<(), CommitError> {
    ctx.update(|tx| Ok(tx.update(cluster)?))
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "root CA rotation step failed; will retry"))
}

fn next_step(ctx: &ManagerContext, cluster: &Cluster) -> Option<Step> {
    let root = cluster.root_ca.as_ref()?;
    let requested = cluster
        .spec
        .as_ref()?
        .ca_config
        .as_ref()
        .map_or(0, |c| c.force_rotate);
    match root.root_rotation.as_ref() {
        None if requested > root.last_forced_rotation => {
            start(cluster, requested).map(|c| Step::Start(Box::new(c)))
        }
        None => None,
        Some(rotation) => {
            let new = RootCa::from_pem(
                &String::from_utf8_lossy(&rotation.ca_cert),
                &String::from_utf8_lossy(&rotation.ca_key),
            )
            .ok()?;
            let digest = new.digest().to_string();
            let done = ctx.store.view(|t| {
                t.all::<Node>().all(|n| {
                    n.certificate
                        .as_ref()
                        .is_some_and(|c| c.issuer_digest == digest)
                })
            });
            done.then(|| finish(cluster, &new))
                .flatten()
                .map(|c| Step::Finish(Box::new(c)))
        }
    }
}

fn start(cluster: &Cluster, requested: u64) -> Option<Cluster> {
    let root = cluster.root_ca.as_ref()?;
    let old = match RootCa::from_pem(
        &String::from_utf8_lossy(&root.ca_cert),
        &String::from_utf8_lossy(&root.ca_key),
    ) {
        Ok(old) => old,
        Err(e) => {
            tracing::error!(error = %e, "the current root CA is unusable; cannot rotate");
            return None;
        }
    };
    let new = RootCa::generate(&cluster.id).ok()?;
    let cross = old.cross_sign(&new).ok()?;
    let mut updated = cluster.clone();
    let root = updated.root_ca.as_mut()?;
    root.root_rotation = Some(RootRotation {
        ca_cert: new.cert_pem().as_bytes().to_vec(),
        ca_key: new.key_pem().into_bytes(),
        cross_signed_ca_cert: cross.into_bytes(),
    });
    root.last_forced_rotation = requested;
    Some(updated)
}

fn finish(cluster: &Cluster, new: &RootCa) -> Option<Cluster> {
    let mut updated = cluster.clone();
    let root = updated.root_ca.as_mut()?;
    root.ca_cert = new.cert_pem().as_bytes().to_vec();
    root.ca_key = new.key_pem().into_bytes();
    root.ca_cert_digest = new.digest().to_string();
    root.root_rotation = None;
    let tokens = updated.join_tokens.clone().unwrap_or_default();
    let parse = |t: &str| t.parse::<JoinToken>().ok();
    if let (Some(worker), Some(manager)) = (parse(&tokens.worker), parse(&tokens.manager)) {
        let moved = JoinTokens { worker, manager }.with_root_digest(new.digest());
        updated.join_tokens = Some(ProtoTokens {
            worker: moved.worker.to_string(),
            manager: moved.manager.to_string(),
        });
    }
    Some(updated)
}

#[cfg(test)]
mod tests;
