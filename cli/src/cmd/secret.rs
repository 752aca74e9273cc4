//! `shoal secret create|ls|inspect|rm`, as `docker secret`. The data is
//! checked (non-empty, under 500 KiB, as Docker) before the daemon is contacted, and
//! is never printed: views are built from [`Blob`], which drops it. The
//! commands themselves are shared with configs ([`super::stored`]).

use clap::Subcommand;
use shoal_proto::control::{
    CreateSecretRequest, GetSecretRequest, ListFilters, ListSecretsRequest, RemoveSecretRequest,
};
use shoal_proto::listing::Joined as _;
use shoal_proto::objects::{Annotations, SecretSpec};

use super::blob::Blob;
use super::common::{Api, ListArgs};
use super::payload;
use super::stored::{self, CreateArgs, InspectArgs, RmArgs, StoredKind};
use crate::client::status_error;
use crate::host::Host;

/// `shoal secret ...`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret from a file or STDIN (`-`); under 500 KiB (512,000 bytes).
    Create(CreateArgs),
    /// List secrets.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more secrets (never the data).
    Inspect(InspectArgs),
    /// Remove one or more secrets.
    #[command(alias = "remove")]
    Rm(RmArgs),
}

/// Secrets, for the shared commands.
struct Secrets;

impl StoredKind for Secrets {
    const NAME: &'static str = "secret";
    const MAX_SIZE: usize = payload::MAX_SECRET_SIZE;

    async fn create(
        api: &mut Api,
        annotations: Annotations,
        data: Vec<u8>,
    ) -> anyhow::Result<String> {
        let spec = SecretSpec {
            annotations: Some(annotations),
            data,
        };
        let reply = api
            .control
            .create_secret(CreateSecretRequest { spec: Some(spec) })
            .await
            .map_err(status_error)?;
        Ok(reply.into_inner().secret.unwrap_or_default().id)
    }

    async fn list(api: &mut Api, filters: ListFilters) -> anyhow::Result<Vec<Blob>> {
        let reply = api
            .control
            .list_secrets(ListSecretsRequest {
                filters: Some(filters),
            })
            .joined()
            .await
            .map_err(status_error)?;
        Ok(reply.secrets.into_iter().map(Blob::from).collect())
    }

    async fn get(api: &mut Api, secret_id: String) -> anyhow::Result<Blob> {
        let reply = api
            .control
            .get_secret(GetSecretRequest { secret_id })
            .await
            .map_err(status_error)?;
        Ok(Blob::from(reply.into_inner().secret.unwrap_or_default()))
    }

    async fn remove(api: &mut Api, secret_id: String) -> anyhow::Result<()> {
        api.control
            .remove_secret(RemoveSecretRequest { secret_id })
            .await
            .map_err(status_error)?;
        Ok(())
    }
}

/// Runs `shoal secret ...`.
pub async fn run(host: &Host, cmd: SecretCommand) -> anyhow::Result<()> {
    match cmd {
        SecretCommand::Create(args) => stored::create::<Secrets>(host, args).await,
        SecretCommand::Ls(args) => stored::ls::<Secrets>(host, args).await,
        SecretCommand::Inspect(args) => stored::inspect::<Secrets>(host, args).await,
        SecretCommand::Rm(args) => stored::rm::<Secrets>(host, args).await,
    }
}
