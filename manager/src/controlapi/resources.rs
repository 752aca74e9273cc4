//! Secrets, configs and networks as objects (their data planes come with
//! the worker), and the service listing other checks need. Secret data is
//! accepted, stored (the Raft log is sealed at rest) and never returned.

use shoal_proto::control::*;
use shoal_proto::identity::new_id;
use shoal_proto::objects::{
    Annotations, Config, ConfigSpec, Driver, Network, NetworkSpec, Secret, SecretSpec, Service,
};
use tonic::Status;

use super::filters::matches;
use crate::allocator::is_allocated;
use crate::allocator::pools::check_explicit;
use crate::context::ManagerContext;
use crate::store::Tables;

/// Docker's rule for object names: letters and digits, with `-`, `_`, `.`
/// inside, at most 64 characters.
pub fn validate_name(kind: &str, name: &str) -> Result<(), Status> {
    let ok_inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(ok_inner)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "invalid {kind} name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )))
    }
}

/// Docker's limits and words: a secret under 500 KiB, a config under
/// 1000 KiB, neither empty ([`shoal_proto::limits`], which the CLI and the
/// compose loader check too).
fn check_data(kind: &str, data: &[u8]) -> Result<(), Status> {
    let limit = shoal_proto::limits::data_limit(kind);
    shoal_proto::limits::check_data_size(kind, data.len(), limit).map_err(Status::invalid_argument)
}

fn annotations(a: Option<&Annotations>) -> (&str, std::collections::BTreeMap<String, String>) {
    a.map_or(("", Default::default()), |a| {
        (a.name.as_str(), a.labels.clone())
    })
}

/// A secret as callers see it: never its data.
pub(crate) fn without_data(mut secret: Secret) -> Secret {
    if let Some(spec) = secret.spec.as_mut() {
        spec.data.clear();
    }
    secret
}

fn services_using(t: &Tables, uses: impl Fn(&Service) -> bool) -> Vec<String> {
    t.all::<Service>()
        .filter(|s| uses(s))
        .map(|s| {
            s.spec
                .as_ref()
                .and_then(|x| x.annotations.as_ref())
                .map_or(s.id.clone(), |a| a.name.clone())
        })
        .collect()
}

fn in_use(kind: &str, name: &str, users: Vec<String>) -> Result<(), Status> {
    if users.is_empty() {
        Ok(())
    } else {
        Err(Status::failed_precondition(format!(
            "{kind} {name} is in use by the following services: {}",
            users.join(", ")
        )))
    }
}

// ---- validation shared with `batch` ----

/// A new secret from `spec`, validated, with a fresh id.
pub(super) fn new_secret(spec: SecretSpec) -> Result<Secret, Status> {
    let (name, _) = annotations(spec.annotations.as_ref());
    validate_name("secret", name)?;
    check_data("secret", &spec.data)?;
    Ok(Secret {
        id: new_id(),
        spec: Some(spec),
        ..Default::default()
    })
}

/// A new config from `spec`, validated, with a fresh id.
pub(super) fn new_config(spec: ConfigSpec) -> Result<Config, Status> {
    let (name, _) = annotations(spec.annotations.as_ref());
    validate_name("config", name)?;
    check_data("config", &spec.data)?;
    Ok(Config {
        id: new_id(),
        spec: Some(spec),
        ..Default::default()
    })
}

/// Docker's driver option asking for IPsec between nodes.
const ENCRYPTED: &str = "encrypted";

