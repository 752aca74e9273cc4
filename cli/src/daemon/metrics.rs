//! `--metrics-addr`: Prometheus metrics on `GET /metrics`, in the text
//! exposition format, over plain HTTP on TCP (as dockerd's own
//! `--metrics-addr`). Read-only, and off unless asked for.
//!
//! One registry for the daemon: build information, the node's metrics
//! (`shoal_worker::metrics`) and the manager's (`shoal_manager::metrics`),
//! each shown only while there is a node in a swarm, or a manager.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use shoal_manager::controlapi::ManagerSlot;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every metric this daemon shows.
pub fn registry(slot: ManagerSlot) -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "shoal_build",
        "Shoal's version and commit",
        Info::new(vec![
            ("version", shoal_proto::build_info::VERSION),
            ("commit", shoal_proto::build_info::GIT_COMMIT),
        ]),
    );
    shoal_worker::metrics::register(&mut registry);
    shoal_manager::metrics::register(&mut registry, slot);
    registry
}

/// Serves `registry` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, registry: Registry, shutdown: CancellationToken) {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(Arc::new(registry));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(err) = served {
        tracing::error!(%err, "the metrics endpoint stopped");
    }
}

/// Encodes every metric now: atomic reads, the manager's published Raft
/// state and the store's table sizes (an O(1) copy of the tables, no walk),
/// so scraping often costs the daemon next to nothing.
async fn scrape(State(registry): State<Arc<Registry>>) -> Response {
    let mut text = String::new();
    match prometheus_text::encode(&mut text, &registry) {
        Ok(()) => (
            [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(err) => {
            tracing::warn!(%err, "encoding the metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_text_format_on_get_metrics() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(serve(
            listener,
            registry(ManagerSlot::default()),
            shutdown.clone(),
        ));
        let (status, head, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200, "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert!(body.contains("# TYPE shoal_build_info gauge"), "{body}");
        assert!(body.contains("shoal_build_info{version=\""), "{body}");
        // No swarm here: neither node nor manager metrics.
        assert!(!body.contains("shoal_raft_"), "{body}");
        assert!(!body.contains("shoal_node_tasks"), "{body}");
        assert_eq!(get(addr, "/other").await.0, 404);
        shutdown.cancel();
        served.await.expect("served");
    }

    /// A plain HTTP/1.0 GET: status, head and body.
    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("a head");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        (status, head.to_string(), body.to_string())
    }
}
