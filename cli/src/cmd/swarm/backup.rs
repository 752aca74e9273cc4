//! `shoal swarm backup -o FILE` and `swarm init --force-new-cluster
//! --restore FILE`: the CLI moves sealed bytes; the daemon seals and opens
//! them, so a backup's plaintext never leaves the daemon.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use shoal_proto::local::local_client::LocalClient;
use shoal_proto::local::{
    BackupSummary, SwarmBackupRequest, SwarmInitRequest, SwarmInitResponse, SwarmRestoreChunk,
};

use crate::client::{self, status_error};
use crate::host::Host;

/// Where a passphrase comes from when no file is given.
const PASSPHRASE_ENV: &str = "SHOAL_BACKUP_PASSPHRASE";

/// `swarm backup` flags.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Write the backup to this file (created with mode 0600).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Read the passphrase from this file ("-" for standard input).
    /// Default: $SHOAL_BACKUP_PASSPHRASE, else the swarm's unlock key when
    /// autolock is on.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

/// The passphrase from `file` ("-": standard input), else from
/// [`PASSPHRASE_ENV`]; empty when neither gives one. One trailing newline
/// is not part of it.
pub fn passphrase(file: Option<&Path>) -> anyhow::Result<String> {
    let text = match file {
        Some(p) if p == Path::new("-") => std::io::read_to_string(std::io::stdin())?,
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read the passphrase file {}: {e}", p.display()))?,
        None => std::env::var(PASSPHRASE_ENV).unwrap_or_default(),
    };
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_string())
}

/// Runs `shoal swarm backup`.
pub async fn backup(host: &Host, args: BackupArgs) -> anyhow::Result<()> {
    let passphrase = passphrase(args.passphrase_file.as_deref())?;
    let mut local = LocalClient::new(client::connect(host).await?);
    let mut chunks = local
        .swarm_backup(SwarmBackupRequest { passphrase })
        .await
        .map_err(status_error)?
        .into_inner();
    let mut summary = None;
    let mut file = Vec::new();
    while let Some(chunk) = chunks.message().await.map_err(status_error)? {
        summary = summary.or(chunk.summary);
        file.extend_from_slice(&chunk.data);
    }
    let summary = summary.ok_or_else(|| anyhow::anyhow!("the daemon sent no backup"))?;
    write_private(&args.output, &file)?;
    println!(
        "Backup of swarm {} at index {} written to {}: {}.",
        summary.cluster_id,
        summary.index,
        args.output.display(),
        contents(&summary)
    );
    if summary.unlock_key {
        println!(
            "It is sealed with the swarm's unlock key: keep that key (`shoal swarm unlock-key -q`) to restore it."
        );
    }
    Ok(())
}

/// Runs `shoal swarm init --force-new-cluster --restore FILE`.
pub async fn restore(
    host: &Host,
    init: SwarmInitRequest,
    file: &Path,
    passphrase_file: Option<&Path>,
) -> anyhow::Result<SwarmInitResponse> {
    let passphrase = passphrase(passphrase_file)?;
    if passphrase.is_empty() {
        anyhow::bail!(
            "--restore needs the backup's passphrase: --passphrase-file FILE or {PASSPHRASE_ENV} (for a backup sealed with the unlock key, that key)"
        );
    }
    let bytes = std::fs::read(file)
        .map_err(|e| anyhow::anyhow!("cannot read the backup {}: {e}", file.display()))?;
    let mut chunks: Vec<SwarmRestoreChunk> = bytes
        .chunks(shoal_proto::listing::CHUNK_BYTES)
        .map(|data| SwarmRestoreChunk {
            data: data.to_vec(),
            ..Default::default()
        })
        .collect();
    if chunks.is_empty() {
        chunks.push(SwarmRestoreChunk::default());
    }
    chunks[0].init = Some(init);
    chunks[0].passphrase = passphrase;
    let mut local = LocalClient::new(client::connect(host).await?);
    let reply = local
        .swarm_restore(futures_util::stream::iter(chunks))
        .await
        .map_err(|s| anyhow::anyhow!("cannot restore {}: {}", file.display(), status_error(s)))?
        .into_inner();
    if let Some(summary) = &reply.restored {
        println!(
            "Restored swarm {} (index {}) from {}: {}.",
            summary.cluster_id,
            summary.index,
            file.display(),
            contents(summary)
        );
    }
    Ok(reply)
}

/// "2 services, 1 network, 3 secrets, 0 configs".
fn contents(s: &BackupSummary) -> String {
    let n = |count: u32, what: &str| format!("{count} {what}{}", if count == 1 { "" } else { "s" });
    [
        n(s.services, "service"),
        n(s.networks, "network"),
        n(s.secrets, "secret"),
        n(s.configs, "config"),
    ]
    .join(", ")
}

/// Writes `bytes` to `path` as a new 0600 file, whole or not at all.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let name = path
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{} is not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".partial");
    let tmp = path.with_file_name(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write {}: {e}", path.display())
    })
}
