//! `LogBroker`: the workers' side. A node listens for subscriptions that
//! concern it and publishes the lines of its tasks; both only on the
//! leader, and only with a node certificate.

use shoal_proto::logs::log_broker_server::LogBroker as LogBrokerRpc;
use shoal_proto::logs::{
    ListenSubscriptionsRequest, PublishLogsMessage, PublishLogsResponse, SubscribeLogsMessage,
    SubscriptionMessage,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::TO_LEADER;
use crate::authz::require_node;
use crate::context::ManagerContext;
use crate::grpc_status::{leadership_changed, not_leader};
use crate::leadership::Term;

/// Announcements queued towards one node before new ones are dropped
/// (a node that reads nothing has a broken stream anyway).
const LISTENER_BUFFER: usize = 256;

/// Serves [`LogBrokerRpc`] on the cluster port.
#[derive(Debug, Clone)]
pub struct LogBrokerService {
    ctx: ManagerContext,
}

impl LogBrokerService {
    /// The broker service of this manager.
    pub fn new(ctx: ManagerContext) -> LogBrokerService {
        LogBrokerService { ctx }
    }
}

#[tonic::async_trait]
impl LogBrokerRpc for LogBrokerService {
    type ListenSubscriptionsStream = ReceiverStream<Result<SubscriptionMessage, Status>>;

    async fn listen_subscriptions(
        &self,
        request: Request<ListenSubscriptionsRequest>,
    ) -> Result<Response<Self::ListenSubscriptionsStream>, Status> {
        let who = require_node(&request)?;
        if let Some(err) = not_leader(&self.ctx, TO_LEADER) {
            return Err(err);
        }
        let (tx, rx) = mpsc::channel(LISTENER_BUFFER);
        let generation = self.ctx.logs.listen(&who.node_id, tx.clone());
        let ctx = self.ctx.clone();
        let node = who.node_id.clone();
        let mut term = Term::current(&ctx);
        tokio::spawn(async move {
            tokio::select! {
                _ = tx.closed() => {}
                _ = term.lost() => {
                    let _ = tx.try_send(Err(leadership_changed("listen on the new leader")));
                }
            }
            ctx.logs.unlisten(&node, generation);
        });
        tracing::debug!(node = %who.node_id, "listening for log subscriptions");
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn publish_logs(
        &self,
        request: Request<Streaming<PublishLogsMessage>>,
    ) -> Result<Response<PublishLogsResponse>, Status> {
        let who = require_node(&request)?;
        if let Some(err) = not_leader(&self.ctx, TO_LEADER) {
            return Err(err);
        }
        let mut stream = request.into_inner();
        while let Some(message) = stream.message().await? {
            let id = message.subscription_id;
            let route = self.ctx.logs.route(&id, &who.node_id)?;
            let mut lines = message.messages;
            for line in &mut lines {
                // A node speaks only for its own tasks of the subscription.
                let context = line.context.get_or_insert_default();
                let service = route.services.get(&context.task_id).ok_or_else(|| {
                    Status::permission_denied(format!(
                        "task {} is not part of log subscription {id} on node {}",
                        context.task_id, who.node_id
                    ))
                })?;
                context.node_id.clone_from(&who.node_id);
                context.service_id.clone_from(service);
            }
            if !lines.is_empty() {
                let sent = route
                    .tx
                    .send(Ok(SubscribeLogsMessage {
                        messages: lines,
                        warnings: Vec::new(),
                    }))
                    .await;
                if sent.is_err() {
                    return Err(Status::cancelled(format!(
                        "log subscription {id} is over: its reader went away"
                    )));
                }
            }
            if message.close {
                self.ctx.logs.close(&id, &who.node_id);
            }
        }
        Ok(Response::new(PublishLogsResponse {}))
    }
}
