//! The control-API calls the service commands make: naming services,
//! resolving the secrets/configs/networks flags name, the names task
//! tables show, and the read-modify-write of an update that retries when
//! another change got in first.

use std::collections::BTreeMap;

use anyhow::bail;
use shoal_proto::control::{
    GetServiceRequest, ListConfigsRequest, ListFilters, ListNetworksRequest, ListNodesRequest,
    ListSecretsRequest, ListServicesRequest, ListTasksRequest, ServiceCounts, UpdateServiceRequest,
};
use shoal_proto::listing::Joined as _;
use shoal_proto::objects::{Node, Service, ServiceSpec, Task};

use super::to_spec::Lookup;
use super::view::Names;
use crate::client::status_error;
use crate::cmd::common::{Api, resolve};

/// How many times an update is re-read and re-sent when the service
/// changed under it.
const UPDATE_ATTEMPTS: usize = 5;

fn all() -> Option<ListFilters> {
    Some(ListFilters::default())
}

/// Every service.
pub async fn services(api: &mut Api) -> anyhow::Result<Vec<Service>> {
    Ok(api
        .control
        .list_services(ListServicesRequest {
            filters: all(),
            status: false,
        })
        .joined()
        .await
        .map_err(status_error)?
        .services)
}

/// Every service, with its replica counts (by service id) computed by the
/// manager.
pub async fn services_with_counts(
    api: &mut Api,
) -> anyhow::Result<(Vec<Service>, BTreeMap<String, ServiceCounts>)> {
    let list = api
        .control
        .list_services(ListServicesRequest {
            filters: all(),
            status: true,
        })
        .joined()
        .await
        .map_err(status_error)?;
    let counts = list
        .services
        .iter()
        .map(|s| s.id.clone())
        .zip(list.statuses)
        .collect();
    Ok((list.services, counts))
}

/// Tasks, by `filters`.
pub async fn tasks(api: &mut Api, filters: ListFilters) -> anyhow::Result<Vec<Task>> {
    Ok(api
        .control
        .list_tasks(ListTasksRequest {
            filters: Some(filters),
        })
        .joined()
        .await
        .map_err(status_error)?
        .tasks)
}

/// Every node.
pub async fn nodes(api: &mut Api) -> anyhow::Result<Vec<Node>> {
    Ok(api
        .control
        .list_nodes(ListNodesRequest { filters: all() })
        .joined()
        .await
        .map_err(status_error)?
        .nodes)
}

/// Service names and node hostnames by id, for task tables.
pub fn names(services: &[Service], nodes: &[Node]) -> Names {
    Names {
        services: services
            .iter()
            .map(|s| {
                let name = s
                    .spec
                    .as_ref()
                    .and_then(|s| s.annotations.as_ref())
                    .map_or("", |a| a.name.as_str());
                (s.id.clone(), name.to_string())
            })
            .collect(),
        nodes: nodes
            .iter()
            .map(|n| {
                (
                    n.id.clone(),
                    n.description
                        .as_ref()
                        .map_or("", |d| d.hostname.as_str())
                        .to_string(),
                )
            })
            .collect(),
    }
}

/// The ids `args` name among `services`, one result per name.
pub fn resolve_services(services: &[Service], args: &[String]) -> Vec<anyhow::Result<String>> {
    let pairs: Vec<(&str, &str)> = services
        .iter()
        .map(|s| {
            let name = s
                .spec
                .as_ref()
                .and_then(|s| s.annotations.as_ref())
                .map_or("", |a| a.name.as_str());
            (s.id.as_str(), name)
        })
        .collect();
    args.iter()
        .map(|a| resolve("service", a, pairs.iter().copied()))
        .collect()
}

/// The id of the one service `arg` names.
pub async fn resolve_one(api: &mut Api, arg: &str) -> anyhow::Result<String> {
    let all = services(api).await?;
    let mut ids = resolve_services(&all, &[arg.to_string()]);
    ids.pop().unwrap_or_else(|| bail!("No such service: {arg}"))
}

/// One service by id.
pub async fn get(api: &mut Api, id: &str) -> anyhow::Result<Service> {
    Ok(api
        .control
        .get_service(GetServiceRequest {
            service_id: id.to_string(),
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .service
        .unwrap_or_default())
}

/// The secrets, configs and networks the flags may name; only the kinds
/// asked for are fetched.
pub async fn lookup(
    api: &mut Api,
    secrets: bool,
    configs: bool,
    networks: bool,
) -> anyhow::Result<Lookup> {
    let mut l = Lookup::default();
    let pair = |id: &str, a: Option<&shoal_proto::objects::Annotations>| {
        (id.to_string(), a.map_or(String::new(), |a| a.name.clone()))
    };
    if secrets {
        let r = api
            .control
            .list_secrets(ListSecretsRequest { filters: all() })
            .joined()
            .await
            .map_err(status_error)?;
        l.secrets = r
            .secrets
            .iter()
            .map(|s| pair(&s.id, s.spec.as_ref().and_then(|s| s.annotations.as_ref())))
            .collect();
    }
    if configs {
        let r = api
            .control
            .list_configs(ListConfigsRequest { filters: all() })
            .joined()
            .await
            .map_err(status_error)?;
        l.configs = r
            .configs
            .iter()
            .map(|s| pair(&s.id, s.spec.as_ref().and_then(|s| s.annotations.as_ref())))
            .collect();
    }
    if networks {
        let r = api
            .control
            .list_networks(ListNetworksRequest { filters: all() })
            .joined()
            .await
            .map_err(status_error)?;
        l.networks = r
            .networks
            .iter()
            .map(|s| pair(&s.id, s.spec.as_ref().and_then(|s| s.annotations.as_ref())))
            .collect();
    }
    Ok(l)
}

/// Reads the service, lets `change` edit its spec, and sends it back with
/// the version read; when the daemon answers that the version is stale
/// (`Aborted`, "update out of sequence"), reads again and retries.
/// Returns the service as read before the successful write.
pub async fn update(
    api: &mut Api,
    id: &str,
    rollback: bool,
    mut change: impl FnMut(&Service, &mut ServiceSpec) -> anyhow::Result<()>,
) -> anyhow::Result<Service> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before = get(api, id).await?;
        let version = before.meta.map(|m| m.version).unwrap_or_default();
        let mut spec = before.spec.clone().unwrap_or_default();
        change(&before, &mut spec)?;
        let sent = api
            .control
            .update_service(UpdateServiceRequest {
                service_id: id.to_string(),
                version,
                spec: Some(spec),
                rollback,
            })
            .await;
        match sent {
            Ok(_) => return Ok(before),
            Err(s) if s.code() == tonic::Code::Aborted && attempt < UPDATE_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
            }
            Err(s) => return Err(status_error(s)),
        }
    }
}
