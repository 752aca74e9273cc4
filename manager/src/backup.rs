//! `swarm backup` files: a manager's desired state (services, networks,
//! secrets, configs, cluster settings), sealed with a key derived from a
//! passphrase, and what `swarm init --force-new-cluster --restore` opens.
//!
//! Why it is shaped so:
//! - The state comes from one applied index of one store view, so it is
//!   consistent while the cluster keeps serving: no pause, no lock held.
//! - Tasks and nodes are left out. A restored cluster is a new cluster
//!   (its own CA, tokens and node ids); its orchestrator schedules the
//!   services afresh on the nodes that join it. Nor is the cluster's root
//!   key, join tokens or unlock key kept: none of them is needed, and the
//!   fewer secrets a backup holds, the less a leaked one gives away.
//! - The key is Argon2id of the passphrase (slow by design: a stolen file
//!   is attacked offline), its parameters in the header so they can grow.
//!   HKDF splits it into a sealing key and a check value, so a wrong
//!   passphrase is told apart from a damaged file. A SHA-256 of the whole
//!   file comes last and is checked first.
//! - Plaintext never touches disk: the daemon seals in memory, the CLI
//!   writes sealed bytes.

use hkdf::Hkdf;
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use shoal_proto::objects::Cluster;
use shoal_proto::store::{Backup, StoreSnapshot};
use zeroize::Zeroizing;

use crate::context::CommitError;
use crate::seal::{DataKey, KEY_LEN};
use crate::store::Store;

const MAGIC: &[u8; 8] = b"SHOALBK\x01";
const SALT_LEN: usize = 16;
const CHECK_LEN: usize = 16;
/// magic, three Argon2 parameters, salt, check value.
const HEADER_LEN: usize = MAGIC.len() + 12 + SALT_LEN + CHECK_LEN;
const DIGEST_LEN: usize = 32;

/// Argon2id cost for new backups: 64 MiB, 3 passes (OWASP's guidance).
const MEMORY_KIB: u32 = 64 * 1024;
const PASSES: u32 = 3;
const LANES: u32 = 1;
/// The most a file may ask for: a crafted header must not make the
/// daemon allocate gigabytes.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_PASSES: u32 = 16;
const MAX_LANES: u32 = 16;

/// The shortest passphrase accepted.
pub const MIN_PASSPHRASE: usize = 8;

/// Why a backup cannot be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Not a Shoal backup at all.
    #[error("not a Shoal backup (it does not start with Shoal's backup header)")]
    NotABackup,
    /// Bytes changed or missing.
    #[error("the backup is damaged: {0}")]
    Damaged(&'static str),
    /// The passphrase does not open it.
    #[error(
        "wrong passphrase: it does not open this backup (a backup sealed with the unlock key opens with the key it had then)"
    )]
    WrongPassphrase,
    /// Too short to be worth a slow key derivation.
    #[error("the passphrase is too short: use at least {MIN_PASSPHRASE} characters")]
    ShortPassphrase,
    /// The header asks for a key derivation beyond the bounds.
    #[error(
        "the backup asks for an unsupported key derivation (memory {0} KiB, passes {1}, lanes {2})"
    )]
    Unsupported(u32, u32, u32),
}

/// What the store holds now, as a backup: one view, at its applied index.
pub fn take(store: &Store) -> Backup {
    use shoal_proto::objects::{Config, Network, Secret, Service};
    let (index, (cluster_id, state)) = store.view_at(|t| {
        let cluster = t.cluster().cloned().map(strip_cluster);
        let state = StoreSnapshot {
            services: t.all::<Service>().cloned().map(strip_service).collect(),
            networks: t.all::<Network>().cloned().collect(),
            secrets: t.all::<Secret>().cloned().collect(),
            configs: t.all::<Config>().cloned().collect(),
            clusters: cluster.into_iter().collect(),
            ..Default::default()
        };
        let id = state.clusters.first().map(|c| c.id.clone());
        (id.unwrap_or_default(), state)
    });
    Backup {
        index,
        taken_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        cluster_id,
        version: shoal_proto::build_info::VERSION.into(),
        state: Some(state),
    }
}

/// The cluster object without what a new cluster makes for itself.
fn strip_cluster(mut cluster: Cluster) -> Cluster {
    cluster.root_ca = None;
    cluster.join_tokens = None;
    cluster.unlock_key.clear();
    cluster.removed_nodes.clear();
    cluster
}

