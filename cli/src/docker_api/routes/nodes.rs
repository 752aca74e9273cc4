//! `/nodes`: list, inspect, update, remove.

use shoal_proto::listing::Joined as _;
use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use bollard::models::{Node, NodeSpec};
use shoal_proto::control::{
    GetNodeRequest, ListNodesRequest, RemoveNodeRequest, UpdateNodeRequest,
};

use super::{flag, json_body, query_u64};
use crate::docker_api::Daemon;
use crate::docker_api::convert::node::{matches, node_to_docker, spec_from_docker};
use crate::docker_api::error::{ApiError, ApiResult};
use crate::docker_api::filters::Filters;

/// `GET /nodes?filters=`.
pub async fn list(
    State(daemon): State<Daemon>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Node>>> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    filters.allow(&["id", "label", "membership", "name", "node.label", "role"])?;
    let nodes = daemon
        .control
        .clone()
        .list_nodes(ListNodesRequest::default())
        .joined()
        .await?
        .nodes;
    Ok(Json(
        nodes
            .iter()
            .filter(|n| matches(n, &filters))
            .map(node_to_docker)
            .collect(),
    ))
}

/// `GET /nodes/{id}` (an id, a unique id prefix, or a name).
pub async fn inspect(
    State(daemon): State<Daemon>,
    Path(id): Path<String>,
) -> ApiResult<Json<Node>> {
    let node = get(&daemon, &id).await?;
    Ok(Json(node_to_docker(&node)))
}

async fn get(daemon: &Daemon, id: &str) -> ApiResult<shoal_proto::objects::Node> {
    daemon
        .control
        .clone()
        .get_node(GetNodeRequest {
            node_id: id.to_string(),
        })
        .await?
        .into_inner()
        .node
        .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))
}

/// `POST /nodes/{id}/update?version=`: the whole spec is replaced.
pub async fn update(
    State(daemon): State<Daemon>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> ApiResult<()> {
    let spec: NodeSpec = json_body(&body)?;
    let spec = spec_from_docker(spec).map_err(ApiError::bad_request)?;
    let version = query_u64(&q, "version")?
        .ok_or_else(|| ApiError::bad_request("invalid node version: the version is required"))?;
    let node = get(&daemon, &id).await?;
    daemon
        .control
        .clone()
        .update_node(UpdateNodeRequest {
            node_id: node.id,
            version,
            spec: Some(spec),
        })
        .await?;
    Ok(())
}

/// `DELETE /nodes/{id}?force=`.
pub async fn remove(
    State(daemon): State<Daemon>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<()> {
    let node = get(&daemon, &id).await?;
    daemon
        .control
        .clone()
        .remove_node(RemoveNodeRequest {
            node_id: node.id,
            force: flag(&q, "force"),
        })
        .await?;
    Ok(())
}
