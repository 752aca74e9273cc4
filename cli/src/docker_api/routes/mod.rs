//! Every endpoint of the Swarm subset, one module per noun. Endpoints
//! outside it answer in Docker's error shape, never hang.

mod events;
mod logs;
mod nodes;
mod resources;
mod services;
mod swarm;
mod system;

use axum::Router;
use axum::extract::Request;
use axum::routing::{get, post};

use super::Daemon;
use super::error::ApiError;
use super::version;

/// The router, without its state.
pub fn router() -> Router<Daemon> {
    Router::new()
        .route("/_ping", get(version::ping).head(version::ping))
        .route("/version", get(version::version))
        .route("/info", get(system::info))
        .route("/events", get(events::events))
        .route("/swarm", get(swarm::inspect))
        .route("/swarm/init", post(swarm::init))
        .route("/swarm/join", post(swarm::join))
        .route("/swarm/leave", post(swarm::leave))
        .route("/swarm/update", post(swarm::update))
        .route("/swarm/unlockkey", get(swarm::unlock_key))
        .route("/swarm/unlock", post(swarm::unlock))
        .route("/nodes", get(nodes::list))
        .route("/nodes/{id}", get(nodes::inspect).delete(nodes::remove))
        .route("/nodes/{id}/update", post(nodes::update))
        .route("/services", get(services::list))
        .route("/services/create", post(services::create))
        .route(
            "/services/{id}",
            get(services::inspect).delete(services::remove),
        )
        .route("/services/{id}/update", post(services::update))
        .route("/services/{id}/logs", get(logs::service_logs))
        .route("/tasks", get(services::tasks))
        .route("/tasks/{id}", get(services::task))
        .route("/tasks/{id}/logs", get(logs::task_logs))
        .route("/secrets", get(resources::secrets))
        .route("/secrets/create", post(resources::secret_create))
        .route(
            "/secrets/{id}",
            get(resources::secret).delete(resources::secret_remove),
        )
        .route("/configs", get(resources::configs))
        .route("/configs/create", post(resources::config_create))
        .route(
            "/configs/{id}",
            get(resources::config).delete(resources::config_remove),
        )
        .route("/networks", get(resources::networks))
        .route("/networks/create", post(resources::network_create))
        .route(
            "/networks/{id}",
            get(resources::network).delete(resources::network_remove),
        )
        .route("/distribution/{*name}", get(services::distribution))
        .route(
            "/containers/{*rest}",
            get(outside).post(outside).delete(outside),
        )
        .route(
            "/images/{*rest}",
            get(outside).post(outside).delete(outside),
        )
        .route("/volumes", get(outside).post(outside))
        .route(
            "/volumes/{*rest}",
            get(outside).post(outside).delete(outside),
        )
        .route("/build", post(outside))
        .route("/plugins", get(outside))
        .route(
            "/plugins/{*rest}",
            get(outside).post(outside).delete(outside),
        )
        .route("/system/df", get(outside))
        .route("/exec/{*rest}", get(outside).post(outside))
        .route("/session", post(outside))
        .route("/grpc", post(outside))
        .fallback(page_not_found)
}

/// Docker endpoints Shoal does not serve: say so, in Docker's shape.
async fn outside(request: Request) -> ApiError {
    let noun = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    ApiError::not_implemented(format!(
        "Shoal serves the Docker API's swarm subset (swarm, nodes, services, tasks, secrets, \
         configs, networks, events); {noun} are not available on this endpoint. Use `shoal` on \
         the node for its images and volumes."
    ))
}

/// Docker's answer to an unknown path.
async fn page_not_found() -> ApiError {
    ApiError::not_found("page not found")
}

/// A Docker boolean query parameter (`1`, `true`; absent is false).
pub(crate) fn flag(q: &std::collections::HashMap<String, String>, key: &str) -> bool {
    q.get(key)
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// An integer query parameter.
pub(crate) fn query_u64(
    q: &std::collections::HashMap<String, String>,
    key: &str,
) -> Result<Option<u64>, ApiError> {
    q.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid {key}: {v:?} is not a number")))
        })
        .transpose()
}

/// A JSON body as Docker's daemon reads it (see [`crate::docker_api::json`]).
pub(crate) fn json_body<T: serde::de::DeserializeOwned + 'static>(
    body: &[u8],
) -> Result<T, ApiError> {
    crate::docker_api::json::read(body)
}

/// Docker's time parameters (`since`, `until`): unix seconds with an
/// optional fraction of up to nine digits (`1700000000.5`).
pub(crate) fn unix_time(key: &str, raw: &str) -> Result<prost_types::Timestamp, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid {key} value {raw:?}: expected unix seconds"
        ))
    };
    let (secs, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let seconds: i64 = secs.parse().map_err(|_| bad())?;
    let nanos = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    Ok(prost_types::Timestamp { seconds, nanos })
}

#[cfg(test)]
mod tests {
    use super::unix_time;

    #[test]
    fn unix_times_take_a_fraction_and_refuse_anything_else() {
        let t = unix_time("since", "1700000000.5").unwrap();
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 500_000_000));
        assert_eq!(unix_time("since", "17").unwrap().nanos, 0);
        for bad in ["yesterday", "1.é", "1.1234567890", "1.-5", ""] {
            assert!(unix_time("since", bad).is_err(), "{bad:?}");
        }
    }
}
