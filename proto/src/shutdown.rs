//! The shutdown tree. One root token is cancelled on SIGTERM/SIGINT; every
//! long-lived loop holds a child token and stops when it fires, so a
//! component can also be stopped alone by cancelling its own child.

pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;

/// Cancels `token` on the first SIGTERM or SIGINT, and returns the signal's
/// name. Returns `None` if the token was cancelled by someone else first.
pub async fn cancel_on_signal(token: CancellationToken) -> Option<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; only explicit shutdown works");
        token.cancelled().await;
        return None;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = token.cancelled() => return None,
    };
    token.cancel();
    Some(name)
}
