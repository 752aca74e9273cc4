//! `Logs`: what the CLI calls (through its daemon's socket) and what a
//! follower forwards to the leader over the cluster port, like the
//! control API's `lead!`.

use std::pin::Pin;

use shoal_proto::logs::logs_client::LogsClient;
use shoal_proto::logs::logs_server::Logs;
use shoal_proto::logs::{SubscribeLogsMessage, SubscribeLogsRequest};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::authz::{NOT_A_MANAGER, Revocable, require_manager};
use crate::controlapi::{LOCKED, ManagerSlot};

/// Serves [`Logs`] for whatever manager is in the slot.
#[derive(Debug, Clone)]
pub struct LogsApi {
    slot: ManagerSlot,
}

impl LogsApi {
    /// A logs API answering for the manager in `slot`.
    pub fn new(slot: ManagerSlot) -> LogsApi {
        LogsApi { slot }
    }
}

type LogLines = Pin<Box<dyn Stream<Item = Result<SubscribeLogsMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Logs for LogsApi {
    type SubscribeLogsStream = LogLines;

    async fn subscribe_logs(
        &self,
        request: Request<SubscribeLogsRequest>,
    ) -> Result<Response<LogLines>, Status> {
        if self.slot.is_locked() {
            return Err(Status::failed_precondition(LOCKED));
        }
        let ctx = self
            .slot
            .get()
            .ok_or_else(|| Status::failed_precondition(NOT_A_MANAGER))?;
        let caller = require_manager(&ctx, &request)?;
        let lines: LogLines = match ctx.leader_channel()? {
            // Dropping the CLI's stream drops this one, which ends the
            // subscription on the leader.
            Some(channel) => Box::pin(
                LogsClient::new(channel)
                    .subscribe_logs(request.into_inner())
                    .await?
                    .into_inner(),
            ),
            None => Box::pin(tokio_stream::wrappers::ReceiverStream::new(
                super::subscribe(&ctx, request.into_inner())?,
            )),
        };
        // A remote manager's subscription ends when it is demoted or removed.
        Ok(Response::new(Box::pin(Revocable::new(
            &ctx, &caller, lines,
        ))))
    }
}
