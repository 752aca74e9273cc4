//! The embedded resolver: one per task namespace, at 127.0.0.11:53 (UDP
//! and TCP), answering cluster names from a [`DnsTable`] that the worker
//! swaps through a watch channel whenever the [`NetworkView`] changes, and
//! forwarding everything else to the host's resolvers.
//!
//! [`NetworkView`]: crate::net::NetworkView

mod forward;
mod table;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{RData, Record, RecordType, rdata::A};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::sync::watch;

pub use forward::{FORWARD_TIMEOUT, host_upstreams, parse_resolv_conf};
pub(crate) use table::ready_ips;
pub use table::{DnsTable, Lookup, table};

/// Where the resolver listens inside each task's namespace (Docker's).
pub const RESOLVER_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11)), 53);

/// The resolv.conf tasks see (bind-mounted as a task file). `ndots:0`:
/// `web` is asked as is, never expanded with the host's search domains.
pub const RESOLV_CONF: &str = "nameserver 127.0.0.11\noptions ndots:0\n";

/// Short: tasks come and go, and VIPs make caching pointless anyway.
const TTL: u32 = 5;

/// Idle TCP connections are closed after this.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors starting a resolver.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// Binding 127.0.0.11:53 inside the task's namespace.
    #[error("binding the resolver in {netns}: {source}")]
    Bind {
        /// The namespace.
        netns: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A running resolver; stops when dropped.
#[derive(Debug)]
pub struct DnsServer {
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// Starts a resolver inside the namespace pinned at `netns`, answering
    /// from `table` and forwarding other names to `upstreams` (see
    /// [`host_upstreams`]). The namespace's `lo` must be up.
    pub async fn start(
        netns: &Path,
        table: watch::Receiver<Arc<DnsTable>>,
        upstreams: Vec<SocketAddr>,
    ) -> Result<Self, DnsError> {
        let bind_err = |source| DnsError::Bind {
            netns: netns.display().to_string(),
            source,
        };
        let ns = netns.to_path_buf();
        let (udp, tcp) = tokio::task::spawn_blocking(move || {
            crate::net::nsenter::in_netns(&ns, || {
                let udp = std::net::UdpSocket::bind(RESOLVER_ADDR)?;
                udp.set_nonblocking(true)?;
                let tcp = std::net::TcpListener::bind(RESOLVER_ADDR)?;
                tcp.set_nonblocking(true)?;
                Ok((udp, tcp))
            })
        })
        .await
        .map_err(|e| bind_err(std::io::Error::other(e)))?
        .map_err(bind_err)?;

        let mut server = Server::new(Resolver {
            table,
            upstreams: upstreams.into(),
            turn: AtomicUsize::new(0),
        });
        server.register_socket(tokio::net::UdpSocket::from_std(udp).map_err(bind_err)?);
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(bind_err)?;
        server.register_listener(tcp, TCP_TIMEOUT, 16);
        let task = tokio::spawn(async move {
            if let Err(e) = server.block_until_done().await {
                tracing::warn!(error = %e, "dns: resolver stopped");
            }
        });
        Ok(Self { task })
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // Dropping the server aborts its listeners.
        self.task.abort();
    }
}

/// The request handler: one per task.
struct Resolver {
    table: watch::Receiver<Arc<DnsTable>>,
    upstreams: Arc<[SocketAddr]>,
    /// Rotates multi-address answers, as round-robin DNS should.
    turn: AtomicUsize,
}

#[async_trait::async_trait]
impl RequestHandler for Resolver {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = true;
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let query = match request.request_info() {
            Ok(info) if request.metadata.message_type == MessageType::Query => info.query,
            _ => {
                let msg = builder.error_msg(&request.metadata, ResponseCode::FormErr);
                return sent(response.send_response(msg).await, meta);
            }
        };
        if request.metadata.op_code != OpCode::Query {
            let msg = builder.error_msg(&request.metadata, ResponseCode::NotImp);
            return sent(response.send_response(msg).await, meta);
        }

        let name = query.name().to_string();
        // Clone the Arc and release the watch lock before any await.
        let table = self.table.borrow().clone();
        let records: Vec<Record> = match table.lookup(&name) {
            Lookup::Local(addrs) => {
                meta.authoritative = true;
                let want_a = matches!(query.query_type(), RecordType::A | RecordType::ANY);
                let n = addrs.len().max(1);
                let start = self.turn.fetch_add(1, Ordering::Relaxed) % n;
                let owner = query.original().name().clone();
                addrs
                    .iter()
                    .cycle()
                    .skip(start)
                    .take(addrs.len())
                    .filter(|_| want_a)
                    .map(|ip| Record::from_rdata(owner.clone(), TTL, RData::A(A(*ip))))
                    .collect()
            }
            Lookup::NxDomain => {
                meta.authoritative = true;
                meta.response_code = ResponseCode::NXDomain;
                vec![]
            }
            Lookup::Forward => {
                let tcp = request.protocol() == Protocol::Tcp;
                match forward::forward(request.as_slice(), tcp, &self.upstreams).await {
                    Some(up) => {
                        meta.response_code = up.metadata.response_code;
                        meta.truncation = up.metadata.truncation;
                        let msg = builder.build(
                            meta,
                            up.answers.iter(),
                            up.authorities.iter(),
                            std::iter::empty(),
                            up.additionals.iter(),
                        );
                        return sent(response.send_response(msg).await, meta);
                    }
                    None => {
                        meta.response_code = ResponseCode::ServFail;
                        vec![]
                    }
                }
            }
        };
        let msg = builder.build(
            meta,
            records.iter(),
            std::iter::empty(),
            std::iter::empty(),
            std::iter::empty(),
        );
        sent(response.send_response(msg).await, meta)
    }
}

/// The info hickory wants back; on a send failure, a SERVFAIL header.
fn sent<E: std::fmt::Display>(r: Result<ResponseInfo, E>, mut meta: Metadata) -> ResponseInfo {
    r.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "dns: sending a response failed");
        meta.response_code = ResponseCode::ServFail;
        ResponseInfo::from(Header {
            metadata: meta,
            counts: HeaderCounts::default(),
        })
    })
}