/// A service without its place in a rollout that will not resume.
fn strip_service(mut service: shoal_proto::objects::Service) -> shoal_proto::objects::Service {
    service.update_status = None;
    service
}

/// Seals `backup` with `passphrase` (the CPU-heavy part: run it off the
/// async threads).
pub fn seal(backup: &Backup, passphrase: &[u8]) -> Result<Vec<u8>, BackupError> {
    if passphrase.len() < MIN_PASSPHRASE {
        return Err(BackupError::ShortPassphrase);
    }
    let mut salt = [0u8; SALT_LEN];
    if let Err(e) = getrandom::fill(&mut salt) {
        panic!("the system random source failed: {e}");
    }
    let keys = derive(passphrase, &salt, MEMORY_KIB, PASSES, LANES)?;
    let mut file = Vec::with_capacity(HEADER_LEN + backup.encoded_len() + 64);
    file.extend_from_slice(MAGIC);
    for n in [MEMORY_KIB, PASSES, LANES] {
        file.extend_from_slice(&n.to_le_bytes());
    }
    file.extend_from_slice(&salt);
    file.extend_from_slice(&keys.check);
    let plain = Zeroizing::new(backup.encode_to_vec());
    let sealed = keys.seal.seal(&plain, &file[..HEADER_LEN]);
    file.extend_from_slice(&sealed);
    let digest: [u8; DIGEST_LEN] = Sha256::digest(&file).into();
    file.extend_from_slice(&digest);
    Ok(file)
}

/// Opens what [`seal`] made.
pub fn open(file: &[u8], passphrase: &[u8]) -> Result<Backup, BackupError> {
    if file.len() < MAGIC.len() || &file[..MAGIC.len()] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    if file.len() < HEADER_LEN + crate::seal::OVERHEAD + DIGEST_LEN {
        return Err(BackupError::Damaged("it is truncated"));
    }
    let (body, digest) = file.split_at(file.len() - DIGEST_LEN);
    if Sha256::digest(body).as_slice() != digest {
        return Err(BackupError::Damaged(
            "its checksum does not match (truncated or changed)",
        ));
    }
    let word = |i: usize| {
        let at = MAGIC.len() + 4 * i;
        u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]])
    };
    let (memory, passes, lanes) = (word(0), word(1), word(2));
    let salt = &body[MAGIC.len() + 12..MAGIC.len() + 12 + SALT_LEN];
    let check = &body[HEADER_LEN - CHECK_LEN..HEADER_LEN];
    let keys = derive(passphrase, salt, memory, passes, lanes)?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&keys.check[..], check)) {
        return Err(BackupError::WrongPassphrase);
    }
    let plain = Zeroizing::new(
        keys.seal
            .open(&body[HEADER_LEN..], &body[..HEADER_LEN])
            .map_err(|_| BackupError::Damaged("its sealed contents do not authenticate"))?,
    );
    Backup::decode(&plain[..]).map_err(|_| BackupError::Damaged("its contents do not decode"))
}

/// The most a restore commits in one Raft entry (a backup can hold
/// thousands of secrets of up to 500 KB each).
const RESTORE_BATCH_BYTES: usize = 1 << 20;

/// Commits a restored backup's objects into a new cluster, in entries of
/// at most [`RESTORE_BATCH_BYTES`]: networks, secrets and configs first,
/// then the services that name them.
pub(crate) async fn commit_restored(
    ctx: &crate::context::ManagerContext,
    state: StoreSnapshot,
) -> Result<(), CommitError> {
    use shoal_proto::store::store_action::Target;
    let targets = (state
        .networks
        .into_iter()
        .map(|o| Target::Network(Box::new(o))))
    .chain(state.secrets.into_iter().map(Target::Secret))
    .chain(state.configs.into_iter().map(Target::Config))
    .chain(
        state
            .services
            .into_iter()
            .map(|o| Target::Service(Box::new(o))),
    );
    let mut batch: Vec<Target> = Vec::new();
    let mut bytes = 0;
    let mut restored = 0;
    for target in targets {
        bytes += target.encoded_len();
        batch.push(target);
        if bytes >= RESTORE_BATCH_BYTES {
            restored += commit_creates(ctx, std::mem::take(&mut batch)).await?;
            bytes = 0;
        }
    }
    restored += commit_creates(ctx, batch).await?;
    if restored > 0 {
        tracing::info!(objects = restored, "restored the backup's objects");
    }
    Ok(())
}