/// A new network from `spec`, validated (the driver defaults to overlay,
/// the only one swarm networks have), with a fresh id.
pub(super) fn new_network(mut spec: NetworkSpec) -> Result<Network, Status> {
    let (name, _) = annotations(spec.annotations.as_ref());
    validate_name("network", name)?;
    let driver = spec.driver_config.get_or_insert_with(|| Driver {
        name: "overlay".into(),
        ..Default::default()
    });
    if driver.name.is_empty() {
        driver.name = "overlay".into();
    }
    if driver.name != "overlay" {
        return Err(Status::invalid_argument(format!(
            "network driver {:?} is not supported: swarm networks use the overlay driver",
            driver.name
        )));
    }
    // Docker encrypts whenever the option is present, whatever its value;
    // Shoal would carry the traffic as plain VXLAN, so it says no instead.
    if driver.options.contains_key(ENCRYPTED) {
        return Err(Status::invalid_argument(
            "overlay network encryption (--opt encrypted) is not available yet in Shoal: \
             traffic between nodes would be plain VXLAN; create the network without it",
        ));
    }
    for config in spec.ipam.iter().flat_map(|i| &i.configs) {
        if config.subnet.is_empty() && !config.gateway.is_empty() {
            return Err(Status::invalid_argument(format!(
                "gateway {} given without a subnet: --gateway needs --subnet",
                config.gateway
            )));
        }
        if !config.subnet.is_empty() {
            check_explicit(&config.subnet, &config.gateway)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
    }
    Ok(Network {
        id: new_id(),
        ipam: spec.ipam.clone(),
        driver_state: spec.driver_config.clone(),
        spec: Some(spec),
        ..Default::default()
    })
}

/// Whether `network` is an ingress network.
pub(super) fn is_ingress(network: &Network) -> bool {
    network.spec.as_ref().is_some_and(|s| s.ingress)
}

/// Refuses a second ingress network.
pub(super) fn check_ingress(t: &Tables, network: &Network) -> Result<(), Status> {
    if is_ingress(network) && t.all::<Network>().any(is_ingress) {
        return Err(Status::already_exists(
            "an ingress network already exists; there can be only one",
        ));
    }
    Ok(())
}

// ---- secrets ----

pub async fn secret_create(
    ctx: &ManagerContext,
    r: CreateSecretRequest,
) -> Result<CreateSecretResponse, Status> {
    let spec = r
        .spec
        .ok_or_else(|| Status::invalid_argument("no secret spec given"))?;
    let secret = new_secret(spec)?;
    let id = secret.id.clone();
    ctx.update(|tx| Ok::<_, Status>(tx.create(secret)?)).await?;
    let stored = ctx
        .store
        .view(|t| t.get::<Secret>(&id).cloned())
        .map(without_data);
    Ok(CreateSecretResponse { secret: stored })
}

pub async fn secret_get(
    ctx: &ManagerContext,
    r: GetSecretRequest,
) -> Result<GetSecretResponse, Status> {
    let secret = ctx
        .read(|t| t.find::<Secret>(&r.secret_id).cloned())
        .await??;
    Ok(GetSecretResponse {
        secret: Some(without_data(secret)),
    })
}

pub async fn secret_list(
    ctx: &ManagerContext,
    r: ListSecretsRequest,
) -> Result<ListSecretsResponse, Status> {
    let f = r.filters.as_ref();
    let secrets = ctx
        .read(|t| {
            t.all::<Secret>()
                .filter(|s| {
                    let (name, labels) =
                        annotations(s.spec.as_ref().and_then(|x| x.annotations.as_ref()));
                    matches(f, &s.id, name, &labels)
                })
                .cloned()
                .map(without_data)
                .collect()
        })
        .await?;
    Ok(ListSecretsResponse { secrets })
}

pub async fn secret_remove(
    ctx: &ManagerContext,
    r: RemoveSecretRequest,
) -> Result<RemoveSecretResponse, Status> {
    ctx.update(|tx| {
        let secret = tx.tables().find::<Secret>(&r.secret_id)?.clone();
        let users = services_using(tx.tables(), |s| {
            s.spec
                .as_ref()
                .and_then(|x| x.task.as_ref())
                .and_then(|t| t.container.as_ref())
                .is_some_and(|c| c.secrets.iter().any(|x| x.secret_id == secret.id))
        });
        in_use("secret", &r.secret_id, users)?;
        Ok::<_, Status>(tx.remove::<Secret>(&secret.id)?)
    })
    .await?;
    Ok(RemoveSecretResponse {})
}

// ---- configs ----

pub async fn config_create(
    ctx: &ManagerContext,
    r: CreateConfigRequest,
) -> Result<CreateConfigResponse, Status> {
    let spec = r
        .spec
        .ok_or_else(|| Status::invalid_argument("no config spec given"))?;
    let config = new_config(spec)?;
    let id = config.id.clone();
    ctx.update(|tx| Ok::<_, Status>(tx.create(config)?)).await?;
    Ok(CreateConfigResponse {
        config: ctx.store.view(|t| t.get::<Config>(&id).cloned()),
    })
}

pub async fn config_get(
    ctx: &ManagerContext,
    r: GetConfigRequest,
) -> Result<GetConfigResponse, Status> {
    let config = ctx
        .read(|t| t.find::<Config>(&r.config_id).cloned())
        .await??;
    Ok(GetConfigResponse {
        config: Some(config),
    })
}

pub async fn config_list(
    ctx: &ManagerContext,
    r: ListConfigsRequest,
) -> Result<ListConfigsResponse, Status> {
    let f = r.filters.as_ref();
    let configs = ctx
        .read(|t| {
            t.all::<Config>()
                .filter(|c| {
                    let (name, labels) =
                        annotations(c.spec.as_ref().and_then(|x| x.annotations.as_ref()));
                    matches(f, &c.id, name, &labels)
                })
                .cloned()
                .collect()
        })
        .await?;
    Ok(ListConfigsResponse { configs })
}

pub async fn config_remove(
    ctx: &ManagerContext,
    r: RemoveConfigRequest,
) -> Result<RemoveConfigResponse, Status> {
    ctx.update(|tx| {
        let config = tx.tables().find::<Config>(&r.config_id)?.clone();
        let users = services_using(tx.tables(), |s| {
            s.spec
                .as_ref()
                .and_then(|x| x.task.as_ref())
                .and_then(|t| t.container.as_ref())
                .is_some_and(|c| c.configs.iter().any(|x| x.config_id == config.id))
        });
        in_use("config", &r.config_id, users)?;
        Ok::<_, Status>(tx.remove::<Config>(&config.id)?)
    })
    .await?;
    Ok(RemoveConfigResponse {})
}

// ---- networks ----

pub async fn network_create(
    ctx: &ManagerContext,
    r: CreateNetworkRequest,
) -> Result<CreateNetworkResponse, Status> {
    let spec = r
        .spec
        .ok_or_else(|| Status::invalid_argument("no network spec given"))?;
    let network = new_network(spec)?;
    ctx.store.view(|t| check_ingress(t, &network))?;
    let id = network.id.clone();
    ctx.update(|tx| Ok::<_, Status>(tx.create(network)?))
        .await?;
    Ok(CreateNetworkResponse {
        network: allocated(ctx, &id).await,
    })
}

/// How long `network create` waits for the allocator, so the answer (and
/// an `inspect` right after) shows the subnet.
const ALLOCATION_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The network once the allocator gave it a subnet, or as it is after
/// [`ALLOCATION_WAIT`] (the allocator is the only writer of subnets and
/// VXLAN ids, so two creates at once never get the same ones).
async fn allocated(ctx: &ManagerContext, id: &str) -> Option<Network> {
    let get = |t: &Tables| t.get::<Network>(id).cloned();
    let (mut network, mut commits) = ctx.store.view_and_watch(get);
    let deadline = tokio::time::Instant::now() + ALLOCATION_WAIT;
    while network.as_ref().is_some_and(|n| !is_allocated(n)) {
        match tokio::time::timeout_at(deadline, commits.recv()).await {
            Err(_) | Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => break,
            Ok(_) => network = ctx.store.view(get),
        }
    }
    network
}

pub async fn network_get(
    ctx: &ManagerContext,
    r: GetNetworkRequest,
) -> Result<GetNetworkResponse, Status> {
    let network = ctx
        .read(|t| t.find::<Network>(&r.network_id).cloned())
        .await??;
    Ok(GetNetworkResponse {
        network: Some(network),
    })
}

pub async fn network_list(
    ctx: &ManagerContext,
    r: ListNetworksRequest,
) -> Result<ListNetworksResponse, Status> {
    let f = r.filters.as_ref();
    let networks = ctx
        .read(|t| {
            t.all::<Network>()
                .filter(|n| {
                    let (name, labels) =
                        annotations(n.spec.as_ref().and_then(|x| x.annotations.as_ref()));
                    matches(f, &n.id, name, &labels)
                })
                .cloned()
                .collect()
        })
        .await?;
    Ok(ListNetworksResponse { networks })
}

pub async fn network_remove(
    ctx: &ManagerContext,
    r: RemoveNetworkRequest,
) -> Result<RemoveNetworkResponse, Status> {
    ctx.update(|tx| {
        let network = tx.tables().find::<Network>(&r.network_id)?.clone();
        let users = services_using(tx.tables(), |s| {
            let on = |list: &[shoal_proto::objects::NetworkAttachmentConfig]| {
                list.iter().any(|a| a.target == network.id)
            };
            s.spec.as_ref().is_some_and(|x| {
                on(&x.networks) || x.task.as_ref().is_some_and(|t| on(&t.networks))
            })
        });
        in_use("network", &r.network_id, users)?;
        Ok::<_, Status>(tx.remove::<Network>(&network.id)?)
    })
    .await?;
    Ok(RemoveNetworkResponse {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["web", "my-secret.v2", "a", "A_b-c.d"] {
            assert!(validate_name("secret", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-web", "web-", "has space", "x/y", &"a".repeat(65)] {
            let err = validate_name("secret", bad).unwrap_err();
            assert!(err.message().contains("invalid secret name"), "{bad}");
        }
    }

    #[test]
    fn encrypted_overlays_are_refused() {
        let spec = |options: &[(&str, &str)]| NetworkSpec {
            annotations: Some(Annotations {
                name: "net".into(),
                ..Default::default()
            }),
            driver_config: Some(Driver {
                name: "overlay".into(),
                options: options
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            ..Default::default()
        };
        for value in ["", "true", "false"] {
            let e = new_network(spec(&[("encrypted", value)])).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(
                e.message().starts_with(
                    "overlay network encryption (--opt encrypted) is not available yet in Shoal"
                ),
                "{}",
                e.message()
            );
        }
        assert!(new_network(spec(&[("com.docker.network.driver.mtu", "1400")])).is_ok());
    }

    #[test]
    fn data_limits_are_dockers() {
        use shoal_proto::limits::{MAX_CONFIG_SIZE, MAX_SECRET_SIZE};
        assert!(
            check_data("secret", b"")
                .unwrap_err()
                .message()
                .contains("must be larger than 0")
        );
        assert!(check_data("secret", &vec![0; MAX_SECRET_SIZE - 1]).is_ok());
        let err = check_data("secret", &vec![0; MAX_SECRET_SIZE]).unwrap_err();
        assert_eq!(
            err.message(),
            "secret data must be larger than 0 and less than 512000 bytes (got 512000 bytes)"
        );
        // A config may be twice a secret's size, as in Docker.
        assert!(check_data("config", &vec![0; 600 * 1024]).is_ok());
        let err = check_data("config", &vec![0; MAX_CONFIG_SIZE]).unwrap_err();
        assert!(err.message().contains("less than 1024000 bytes"));
    }
}
