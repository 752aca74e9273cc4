//! The Raft gRPC service: messages from peers into the local node. Only
//! managers may call it (checked by the caller-supplied authorizer, which
//! reads the role from the peer's certificate); raft-rs's protobuf decoder
//! therefore only ever sees bytes from authenticated managers.

use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::Message;
use shoal_proto::raft::raft_server::Raft;
use shoal_proto::raft::{
    RaftMessage, RaftMessageAck, RaftMessageChunk, ResolveAddressRequest, ResolveAddressResponse,
};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::node::RaftHandle;

/// Largest snapshot accepted from a peer.
pub(super) const MAX_SNAPSHOT: usize = 1 << 30;

/// Decides whether a request may reach Raft (manager certificates only).
/// It gets the peer's certificate chain (DER), `None` off TLS.
pub type Authorize = Arc<dyn Fn(Option<&[Vec<u8>]>) -> Result<(), Status> + Send + Sync>;

/// Serves [`Raft`] for the local node.
#[derive(Clone)]
pub struct RaftService {
    handle: RaftHandle,
    authorize: Authorize,
    /// Ends the peers' long-lived streams, which a graceful server
    /// shutdown would otherwise wait for forever.
    stopping: CancellationToken,
}

impl RaftService {
    /// A service feeding `handle`, admitting what `authorize` allows,
    /// until `stopping` fires.
    pub fn new(
        handle: RaftHandle,
        authorize: Authorize,
        stopping: CancellationToken,
    ) -> RaftService {
        RaftService {
            handle,
            authorize,
            stopping,
        }
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let certs: Option<Vec<Vec<u8>>> = request
            .peer_certs()
            .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect());
        (self.authorize)(certs.as_deref())
    }
}

fn decode(bytes: &[u8]) -> Result<Message, Status> {
    Message::parse_from_bytes(bytes)
        .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn pipe_raft_messages(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<RaftMessageAck>, Status> {
        self.check(&request)?;
        let mut stream = request.into_inner();
        loop {
            let batch = tokio::select! {
                _ = self.stopping.cancelled() => {
                    return Err(Status::unavailable("this manager is stopping"));
                }
                batch = stream.message() => batch?,
            };
            let Some(batch) = batch else { break };
            for bytes in batch.messages {
                let message = decode(&bytes)?;
                self.handle
                    .step(message)
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
            }
        }
        Ok(Response::new(RaftMessageAck {}))
    }

    async fn stream_raft_message(
        &self,
        request: Request<Streaming<RaftMessageChunk>>,
    ) -> Result<Response<RaftMessageAck>, Status> {
        self.check(&request)?;
        let mut stream = request.into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if bytes.len() + chunk.data.len() > MAX_SNAPSHOT {
                return Err(Status::resource_exhausted("snapshot larger than 1 GiB"));
            }
            bytes.extend_from_slice(&chunk.data);
            if chunk.last {
                let message = decode(&bytes)?;
                self.handle
                    .step(message)
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                return Ok(Response::new(RaftMessageAck {}));
            }
        }
        Err(Status::invalid_argument(
            "snapshot stream ended before its last chunk",
        ))
    }

    async fn resolve_address(
        &self,
        request: Request<ResolveAddressRequest>,
    ) -> Result<Response<ResolveAddressResponse>, Status> {
        self.check(&request)?;
        let id = request.into_inner().raft_id;
        let member = self.handle.status().members.get(&id).cloned();
        member
            .map(|m| Response::new(ResolveAddressResponse { addr: m.addr }))
            .ok_or_else(|| Status::not_found(format!("raft member {id:x} is not in the cluster")))
    }
}
