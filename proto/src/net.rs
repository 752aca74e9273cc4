//! gRPC over mutual TLS between nodes: dialling (a lazy tonic channel
//! whose connector does TCP + rustls) and accepting (a stream of TLS
//! streams for `serve_with_incoming`, each closed when its node is
//! denied). Both sides use the configs from
//! [`crate::tls`]; tonic never sees a certificate of its own, so there is
//! exactly one place that decides what a peer must show.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::tls::{DenyList, MANAGER_SERVER_NAME};

/// How long a TCP connect or TLS handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A client TLS config that can be replaced while channels use it: each
/// new connection reads the current one, so a renewed certificate (or a
/// rotated root) takes effect without rebuilding any channel.
#[derive(Clone)]
pub struct ClientTls(Arc<RwLock<Arc<ClientConfig>>>);

impl ClientTls {
    /// Wraps a config.
    pub fn new(config: Arc<ClientConfig>) -> ClientTls {
        ClientTls(Arc::new(RwLock::new(config)))
    }
    /// The current config.
    pub fn get(&self) -> Arc<ClientConfig> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Replaces it for connections made from now on.
    pub fn set(&self, config: Arc<ClientConfig>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = config;
    }
}

impl From<Arc<ClientConfig>> for ClientTls {
    fn from(config: Arc<ClientConfig>) -> ClientTls {
        ClientTls::new(config)
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

/// A server TLS config that can be replaced while the listener runs;
/// each handshake uses the current one.
#[derive(Clone)]
pub struct ServerTls(Arc<RwLock<Arc<ServerConfig>>>);

impl ServerTls {
    /// Wraps a config.
    pub fn new(config: Arc<ServerConfig>) -> ServerTls {
        ServerTls(Arc::new(RwLock::new(config)))
    }
    /// The current config.
    pub fn get(&self) -> Arc<ServerConfig> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Replaces it for handshakes from now on.
    pub fn set(&self, config: Arc<ServerConfig>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = config;
    }
}

/// A lazy channel to `addr` (`host:port`) over mutual TLS. Connects on
/// first use and reconnects after failures.
pub fn channel(addr: &str, tls: impl Into<ClientTls>) -> Channel {
    let addr = addr.to_string();
    let tls: ClientTls = tls.into();
    // The URI is required but unused: the connector dials `addr`.
    Endpoint::from_static("http://cluster.shoal")
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let addr = addr.clone();
            let connector = TlsConnector::from(tls.get());
            async move {
                let connect = async {
                    let tcp = TcpStream::connect(&addr).await?;
                    tcp.set_nodelay(true)?;
                    // Servers are verified by chain and role, not by name.
                    let name = ServerName::try_from(MANAGER_SERVER_NAME)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                    connector.connect(name, tcp).await
                };
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                    .await
                    .map_err(|_| {
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("connecting to {addr} timed out"),
                        )
                    })??;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
}

/// Binds `addr` and yields TLS streams whose handshake succeeded. Each
/// handshake runs in its own task so a slow client cannot stall accepts.
/// Stops accepting when `shutdown` fires.
pub async fn tls_incoming(
    addr: SocketAddr,
    tls: ServerTls,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, ReceiverStream<std::io::Result<PeerStream>>)> {
    tls_incoming_denying(addr, tls, DenyList::new(), shutdown).await
}

/// [`tls_incoming`], where every connection from a node lasts only while
/// `deny` does not name the node: a removed node's open connections (and
/// every call and stream on them) end the moment it is denied, not only
/// its next handshake.
pub async fn tls_incoming_denying(
    addr: SocketAddr,
    tls: ServerTls,
    deny: DenyList,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, ReceiverStream<std::io::Result<PeerStream>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(tls.get());
            let tx = tx.clone();
            let deny = deny.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(PeerStream::new(stream, &deny))).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    Ok((local, ReceiverStream::new(rx)))
}

/// An accepted TLS connection that fails (and so closes, with every call
/// on it) once its node is denied. Connections without a node certificate
/// (a node joining) are not tied to anything.
pub struct PeerStream {
    inner: TlsStream<TcpStream>,
    revoked: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl PeerStream {
    fn new(inner: TlsStream<TcpStream>, deny: &DenyList) -> PeerStream {
        let node = inner
            .get_ref()
            .1
            .peer_certificates()
            .and_then(crate::tls::peer_identity);
        let revoked = node.map(|id| Box::pin(deny.watch(&id.node_id).cancelled_owned()));
        PeerStream { inner, revoked }
    }

    /// Whether the node was denied; registers the waker otherwise.
    fn check(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        if let Some(revoked) = self.revoked.as_mut()
            && revoked.as_mut().poll(cx).is_ready()
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the node was removed from the cluster",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connected for PeerStream {
    type ConnectInfo = <TlsStream<TcpStream> as Connected>::ConnectInfo;

    /// The TLS stream's: tonic's `Request::peer_certs` keeps working.
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
