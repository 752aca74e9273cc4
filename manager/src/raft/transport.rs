//! Raft messages between managers over gRPC. One sender task per peer
//! owns that peer's connection and queue, so a slow or dead peer never
//! holds up the others; messages queued together go in one RPC. Snapshots
//! go as a chunked stream. Failures are reported back to the node, which
//! lets raft-rs pace retries (probe state), never a busy loop here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::prelude::{Message, MessageType};
use shoal_proto::raft::{RaftMember, RaftMessage, RaftMessageChunk, raft_client::RaftClient};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::node::{RaftHandle, Transport};

/// Snapshot chunk size on the wire.
const CHUNK: usize = 1 << 20;
/// Messages queued for one peer before new ones are dropped.
const PEER_QUEUE: usize = 4096;
/// An RPC to a peer that takes longer than this counts as a failure.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes (lazy) channels to peers: where mutual TLS is set up.
pub trait Dial: Send + Sync + 'static {
    /// A channel to `addr` (`host:port`). Must not block.
    fn channel(&self, addr: &str) -> Channel;
}

/// The gRPC transport.
pub struct GrpcTransport {
    handle: RaftHandle,
    dial: Arc<dyn Dial>,
    me: u64,
    peers: HashMap<u64, Peer>,
}

struct Peer {
    addr: String,
    queue: mpsc::Sender<Message>,
}

impl GrpcTransport {
    /// A transport for node `me`, reporting failures to `handle`.
    pub fn new(me: u64, handle: RaftHandle, dial: Arc<dyn Dial>) -> GrpcTransport {
        GrpcTransport {
            handle,
            dial,
            me,
            peers: HashMap::new(),
        }
    }

    fn connect(&self, id: u64, addr: &str) -> Peer {
        let (queue, rx) = mpsc::channel(PEER_QUEUE);
        let client = RaftClient::new(self.dial.channel(addr))
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        tokio::spawn(send_loop(id, client, rx, self.handle.clone()));
        Peer {
            addr: addr.to_string(),
            queue,
        }
    }
}

impl Transport for GrpcTransport {
    fn send(&mut self, messages: Vec<Message>) {
        for message in messages {
            let to = message.to;
            match self.peers.get(&to) {
                Some(peer) => {
                    if peer.queue.try_send(message).is_err() {
                        self.handle.report_unreachable(to);
                    }
                }
                None => self.handle.report_unreachable(to),
            }
        }
    }

    fn set_members(&mut self, members: &BTreeMap<u64, RaftMember>) {
        self.peers
            .retain(|id, peer| members.get(id).is_some_and(|m| m.addr == peer.addr));
        for (id, member) in members {
            if *id != self.me && !self.peers.contains_key(id) {
                let peer = self.connect(*id, &member.addr);
                self.peers.insert(*id, peer);
            }
        }
    }
}

/// Sends everything queued for one peer; ends when the peer is dropped.
async fn send_loop(
    to: u64,
    mut client: RaftClient<Channel>,
    mut rx: mpsc::Receiver<Message>,
    handle: RaftHandle,
) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let (snapshots, others): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .partition(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        if !others.is_empty() {
            let messages = others
                .iter()
                .filter_map(|m| m.write_to_bytes().ok())
                .collect();
            let call = client.process_raft_message(RaftMessage { messages });
            match tokio::time::timeout(RPC_TIMEOUT, call).await {
                Ok(Ok(_)) => {}
                Ok(Err(status)) => {
                    tracing::debug!(to, error = %status.message(), "raft peer refused messages");
                    handle.report_unreachable(to);
                }
                Err(_) => handle.report_unreachable(to),
            }
        }
        for snapshot in snapshots {
            let ok = send_snapshot(&mut client, &snapshot).await;
            if !ok {
                tracing::warn!(to, "sending a snapshot failed; raft will retry");
            }
            handle.report_snapshot(to, ok);
        }
    }
}

async fn send_snapshot(client: &mut RaftClient<Channel>, message: &Message) -> bool {
    let Ok(bytes) = message.write_to_bytes() else {
        return false;
    };
    let count = bytes.len().div_ceil(CHUNK).max(1);
    let chunks: Vec<RaftMessageChunk> = (0..count)
        .map(|i| RaftMessageChunk {
            data: bytes[i * CHUNK..((i + 1) * CHUNK).min(bytes.len())].to_vec(),
            last: i + 1 == count,
        })
        .collect();
    let call = client.stream_raft_message(tokio_stream::iter(chunks));
    matches!(
        tokio::time::timeout(RPC_TIMEOUT * 12, call).await,
        Ok(Ok(_))
    )
}
