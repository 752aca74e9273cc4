//! The Docker Engine API's Swarm subset (`shoal daemon --docker-api`), so
//! the `docker` CLI, its SDKs and tools drive Shoal unchanged.
//!
//! This is a face, like the `shoal` CLI: every request becomes calls to the
//! daemon's own local, control and logs APIs over its socket, so there is
//! no second path to the store. JSON is bollard's generated models (the
//! Engine API's own schema).
//!
//! - [`version`]: API versions, `/_ping`, `/version`, the `/v1.NN` prefix.
//! - [`routes`]: one module per noun.
//! - [`convert`]: Shoal's objects as Docker's types and back.
//! - [`filters`]: Docker's `filters` query parameter.
//! - [`json`]: request bodies read with Go's case-insensitive keys.
//! - [`error`]: Docker's error bodies and status codes.

pub mod convert;
pub mod error;
pub mod filters;
pub mod json;
mod routes;
pub mod version;

use std::path::Path;

use axum::Router;
use shoal_proto::control::control_client::ControlClient;
use shoal_proto::local::local_client::LocalClient;
use shoal_proto::logs::logs_client::LogsClient;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Lists of a large cluster exceed tonic's default 4 MB message limit.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// The daemon's APIs, as every handler reaches them.
#[derive(Clone)]
pub struct Daemon {
    /// The cluster (forwarded to the leader by the daemon).
    pub control: ControlClient<Channel>,
    /// This node: version, info, swarm membership.
    pub local: LocalClient<Channel>,
    /// Service logs.
    pub logs: LogsClient<Channel>,
}

impl Daemon {
    /// Clients of the daemon on `channel`.
    pub fn new(channel: Channel) -> Daemon {
        Daemon {
            control: ControlClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE),
            local: LocalClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE),
            logs: LogsClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
        }
    }
}

/// Every endpoint, behind the version prefix handling.
pub fn app(daemon: Daemon) -> Router {
    routes::router()
        .with_state(daemon)
        .layer(axum::middleware::from_fn(version::negotiate))
}

/// Serves the API on `listener` until `shutdown`; requests in flight
/// (a followed log, an event stream) end with it.
pub async fn serve(listener: UnixListener, daemon: Daemon, shutdown: CancellationToken) {
    let app = version::strip_prefix(app(daemon));
    let served = axum::serve(listener, axum::ServiceExt::into_make_service(app))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(err) = served {
        tracing::error!(%err, "the Docker API stopped");
    }
}

/// A lazy channel to the daemon's own socket: the Docker API starts before
/// the local API answers, and connects on first use.
pub fn channel_to(socket: &Path) -> Channel {
    let socket = socket.to_path_buf();
    tonic::transport::Endpoint::from_static("http://shoal.local").connect_with_connector_lazy(
        tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }),
    )
}
