//! Autolock: every manager's data key (which seals its Raft log on disk)
//! is itself sealed, either by a key file beside it (the node restarts
//! unattended) or, with autolock on, by the cluster's unlock key, which no
//! disk holds: a restarted manager then waits for `swarm unlock`.
//!
//! The unlock key is cluster-wide and lives in the cluster object (inside
//! the sealed Raft log). Each manager follows it: when autolock is turned
//! on or off, or the key rotated, it re-seals its own data key to match;
//! the data key itself never changes, so nothing needs re-encrypting.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::context::ManagerContext;
use crate::runtime::ManagerError;
use crate::seal::{DataKey, KeyStore, Lock, Opened, SealError, UnlockKey};

/// The key store, the data key it opened, and the unlock key it is sealed
/// with (`None`: not autolocked).
pub struct OpenedKeys {
    /// The key store.
    pub store: KeyStore,
    /// The data key.
    pub data_key: DataKey,
    /// The unlock key it is sealed with now, as text.
    pub sealed_with: Option<String>,
}

/// Opens (or, for a new manager, creates) the key store in `dir`. A locked
/// store needs `unlock`; a new one is sealed with `unlock` when given. A
/// restart (`must_exist`) never creates one: missing keys are an error.
pub fn open_keys(
    dir: &Path,
    unlock: Option<&UnlockKey>,
    must_exist: bool,
) -> Result<OpenedKeys, ManagerError> {
    if !must_exist && !KeyStore::exists(dir) {
        let lock = unlock.map_or(Lock::None, Lock::UnlockKey);
        let (store, data_key) = KeyStore::create(dir, lock)?;
        return Ok(OpenedKeys {
            store,
            data_key,
            sealed_with: unlock.map(ToString::to_string),
        });
    }
    match KeyStore::open(dir)? {
        Opened::Unlocked(store, data_key) => Ok(OpenedKeys {
            store,
            data_key,
            sealed_with: None,
        }),
        Opened::Locked(locked) => {
            let key = unlock.ok_or(ManagerError::Locked)?;
            match locked.unlock(key) {
                Ok((store, data_key)) => Ok(OpenedKeys {
                    store,
                    data_key,
                    sealed_with: Some(key.to_string()),
                }),
                Err(SealError::WrongUnlockKey { .. }) => Err(ManagerError::WrongUnlockKey),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Keeps this manager's key store sealed the way the cluster says, until
/// `shutdown`.
pub async fn follow(ctx: ManagerContext, mut keys: OpenedKeys, shutdown: CancellationToken) {
    let (mut wanted, mut commits) = ctx.store.view_and_watch(wanted_key);
    loop {
        // No cluster object yet (a new or joining manager): nothing to follow.
        if let Some(wanted) = wanted.clone().filter(|w| *w != keys.sealed_with) {
            let parsed = wanted.as_deref().map(str::parse::<UnlockKey>);
            let result = match &parsed {
                Some(Ok(key)) => keys.store.rotate_lock(&keys.data_key, Lock::UnlockKey(key)),
                Some(Err(e)) => Err(SealError::BadUnlockKey(e.to_string())),
                None => keys.store.rotate_lock(&keys.data_key, Lock::None),
            };
            match result {
                Ok(()) => {
                    tracing::info!(
                        autolock = wanted.is_some(),
                        "manager key store re-sealed to follow the cluster"
                    );
                    keys.sealed_with = wanted;
                }
                Err(e) => tracing::error!(error = %e, "could not re-seal the manager key store"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            commit = commits.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = commit {
                    return;
                }
            }
        }
        wanted = ctx.store.view(wanted_key);
    }
}

/// The unlock key the cluster wants managers sealed with (`Some(None)`:
/// autolock off), or `None` before the cluster object exists.
fn wanted_key(tables: &crate::store::Tables) -> Option<Option<String>> {
    let cluster = tables.cluster()?;
    let on = cluster
        .spec
        .as_ref()
        .and_then(|s| s.encryption.as_ref())
        .is_some_and(|e| e.auto_lock_managers);
    Some((on && !cluster.unlock_key.is_empty()).then(|| cluster.unlock_key.clone()))
}
