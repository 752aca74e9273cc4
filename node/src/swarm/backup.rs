//! `swarm backup`, and `swarm init --force-new-cluster --restore`: the
//! node seals and opens backups (`shoal_manager::backup`), so their
//! plaintext never leaves the daemon; the CLI only moves sealed bytes.

use shoal_manager::allocator::pools::is_ingress_network;
use shoal_manager::backup;
use shoal_proto::local::{BackupSummary, SwarmInitRequest, SwarmInitResponse};
use shoal_proto::store::{Backup, StoreSnapshot};
use zeroize::Zeroizing;

use super::SwarmNode;
use crate::NodeError;

impl SwarmNode {
    /// `swarm backup`: this manager's desired state at its applied index,
    /// sealed with `passphrase`, or with the unlock key when it is empty.
    /// The cluster keeps serving: the state is one view of the store.
    pub async fn backup(&self, passphrase: String) -> Result<(BackupSummary, Vec<u8>), NodeError> {
        let ctx = self.slot.get().ok_or(NodeError::NotAManager)?;
        let unlock_key = passphrase.is_empty();
        let passphrase = if unlock_key {
            let key = ctx
                .store
                .view(|t| t.cluster().map(|c| c.unlock_key.clone()))
                .unwrap_or_default();
            if key.is_empty() {
                return Err(NodeError::NeedsPassphrase);
            }
            Zeroizing::new(key)
        } else {
            Zeroizing::new(passphrase)
        };
        let taken = backup::take(&ctx.store);
        let mut summary = summary(&taken);
        summary.unlock_key = unlock_key;
        // Argon2 and sealing take a CPU for a moment: off the async threads.
        let sealed =
            tokio::task::spawn_blocking(move || backup::seal(&taken, passphrase.as_bytes()))
                .await??;
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
    ) -> Result<SwarmInitResponse, NodeError> {
        let passphrase = Zeroizing::new(passphrase);
        let opened =
            tokio::task::spawn_blocking(move || backup::open(&file, passphrase.as_bytes()))
                .await??;
        let summary = summary(&opened);
        let state = opened.state.unwrap_or_default();
        let mut running = self.transition.lock().await;
        let mut response = self
            .init_cluster(&mut running, request, Some(state))
            .await?;
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
        networks: count(|s| s.networks.iter().filter(|n| !is_ingress_network(n)).count()),
        secrets: count(|s| s.secrets.len()),
        configs: count(|s| s.configs.len()),
        unlock_key: false,
        taken_at: backup.taken_at,
    }
}
