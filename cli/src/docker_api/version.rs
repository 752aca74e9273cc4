//! API versions: which ones Shoal answers, the `/v1.NN/` path prefix, and
//! the two endpoints clients call first (`/_ping`, `/version`).
//!
//! Shoal claims API 1.48 (Docker 28.0). Every `docker` 28 client negotiates
//! down to it from its `_ping`, and each command the Swarm subset needs
//! exists at 1.48 with today's shape. Older clients down to 1.24 (Docker's
//! own minimum) are answered; newer ones are told the maximum, as dockerd
//! does.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bollard::models::{SystemVersion, SystemVersionComponents, SystemVersionPlatform};
use shoal_proto::local::{InfoRequest, VersionRequest};

use super::Daemon;
use super::error::{ApiError, ApiResult};

/// The API version Shoal speaks.
pub const API_VERSION: ApiVersion = ApiVersion(1, 48);
/// The oldest API version answered.
pub const MIN_API_VERSION: ApiVersion = ApiVersion(1, 24);

/// `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl std::str::FromStr for ApiVersion {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (major, minor) = s.split_once('.').ok_or(())?;
        Ok(ApiVersion(
            major.parse().map_err(|_| ())?,
            minor.parse().map_err(|_| ())?,
        ))
    }
}

/// The version a request's path asked for (`/v1.44/...`), if any.
#[derive(Debug, Clone, Copy)]
struct Requested(Option<ApiVersion>);

/// Strips `/vMAJOR.MINOR` from every path before routing, so the router
/// knows each endpoint once; the version travels as an extension.
pub fn strip_prefix<S>(inner: S) -> tower::util::MapRequest<S, fn(Request) -> Request> {
    tower::util::MapRequest::new(inner, strip as fn(Request) -> Request)
}

fn strip(mut request: Request) -> Request {
    let (version, rest) = split_version(request.uri().path());
    if let Some(rest) = rest {
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        if let Ok(uri) = format!("{rest}{query}").parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    request.extensions_mut().insert(Requested(version));
    request
}

/// `("/v1.44/services")` → `(Some(1.44), Some("/services"))`.
fn split_version(path: &str) -> (Option<ApiVersion>, Option<&str>) {
    let Some(rest) = path.strip_prefix("/v") else {
        return (None, None);
    };
    let (version, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    match version.parse() {
        Ok(v) => (Some(v), Some(tail)),
        Err(()) => (None, None),
    }
}

/// Refuses versions outside the range and stamps Docker's headers on
/// every answer.
pub async fn negotiate(request: Request, next: Next) -> Response {
    let requested = request.extensions().get::<Requested>().and_then(|r| r.0);
    let mut response = match requested {
        Some(v) if v > API_VERSION => ApiError::bad_request(format!(
            "client version {v} is too new. Maximum supported API version is {API_VERSION}"
        ))
        .into_response(),
        Some(v) if v < MIN_API_VERSION => ApiError::bad_request(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        ))
        .into_response(),
        _ => next.run(request).await,
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("api-version", API_VERSION.to_string()),
        ("docker-experimental", "false".to_string()),
        ("ostype", "linux".to_string()),
        (
            "server",
            format!("Shoal/{} (linux)", shoal_proto::build_info::VERSION),
        ),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// `GET|HEAD /_ping`: "OK", with the node's swarm state in `Swarm`, which
/// the `docker` CLI reads to know which commands this node serves.
pub async fn ping(State(daemon): State<Daemon>, method: Method) -> Response {
    let swarm = match daemon.local.clone().info(InfoRequest { brief: true }).await {
        Ok(info) => swarm_header(info.into_inner().swarm.as_ref()),
        Err(_) => "inactive".to_string(),
    };
    let body = if method == Method::HEAD { "" } else { "OK" };
    (
        [
            ("swarm", swarm.as_str()),
            ("cache-control", "no-cache, no-store, must-revalidate"),
            ("pragma", "no-cache"),
            ("content-type", "text/plain; charset=utf-8"),
        ],
        body,
    )
        .into_response()
}

/// Docker's `Swarm` ping header: `inactive`, `pending`, `locked`,
/// `active/worker` or `active/manager`.
fn swarm_header(swarm: Option<&shoal_proto::local::SwarmInfo>) -> String {
    match swarm {
        Some(s) if s.local_node_state == "active" => {
            let role = if s.control_available {
                "manager"
            } else {
                "worker"
            };
            format!("active/{role}")
        }
        Some(s) if !s.local_node_state.is_empty() => s.local_node_state.clone(),
        _ => "inactive".to_string(),
    }
}

/// `GET /version`.
pub async fn version(State(daemon): State<Daemon>) -> ApiResult<Json<SystemVersion>> {
    let v = daemon
        .local
        .clone()
        .version(VersionRequest {})
        .await?
        .into_inner();
    let d = v.daemon.unwrap_or_default();
    let details = HashMap::from([
        ("ApiVersion".to_string(), API_VERSION.to_string()),
        ("MinAPIVersion".to_string(), MIN_API_VERSION.to_string()),
        ("GitCommit".to_string(), d.git_commit.clone()),
        ("Os".to_string(), d.os.clone()),
        ("Arch".to_string(), d.arch.clone()),
        ("KernelVersion".to_string(), v.kernel_version.clone()),
        ("Engine".to_string(), v.engine.clone()),
    ]);
    Ok(Json(SystemVersion {
        platform: Some(SystemVersionPlatform {
            name: "Shoal".to_string(),
        }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".to_string(),
            version: d.version.clone(),
            details: Some(details),
        }]),
        version: Some(d.version),
        api_version: Some(API_VERSION.to_string()),
        min_api_version: Some(MIN_API_VERSION.to_string()),
        git_commit: Some(d.git_commit),
        go_version: Some(format!("rustc {}", d.rustc)),
        os: Some(d.os),
        arch: Some(d.arch),
        kernel_version: Some(v.kernel_version),
        experimental: Some(false),
        build_time: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_split_from_paths() {
        assert_eq!(
            split_version("/v1.44/services/abc"),
            (Some(ApiVersion(1, 44)), Some("/services/abc"))
        );
        assert_eq!(
            split_version("/v1.48"),
            (Some(ApiVersion(1, 48)), Some("/"))
        );
        assert_eq!(split_version("/services"), (None, None));
        assert_eq!(split_version("/volumes"), (None, None));
        assert!(ApiVersion(1, 50) > API_VERSION && ApiVersion(1, 9) < MIN_API_VERSION);
    }

    #[test]
    fn the_swarm_header_says_the_nodes_role() {
        let mut s = shoal_proto::local::SwarmInfo {
            local_node_state: "active".into(),
            control_available: true,
            ..Default::default()
        };
        assert_eq!(swarm_header(Some(&s)), "active/manager");
        s.control_available = false;
        assert_eq!(swarm_header(Some(&s)), "active/worker");
        assert_eq!(swarm_header(None), "inactive");
    }
}
