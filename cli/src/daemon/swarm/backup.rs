//! `swarm backup`, and `swarm init --force-new-cluster --restore`: the
//! daemon seals and opens backups (`shoal_manager::backup`), so their
//! plaintext never leaves it; the CLI only moves sealed bytes.

use shoal_manager::backup::{self, BackupError};
use shoal_proto::local::BackupSummary;
use shoal_proto::store::{Backup, StoreSnapshot};

use super::*;

/// Why a backup needs a passphrase here.
const NEEDS_PASSPHRASE: &str = "a backup needs a passphrase (--passphrase-file, or SHOAL_BACKUP_PASSPHRASE); a swarm with autolock on can seal it with its unlock key instead";

impl SwarmNode {
    /// `swarm backup`: this manager's desired state at its applied index,
    /// sealed with `passphrase`, or with the unlock key when it is empty.
    /// The cluster keeps serving: the state is one view of the store.
    pub async fn backup(&self, passphrase: String) -> Result<(BackupSummary, Vec<u8>), Status> {
        let ctx = self
            .slot
            .get()
            .ok_or_else(|| Status::failed_precondition(shoal_manager::authz::NOT_A_MANAGER))?;
        let unlock_key = passphrase.is_empty();
        let passphrase = if unlock_key {
            let key = ctx
                .store
                .view(|t| t.cluster().map(|c| c.unlock_key.clone()))
                .unwrap_or_default();
            if key.is_empty() {
                return Err(Status::failed_precondition(NEEDS_PASSPHRASE));
            }
            zeroize::Zeroizing::new(key)
        } else {
            zeroize::Zeroizing::new(passphrase)
        };
        let taken = backup::take(&ctx.store);
        let mut summary = summary(&taken);
        summary.unlock_key = unlock_key;
        // Argon2 and sealing take a CPU for a moment: off the async threads.
        let sealed =
            tokio::task::spawn_blocking(move || backup::seal(&taken, passphrase.as_bytes()))
                .await
                .map_err(internal)?
                .map_err(backup_status)?;
        tracing::info!(
            index = summary.index,
            services = summary.services,
            secrets = summary.secrets,
            "swarm backup taken"
        );
        Ok((summary, sealed))
    }

    /// `swarm init --force-new-cluster --restore`: a new single-manager
    /// cluster on this node, holding the backup's services, networks,
    /// secrets, configs and cluster settings. Its CA, tokens and node ids
    /// are new: the old cluster's workers join it with its token.
    pub async fn restore(
        &self,
        request: SwarmInitRequest,
        file: Vec<u8>,
        passphrase: String,
    ) -> Result<SwarmInitResponse, Status> {
        let passphrase = zeroize::Zeroizing::new(passphrase);
        let opened =
            tokio::task::spawn_blocking(move || backup::open(&file, passphrase.as_bytes()))
                .await
                .map_err(internal)?
                .map_err(backup_status)?;
        let summary = summary(&opened);
        let state = opened.state.unwrap_or_default();
        let mut inner = self.inner.lock().await;
        let mut response = self.init_cluster(&mut inner, request, Some(state)).await?;
        tracing::warn!(
            from_cluster = %summary.cluster_id,
            index = summary.index,
            "a new cluster was restored from a backup"
        );
        response.restored = Some(summary);
        Ok(response)
    }
}

/// What `backup` holds, by kind.
fn summary(backup: &Backup) -> BackupSummary {
    let state = backup.state.as_ref();
    let count = |f: fn(&StoreSnapshot) -> usize| state.map_or(0, f) as u32;
    BackupSummary {
        index: backup.index,
        cluster_id: backup.cluster_id.clone(),
        services: count(|s| s.services.len()),
        networks: count(|s| s.networks.iter().filter(|n| !is_ingress(n)).count()),
        secrets: count(|s| s.secrets.len()),
        configs: count(|s| s.configs.len()),
        unlock_key: false,
        taken_at: backup.taken_at,
    }
}

/// Whether `network` is the routing mesh's.
pub(super) fn is_ingress(network: &Network) -> bool {
    network.spec.as_ref().is_some_and(|s| s.ingress)
}

fn backup_status(e: BackupError) -> Status {
    match e {
        BackupError::ShortPassphrase => Status::invalid_argument(e.to_string()),
        _ => Status::failed_precondition(e.to_string()),
    }
}
