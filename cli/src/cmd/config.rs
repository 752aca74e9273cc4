//! `shoal config create|ls|inspect|rm`, as `docker config`. The data is
//! checked (non-empty, under 1000 KiB, as Docker) before the daemon is
//! contacted; unlike a secret's, `inspect` shows it (base64 in JSON). The
//! commands themselves are shared with secrets ([`super::stored`]).

use clap::Subcommand;
use shoal_proto::control::{
    CreateConfigRequest, GetConfigRequest, ListConfigsRequest, ListFilters, RemoveConfigRequest,
};
use shoal_proto::listing::Joined as _;
use shoal_proto::objects::{Annotations, ConfigSpec};

use super::blob::Blob;
use super::common::{Api, ListArgs};
use super::payload;
use super::stored::{self, CreateArgs, InspectArgs, RmArgs, StoredKind};
use crate::client::status_error;
use crate::host::Host;

/// `shoal config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Create a config from a file or STDIN (`-`); under 1000 KiB (1,024,000 bytes).
    Create(CreateArgs),
    /// List configs.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more configs.
    Inspect(InspectArgs),
    /// Remove one or more configs.
    #[command(alias = "remove")]
    Rm(RmArgs),
}

/// Configs, for the shared commands.
struct Configs;

impl StoredKind for Configs {
    const NAME: &'static str = "config";
    const MAX_SIZE: usize = payload::MAX_CONFIG_SIZE;

    async fn create(
        api: &mut Api,
        annotations: Annotations,
        data: Vec<u8>,
    ) -> anyhow::Result<String> {
        let spec = ConfigSpec {
            annotations: Some(annotations),
            data,
        };
        let reply = api
            .control
            .create_config(CreateConfigRequest { spec: Some(spec) })
            .await
            .map_err(status_error)?;
        Ok(reply.into_inner().config.unwrap_or_default().id)
    }

    async fn list(api: &mut Api, filters: ListFilters) -> anyhow::Result<Vec<Blob>> {
        let reply = api
            .control
            .list_configs(ListConfigsRequest {
                filters: Some(filters),
            })
            .joined()
            .await
            .map_err(status_error)?;
        Ok(reply.configs.into_iter().map(Blob::from).collect())
    }

    async fn get(api: &mut Api, config_id: String) -> anyhow::Result<Blob> {
        let reply = api
            .control
            .get_config(GetConfigRequest { config_id })
            .await
            .map_err(status_error)?;
        Ok(Blob::from(reply.into_inner().config.unwrap_or_default()))
    }

    async fn remove(api: &mut Api, config_id: String) -> anyhow::Result<()> {
        api.control
            .remove_config(RemoveConfigRequest { config_id })
            .await
            .map_err(status_error)?;
        Ok(())
    }
}

/// Runs `shoal config ...`.
pub async fn run(host: &Host, cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Create(args) => stored::create::<Configs>(host, args).await,
        ConfigCommand::Ls(args) => stored::ls::<Configs>(host, args).await,
        ConfigCommand::Inspect(args) => stored::inspect::<Configs>(host, args).await,
        ConfigCommand::Rm(args) => stored::rm::<Configs>(host, args).await,
    }
}
