//! The web view (`shoal daemon --web-addr`): a live, read-only page of the
//! cluster, one column per node and a card per task, as the visualizer
//! people deploy on their swarms.
//!
//! Like the Docker API ([`crate::docker_api`]) it is a face: it reads the
//! cluster through the daemon's own control API over its socket, so it has
//! no path of its own to the store, and on a node that is not a manager it
//! says so (503 and Docker's message) rather than failing.
//!
//! - [`view`]: the lists as nodes, services and task cards; filters, cap.
//! - [`hub`]: one `Watch` for every viewer; re-reads after each burst.
//! - [`api`]: `/api/state` (JSON) and `/api/events` (server-sent events).
//! - `assets/`: the page (HTML, CSS, JS), built into the binary; it needs
//!   no build step and nothing from the internet.

mod api;
mod hub;
pub mod view;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use shoal_proto::control::control_client::ControlClient;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Lists of a large cluster exceed tonic's default 4 MB message limit.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// What every handler reaches.
#[derive(Clone)]
struct Web {
    control: ControlClient<Channel>,
    hub: Arc<hub::Hub>,
    /// Ends the event streams, so the server can stop.
    shutdown: CancellationToken,
}

/// The page and its data.
fn app(web: Web) -> Router {
    Router::new()
        .route("/", get(asset::<Html>))
        .route("/app.css", get(asset::<Css>))
        .route("/app.js", get(asset::<Js>))
        .route("/api/state", get(api::state))
        .route("/api/events", get(api::events))
        .with_state(web)
        .layer(axum::middleware::map_response(secure))
}

/// Serves the web view on `listener` until `shutdown`, reading the cluster
/// over `channel` (the daemon's own socket).
pub async fn serve(listener: TcpListener, channel: Channel, shutdown: CancellationToken) {
    let control = ControlClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let hub = hub::Hub::new();
    let feed = tokio::spawn(hub.clone().run(control.clone(), shutdown.clone()));
    let web = Web {
        control,
        hub,
        shutdown: shutdown.clone(),
    };
    let served = axum::serve(listener, app(web))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(err) = served {
        tracing::error!(%err, "the web view stopped");
    }
    let _ = feed.await;
}

/// A file of the page.
trait Asset {
    const BODY: &'static str;
    const TYPE: &'static str;
}

struct Html;
struct Css;
struct Js;

impl Asset for Html {
    const BODY: &'static str = include_str!("assets/index.html");
    const TYPE: &'static str = "text/html; charset=utf-8";
}

impl Asset for Css {
    const BODY: &'static str = include_str!("assets/app.css");
    const TYPE: &'static str = "text/css; charset=utf-8";
}

impl Asset for Js {
    const BODY: &'static str = include_str!("assets/app.js");
    const TYPE: &'static str = "text/javascript; charset=utf-8";
}

async fn asset<A: Asset>() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, A::TYPE),
            // A daemon upgrade changes the page: never serve an old copy.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        A::BODY,
    )
}

/// The page loads only its own files and may not be framed.
async fn secure(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    /// The web view of a daemon socket nobody listens on.
    fn web() -> Web {
        let socket = std::env::temp_dir().join("shoal-web-test-no-daemon.sock");
        let control = ControlClient::new(crate::docker_api::channel_to(&socket));
        let hub = hub::Hub::new();
        let shutdown = CancellationToken::new();
        tokio::spawn(hub.clone().run(control.clone(), shutdown.clone()));
        Web {
            control,
            hub,
            shutdown,
        }
    }

    async fn get(path: &str) -> (StatusCode, String, String) {
        let response = app(web())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let kind = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, kind, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_page_and_its_files_are_served() {
        let (status, kind, body) = get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(kind.starts_with("text/html"), "{kind}");
        assert!(body.contains("app.js") && body.contains("app.css"));
        let (_, kind, _) = get("/app.js").await;
        assert!(kind.starts_with("text/javascript"), "{kind}");
        let (status, _, _) = get("/nothing").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn data_answers_503_with_a_message_when_the_cluster_cannot_be_read() {
        for path in ["/api/state", "/api/events"] {
            let (status, kind, body) = get(path).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert!(kind.starts_with("application/json"), "{path}: {kind}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(!v["message"].as_str().unwrap().is_empty(), "{path}: {body}");
        }
    }
}
