//! `/services` and `/tasks`: create, inspect, update (and roll back),
//! remove; tasks with Docker's filters; `/distribution` for image pinning.

use shoal_proto::listing::Joined as _;
use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use bollard::models::{
    DistributionInspect, OciDescriptor, ServiceCreateResponse, ServiceServiceStatus,
    ServiceUpdateResponse,
};
use serde::Deserialize;
use serde_json::Value;
use shoal_proto::control::*;
use shoal_proto::local::ImageResolveRequest;
use shoal_proto::objects::{self, RegistryAuth};

use super::{flag, query_u64};
use crate::docker_api::Daemon;
use crate::docker_api::convert::service::{parse_spec, service_json, spec_from_docker};
use crate::docker_api::convert::task::{state_from_name, task_json};
use crate::docker_api::error::{ApiError, ApiResult};
use crate::docker_api::filters::Filters;

type Q = Query<HashMap<String, String>>;

/// `GET /services?filters=&status=`.
pub async fn list(State(d): State<Daemon>, Query(q): Q) -> ApiResult<Json<Vec<Value>>> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    filters.allow(&["id", "label", "mode", "name"])?;
    let status = flag(&q, "status");
    let mut list = filters.to_list();
    list.modes = filters.get("mode").to_vec();
    let response = d
        .control
        .clone()
        .list_services(ListServicesRequest {
            filters: Some(list),
            status,
        })
        .joined()
        .await?;
    let counts = response.statuses.into_iter().map(|c| ServiceServiceStatus {
        running_tasks: Some(c.running_tasks),
        desired_tasks: Some(c.desired_tasks),
        completed_tasks: Some(c.completed_tasks),
    });
    let mut counts = counts.map(Some).chain(std::iter::repeat(None));
    Ok(Json(
        response
            .services
            .iter()
            .map(|s| service_json(s, counts.next().flatten()))
            .collect(),
    ))
}

/// `GET /services/{id}` (an id, a unique id prefix, or a name).
pub async fn inspect(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(service_json(&get(&d, &id).await?, None)))
}

/// The service `id` names (an id, a unique id prefix, or a name).
pub(super) async fn get(d: &Daemon, id: &str) -> ApiResult<objects::Service> {
    d.control
        .clone()
        .get_service(GetServiceRequest {
            service_id: id.to_string(),
        })
        .await
        .map_err(|e| ApiError::lookup(e, "service", id))?
        .into_inner()
        .service
        .ok_or_else(|| ApiError::not_found(format!("service {id} not found")))
}

/// `POST /services/create`.
pub async fn create(
    State(d): State<Daemon>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<ServiceCreateResponse>)> {
    let spec = parse_spec(&body).map_err(ApiError::bad_request)?;
    let spec = spec_from_docker(spec, registry_auth(&headers)?).map_err(ApiError::bad_request)?;
    let service = d
        .control
        .clone()
        .create_service(CreateServiceRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .service
        .unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(ServiceCreateResponse {
            id: Some(service.id),
            warnings: None,
        }),
    ))
}

/// `POST /services/{id}/update?version=&rollback=previous`: the whole spec
/// is replaced; credentials stay unless the client sends new ones.
pub async fn update(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<ServiceUpdateResponse>> {
    let spec = parse_spec(&body).map_err(ApiError::bad_request)?;
    let spec = spec_from_docker(spec, registry_auth(&headers)?).map_err(ApiError::bad_request)?;
    let version = query_u64(&q, "version")?
        .ok_or_else(|| ApiError::bad_request("invalid service version: the version is required"))?;
    let rollback = match q.get("rollback").map(String::as_str) {
        None | Some("") => false,
        Some("previous") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid rollback value {other:?}: only \"previous\" is supported"
            )));
        }
    };
    let service = get(&d, &id).await?;
    d.control
        .clone()
        .update_service(UpdateServiceRequest {
            service_id: service.id,
            version,
            spec: Some(spec),
            rollback,
        })
        .await?;
    Ok(Json(ServiceUpdateResponse { warnings: None }))
}

