//! Raft messages between managers over gRPC. One sender task per peer
//! owns that peer's connection and queue, so a slow or dead peer never
//! holds up the others; messages queued together go as one batch down a
//! long-lived stream to the peer, as etcd's and TiKV's transports do.
//! Snapshots go as a chunked stream of their own. Failures are reported
//! back to the node, which lets raft-rs pace retries (probe state), never
//! a busy loop here.

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
/// Batches written to a peer's stream and not yet taken by HTTP/2 before
/// the peer counts as not keeping up (new batches are dropped meanwhile).
const PIPE_DEPTH: usize = 256;
/// Bytes of messages sent as one batch (the peer's decode limit is 64 MiB).
const BATCH_BYTES: u64 = 16 << 20;
/// A snapshot transfer that takes longer than this counts as a failure.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);

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
            let snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
            let queued = self
                .peers
                .get(&to)
                .is_some_and(|peer| peer.queue.try_send(message).is_ok());
            if !queued {
                self.handle.report_unreachable(to);
                if snapshot {
                    // raft-rs waits for word on a snapshot it sent.
                    let handle = self.handle.clone();
                    tokio::spawn(async move { handle.report_snapshot(to, false).await });
                }
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
/// Batches go down one long-lived stream ([`Pipe`]): no round trip per
/// batch, so a batch never waits for the answer to the one before.
async fn send_loop(
    to: u64,
    mut client: RaftClient<Channel>,
    mut rx: mpsc::Receiver<Message>,
    handle: RaftHandle,
) {
    let mut pipe: Option<Pipe> = None;
    loop {
        let first = match pipe.as_mut() {
            Some(open) => tokio::select! {
                message = rx.recv() => message,
                ended = &mut open.ended => {
                    // The stream broke (peer gone, connection lost): what
                    // was in it may be lost; raft-rs resends from a probe.
                    if let Ok(Err(status)) = ended {
                        tracing::debug!(to, error = %status.message(), "raft stream to peer ended");
                    }
                    pipe = None;
                    handle.report_unreachable(to);
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(first) = first else { break };
        // Encoded as taken, bounded in count and in bytes: a batch past
        // the message size limit would break the stream and everything
        // queued behind it. Snapshots go on a stream of their own.
        let mut messages: Vec<Vec<u8>> = Vec::new();
        let mut snapshots = Vec::new();
        let (mut taken, mut bytes) = (0, 0);
        let mut next = Some(first);
        while let Some(m) = next.take() {
            taken += 1;
            if m.get_msg_type() == MessageType::MsgSnapshot {
                snapshots.push(m);
            } else if let Ok(encoded) = m.write_to_bytes() {
                bytes += encoded.len() as u64;
                messages.push(encoded);
            }
            if taken < 256 && bytes < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if !messages.is_empty() {
            let open = pipe.get_or_insert_with(|| Pipe::open(&client));
            match open.batches.try_send(RaftMessage { messages }) {
                Ok(()) => {}
                // Full: the peer (or its handler) is not keeping up; a
                // fresh stream replaces a wedged one. Closed: it broke.
                Err(_) => {
                    pipe = None;
                    handle.report_unreachable(to);
                }
            }
        }
        for snapshot in snapshots {
            let ok = send_snapshot(&mut client, &snapshot).await;
            if !ok {
                tracing::warn!(to, "sending a snapshot failed; raft will retry");
            }
            handle.report_snapshot(to, ok).await;
        }
    }
}

/// An open `PipeRaftMessages` stream to a peer.
struct Pipe {
    batches: mpsc::Sender<RaftMessage>,
    /// The call: it ends when the stream breaks (or after `batches` drops).
    ended: tokio::task::JoinHandle<Result<(), tonic::Status>>,
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // A call stuck on a wedged connection does not outlive its pipe.
        self.ended.abort();
    }
}

impl Pipe {
    fn open(client: &RaftClient<Channel>) -> Pipe {
        let (batches, rx) = mpsc::channel(PIPE_DEPTH);
        let mut client = client.clone();
        let ended = tokio::spawn(async move {
            client
                .pipe_raft_messages(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .map(|_| ())
        });
        Pipe { batches, ended }
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
        tokio::time::timeout(SNAPSHOT_TIMEOUT, call).await,
        Ok(Ok(_))
    )
}
