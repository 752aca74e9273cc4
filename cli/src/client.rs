//! The CLI's connection to its daemon: gRPC over the Unix socket.

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::host::Host;

/// Why the CLI cannot talk to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error(
        "Cannot connect to the Shoal daemon at {host}. Is the shoal daemon running? ({reason})"
    )]
    Unreachable {
        /// The daemon address tried.
        host: Host,
        /// The underlying error.
        reason: String,
    },
}

/// Connects to the daemon at `host`. Fails fast when the socket is absent.
pub async fn connect(host: &Host) -> Result<Channel, ClientError> {
    let socket = host.socket().to_path_buf();
    // The URI is required by tonic but unused: the connector dials the socket.
    let endpoint = Endpoint::from_static("http://shoal.local");
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .map_err(|e| ClientError::Unreachable {
            host: host.clone(),
            reason: error_chain(&e),
        })
}

/// The innermost cause of an error, which is the part a user can act on.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Turns a gRPC status from the daemon into an error a user reads: the
/// daemon's message, or what the code means when it sent none.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    use tonic::Code;
    if !status.message().is_empty() {
        return anyhow::anyhow!("{}", status.message());
    }
    let text = match status.code() {
        Code::Unimplemented => {
            "this daemon does not serve that request; cluster commands need a swarm manager \
             (run it on a manager node, or `shoal swarm init` first)"
        }
        Code::Unavailable => "the daemon is unavailable; is it running and in a swarm?",
        Code::NotFound => "not found",
        Code::FailedPrecondition => "this node is not in the state this request needs",
        Code::PermissionDenied => "permission denied",
        Code::DeadlineExceeded => "the daemon did not answer in time",
        _ => "the daemon failed the request",
    };
    anyhow::anyhow!("{text} ({})", status.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_reach_the_user() {
        let err = status_error(tonic::Status::not_found("No such node: x"));
        assert_eq!(err.to_string(), "No such node: x");
        let err = status_error(tonic::Status::unimplemented(""));
        assert!(err.to_string().contains("swarm manager"), "{err}");
    }
}