/// `DELETE /services/{id}`.
pub async fn remove(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<()> {
    let service = get(&d, &id).await?;
    d.control
        .clone()
        .remove_service(RemoveServiceRequest {
            service_id: service.id,
        })
        .await?;
    Ok(())
}

/// Docker's `X-Registry-Auth`: base64url JSON of the caller's login.
fn registry_auth(headers: &HeaderMap) -> ApiResult<Option<RegistryAuth>> {
    #[derive(Deserialize, Default)]
    struct AuthConfig {
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
        #[serde(default, rename = "serveraddress")]
        server_address: String,
    }
    let Some(raw) = headers.get("x-registry-auth") else {
        return Ok(None);
    };
    let raw = raw.as_bytes();
    let bad = || ApiError::bad_request("X-Registry-Auth is not base64-encoded JSON");
    let json = base64::engine::general_purpose::URL_SAFE
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .map_err(|_| bad())?;
    if json.iter().all(u8::is_ascii_whitespace) || json == b"{}" {
        return Ok(None);
    }
    let auth: AuthConfig = serde_json::from_slice(&json).map_err(|_| bad())?;
    if auth.username.is_empty() && auth.password.is_empty() {
        return Ok(None);
    }
    Ok(Some(RegistryAuth {
        server: auth.server_address,
        username: auth.username,
        password: auth.password,
    }))
}

/// `GET /tasks?filters=`: `service` and `node` take names or ids,
/// `desired-state`, `id`, `name` (`web.1`), `label`, and `_up-to-date`
/// (tasks of the service's current spec, which `docker service` progress
/// follows).
pub async fn tasks(State(d): State<Daemon>, Query(q): Q) -> ApiResult<Json<Vec<Value>>> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    filters.allow(&[
        "_up-to-date",
        "desired-state",
        "id",
        "label",
        "name",
        "node",
        "service",
    ])?;
    let mut control = d.control.clone();
    let services = control
        .list_services(ListServicesRequest::default())
        .joined()
        .await?
        .services;
    let mut service_ids = Vec::new();
    for wanted in filters.get("service") {
        let found = services.iter().filter(|s| {
            s.id == *wanted
                || s.spec
                    .as_ref()
                    .and_then(|x| x.annotations.as_ref())
                    .is_some_and(|a| a.name == *wanted)
        });
        let found: Vec<String> = found.map(|s| s.id.clone()).collect();
        if found.is_empty() {
            // Docker answers an unknown service with no tasks.
            service_ids.push(wanted.clone());
        }
        service_ids.extend(found);
    }
    let mut node_ids = Vec::new();
    for wanted in filters.get("node") {
        let node = control
            .get_node(GetNodeRequest {
                node_id: wanted.clone(),
            })
            .await;
        node_ids.push(match node {
            Ok(n) => n.into_inner().node.map_or(wanted.clone(), |n| n.id),
            Err(_) => wanted.clone(),
        });
    }
    let mut desired_states = Vec::new();
    for name in filters.get("desired-state") {
        let state = state_from_name(name).ok_or_else(|| {
            ApiError::bad_request(format!("invalid desired-state filter {name:?}"))
        })?;
        desired_states.push(state as i32);
    }
    let list = control
        .list_tasks(ListTasksRequest {
            filters: Some(ListFilters {
                id_prefixes: filters.get("id").to_vec(),
                service_ids,
                node_ids,
                desired_states,
                ..Default::default()
            }),
        })
        .joined()
        .await?
        .tasks;
    let by_id: HashMap<&str, &objects::Service> =
        services.iter().map(|s| (s.id.as_str(), s)).collect();
    let up_to_date = flag_filter(&filters, "_up-to-date");
    Ok(Json(
        list.iter()
            .filter(|t| {
                let service = by_id.get(t.service_id.as_str());
                let name = task_name(t);
                let labels = t.service_annotations.as_ref().map(|a| &a.labels);
                let current = service.is_some_and(|s| {
                    s.spec.as_ref().and_then(|x| x.task.as_ref()) == t.spec.as_ref()
                });
                filters.pass("name", |n| name.starts_with(n))
                    && filters.labels_pass("label", |k| {
                        labels.and_then(|l| l.get(k)).map(String::as_str)
                    })
                    && (!up_to_date || current)
            })
            .map(task_json)
            .collect(),
    ))
}

/// Whether a boolean-valued filter key is set to true.
fn flag_filter(filters: &Filters, key: &str) -> bool {
    filters.get(key).iter().any(|v| v == "true" || v == "1")
}

/// `web.1` (replicated) or `web.<node id>` (global), as Docker names tasks.
fn task_name(task: &objects::Task) -> String {
    let service = task
        .service_annotations
        .as_ref()
        .map_or("", |a| a.name.as_str());
    if task.slot > 0 {
        format!("{service}.{}", task.slot)
    } else {
        format!("{service}.{}", task.node_id)
    }
}

/// `GET /tasks/{id}`.
pub async fn task(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(task_json(&get_task(&d, &id).await?)))
}

/// The task `id` names.
pub(super) async fn get_task(d: &Daemon, id: &str) -> ApiResult<objects::Task> {
    d.control
        .clone()
        .get_task(GetTaskRequest {
            task_id: id.to_string(),
        })
        .await
        .map_err(|e| ApiError::lookup(e, "task", id))?
        .into_inner()
        .task
        .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))
}

/// `GET /distribution/{name}/json`: the digest the image's tag names now,
/// which clients pin a service to (`--resolve-image`). Nodes whose engine
/// has no registry client of Shoal's cannot answer; the client then warns
/// and leaves the image unpinned, as with an unreachable registry.
pub async fn distribution(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<DistributionInspect>> {
    let image = name
        .strip_suffix("/json")
        .ok_or_else(|| ApiError::not_found("page not found"))?;
    let auth = registry_auth(&headers)?.unwrap_or_default();
    let pinned = d
        .local
        .clone()
        .image_resolve(ImageResolveRequest {
            reference: image.to_string(),
            username: auth.username,
            password: auth.password,
        })
        .await?
        .into_inner()
        .pinned;
    let digest = pinned
        .rsplit_once('@')
        .map(|(_, digest)| digest.to_string())
        .ok_or_else(|| {
            ApiError::not_implemented(format!(
                "this node's engine does not resolve image digests: {image} is not pinned"
            ))
        })?;
    Ok(Json(DistributionInspect {
        descriptor: OciDescriptor {
            media_type: Some("application/vnd.oci.image.index.v1+json".into()),
            digest: Some(digest),
            size: Some(0),
            ..Default::default()
        },
        platforms: Vec::new(),
    }))
}