async fn commit_creates(
    ctx: &crate::context::ManagerContext,
    targets: Vec<shoal_proto::store::store_action::Target>,
) -> Result<usize, CommitError> {
    use shoal_proto::store::store_action::Target;
    let n = targets.len();
    if n == 0 {
        return Ok(0);
    }
    ctx.update(|tx| {
        for target in targets {
            match target {
                Target::Network(o) => tx.create(*o)?,
                Target::Secret(o) => tx.create(o)?,
                Target::Config(o) => tx.create(o)?,
                Target::Service(o) => tx.create(*o)?,
                _ => {}
            }
        }
        Ok::<_, CommitError>(())
    })
    .await?;
    Ok(n)
}

struct Keys {
    seal: DataKey,
    check: [u8; CHECK_LEN],
}

fn derive(
    passphrase: &[u8],
    salt: &[u8],
    memory: u32,
    passes: u32,
    lanes: u32,
) -> Result<Keys, BackupError> {
    let unsupported = || BackupError::Unsupported(memory, passes, lanes);
    if memory > MAX_MEMORY_KIB || passes > MAX_PASSES || lanes > MAX_LANES {
        return Err(unsupported());
    }
    let params =
        argon2::Params::new(memory, passes, lanes, Some(KEY_LEN)).map_err(|_| unsupported())?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut master = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(passphrase, salt, &mut master[..])
        .map_err(|_| unsupported())?;
    let hkdf = Hkdf::<Sha256>::from_prk(&master[..]).map_err(|_| unsupported())?;
    let mut seal = Zeroizing::new([0u8; KEY_LEN]);
    let mut check = [0u8; CHECK_LEN];
    // expand only fails for outputs over 255 * 32 bytes.
    if hkdf.expand(b"shoal backup seal v1", &mut seal[..]).is_err()
        || hkdf.expand(b"shoal backup check v1", &mut check).is_err()
    {
        unreachable!("HKDF-SHA256 outputs of 16 and 32 bytes are always valid");
    }
    Ok(Keys {
        seal: DataKey::from_bytes(seal),
        check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::objects::{Annotations, Secret, SecretSpec};

    fn backup() -> Backup {
        Backup {
            index: 7,
            cluster_id: "c1".into(),
            state: Some(StoreSnapshot {
                secrets: vec![Secret {
                    id: "s1".into(),
                    spec: Some(SecretSpec {
                        annotations: Some(Annotations {
                            name: "db".into(),
                            ..Default::default()
                        }),
                        data: b"hunter2-but-longer".to_vec(),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sealed_opens_with_its_passphrase_only() {
        let file = seal(&backup(), b"correct horse").unwrap();
        // The secret's bytes are nowhere in the file.
        assert!(!file.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(open(&file, b"correct horse").unwrap(), backup());
        assert!(matches!(
            open(&file, b"wrong horse!"),
            Err(BackupError::WrongPassphrase)
        ));
    }

    #[test]
    fn damage_is_told_from_a_wrong_passphrase() {
        let file = seal(&backup(), b"correct horse").unwrap();
        for at in [MAGIC.len() + 13, HEADER_LEN + 30, file.len() - 1] {
            let mut bad = file.clone();
            bad[at] ^= 1;
            assert!(
                matches!(open(&bad, b"correct horse"), Err(BackupError::Damaged(_))),
                "flipped byte {at}"
            );
        }
        assert!(matches!(
            open(&file[..file.len() - 10], b"correct horse"),
            Err(BackupError::Damaged(_))
        ));
        assert!(matches!(
            open(b"{\"not\": 1}", b"correct horse"),
            Err(BackupError::NotABackup)
        ));
    }

    #[test]
    fn short_passphrases_and_costly_headers_are_refused() {
        assert!(matches!(
            seal(&backup(), b"short"),
            Err(BackupError::ShortPassphrase)
        ));
        let mut file = seal(&backup(), b"correct horse").unwrap();
        file[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let n = file.len() - DIGEST_LEN;
        let digest: [u8; DIGEST_LEN] = Sha256::digest(&file[..n]).into();
        file[n..].copy_from_slice(&digest);
        assert!(matches!(
            open(&file, b"correct horse"),
            Err(BackupError::Unsupported(..))
        ));
    }
}
