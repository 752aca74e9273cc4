//! `/secrets`, `/configs` and `/networks`: the stored objects with a name,
//! labels and no lifecycle of their own.

use shoal_proto::listing::Joined as _;
use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bollard::models::{Config, ConfigSpec, Network, NetworkCreateRequest, Secret, SecretSpec};
use serde::Serialize;
use shoal_proto::control::*;

use super::json_body;
use crate::docker_api::Daemon;
use crate::docker_api::convert::resources::*;
use crate::docker_api::error::{ApiError, ApiResult};
use crate::docker_api::filters::Filters;

/// The body of a create answer: `{"ID": ...}`.
#[derive(Serialize)]
pub struct Created {
    #[serde(rename = "ID")]
    id: String,
}

/// `{"Id": ..., "Warning": ...}`, as networks answer.
#[derive(Serialize)]
pub struct NetworkCreated {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Warning")]
    warning: String,
}

type Q = Query<HashMap<String, String>>;

fn list_filters(
    q: &HashMap<String, String>,
    allowed: &[&str],
) -> ApiResult<(Filters, ListFilters)> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    filters.allow(allowed)?;
    let mut list = filters.to_list();
    // `names` is exact; `name` is by prefix.
    list.names = filters.get("names").to_vec();
    Ok((filters, list))
}

/// `GET /secrets`.
pub async fn secrets(State(d): State<Daemon>, Query(q): Q) -> ApiResult<Json<Vec<Secret>>> {
    let (_, filters) = list_filters(&q, &["id", "label", "name", "names"])?;
    let list = d
        .control
        .clone()
        .list_secrets(ListSecretsRequest {
            filters: Some(filters),
        })
        .joined()
        .await?;
    Ok(Json(list.secrets.iter().map(secret_to_docker).collect()))
}

/// `GET /secrets/{id}`.
pub async fn secret(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Json<Secret>> {
    let secret = d
        .control
        .clone()
        .get_secret(GetSecretRequest {
            secret_id: id.clone(),
        })
        .await?
        .into_inner()
        .secret
        .ok_or_else(|| ApiError::not_found(format!("secret {id} not found")))?;
    Ok(Json(secret_to_docker(&secret)))
}

/// `POST /secrets/create`.
pub async fn secret_create(
    State(d): State<Daemon>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let spec: SecretSpec = json_body(&body)?;
    let spec = secret_from_docker(spec).map_err(ApiError::bad_request)?;
    let secret = d
        .control
        .clone()
        .create_secret(CreateSecretRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .secret
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(Created { id: secret.id })))
}

/// `DELETE /secrets/{id}`.
pub async fn secret_remove(
    State(d): State<Daemon>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    d.control
        .clone()
        .remove_secret(RemoveSecretRequest { secret_id: id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /configs`.
pub async fn configs(State(d): State<Daemon>, Query(q): Q) -> ApiResult<Json<Vec<Config>>> {
    let (_, filters) = list_filters(&q, &["id", "label", "name", "names"])?;
    let list = d
        .control
        .clone()
        .list_configs(ListConfigsRequest {
            filters: Some(filters),
        })
        .joined()
        .await?;
    Ok(Json(list.configs.iter().map(config_to_docker).collect()))
}

/// `GET /configs/{id}`.
pub async fn config(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Json<Config>> {
    let config = d
        .control
        .clone()
        .get_config(GetConfigRequest {
            config_id: id.clone(),
        })
        .await?
        .into_inner()
        .config
        .ok_or_else(|| ApiError::not_found(format!("config {id} not found")))?;
    Ok(Json(config_to_docker(&config)))
}

/// `POST /configs/create`.
pub async fn config_create(
    State(d): State<Daemon>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let spec: ConfigSpec = json_body(&body)?;
    let spec = config_from_docker(spec).map_err(ApiError::bad_request)?;
    let config = d
        .control
        .clone()
        .create_config(CreateConfigRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .config
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(Created { id: config.id })))
}

/// `DELETE /configs/{id}`.
pub async fn config_remove(
    State(d): State<Daemon>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    d.control
        .clone()
        .remove_config(RemoveConfigRequest { config_id: id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /networks`: the swarm's networks (Shoal has no local ones).
pub async fn networks(State(d): State<Daemon>, Query(q): Q) -> ApiResult<Json<Vec<Network>>> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    filters.allow(&["dangling", "driver", "id", "label", "name", "scope", "type"])?;
    let list = d
        .control
        .clone()
        .list_networks(ListNetworksRequest {
            filters: Some(ListFilters {
                id_prefixes: filters.get("id").to_vec(),
                labels: filters.get("label").to_vec(),
                ..Default::default()
            }),
        })
        .joined()
        .await?;
    Ok(Json(
        list.networks
            .iter()
            .map(network_to_docker)
            .filter(|n| {
                let name = n.name.as_deref().unwrap_or("");
                // Docker matches network names by any part.
                filters.pass("name", |x| name.contains(x))
                    && filters.pass("driver", |x| n.driver.as_deref() == Some(x))
                    && filters.pass("scope", |x| x == "swarm")
                    && filters.pass("type", |x| {
                        x == "custom" || n.ingress == Some(true) && x == "builtin"
                    })
            })
            .collect(),
    ))
}

/// `GET /networks/{id}`.
pub async fn network(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Json<Network>> {
    let network = d
        .control
        .clone()
        .get_network(GetNetworkRequest {
            network_id: id.clone(),
        })
        .await
        .map_err(|e| ApiError::lookup(e, "network", &id))?
        .into_inner()
        .network
        .ok_or_else(|| ApiError::not_found(format!("network {id} not found")))?;
    Ok(Json(network_to_docker(&network)))
}

/// `POST /networks/create`.
pub async fn network_create(
    State(d): State<Daemon>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<NetworkCreated>)> {
    let req: NetworkCreateRequest = json_body(&body)?;
    let spec = network_from_docker(req).map_err(ApiError::bad_request)?;
    let network = d
        .control
        .clone()
        .create_network(CreateNetworkRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .network
        .unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(NetworkCreated {
            id: network.id,
            warning: String::new(),
        }),
    ))
}

/// `DELETE /networks/{id}`.
pub async fn network_remove(
    State(d): State<Daemon>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    d.control
        .clone()
        .remove_network(RemoveNetworkRequest { network_id: id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
