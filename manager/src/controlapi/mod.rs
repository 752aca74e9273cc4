//! The control API: what the CLI calls, through the daemon's Unix socket,
//! and what managers forward to the leader over the cluster port.
//!
//! One [`ControlApi`] serves both doors. It holds a [`ManagerSlot`] that is
//! empty until the node becomes a manager, so a worker or a node outside a
//! swarm answers every call with Docker's "not a swarm manager" message.
//! A follower forwards each call to the leader, which serves reads after a
//! ReadIndex barrier (linearizable) and writes through Raft. This is the
//! only place store and Raft errors become gRPC statuses.
//! `Watch` is the exception: every manager serves it from its own event
//! log ([`crate::events`]).

mod batch;
mod cluster;
mod counts;
mod filters;
mod nodes;
mod resources;
mod services;

use std::sync::{Arc, RwLock};

use shoal_proto::control::control_client::ControlClient;
use shoal_proto::control::control_server::{Control, ControlServer};
use shoal_proto::control::*;
use shoal_proto::listing::{CHUNK_BYTES, Chunked};
use tonic::{Request, Response, Status};

use crate::authz::{NOT_A_MANAGER, Revocable, caller, require_manager};
use crate::context::ManagerContext;

/// Where the running manager's context appears once the node is one.
#[derive(Debug, Clone, Default)]
pub struct ManagerSlot(
    Arc<RwLock<Option<ManagerContext>>>,
    Arc<std::sync::atomic::AtomicBool>,
);

/// Docker's words for a manager waiting for `swarm unlock`.
pub const LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"shoal swarm unlock\" to unlock it.";

impl ManagerSlot {
    /// Marks this node's manager as locked (autolock) or not.
    pub fn set_locked(&self, locked: bool) {
        self.1.store(locked, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether this node's manager waits for `swarm unlock`.
    pub fn is_locked(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Puts a manager in the slot (or takes it out with `None`).
    pub fn set(&self, ctx: Option<ManagerContext>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = ctx;
    }

    /// The manager, if this node is one.
    pub fn get(&self) -> Option<ManagerContext> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Serves [`Control`].
#[derive(Debug, Clone)]
pub struct ControlApi {
    slot: ManagerSlot,
}

/// The largest request the control API reads. Requests carry objects the
/// API bounds (secrets 500 KiB, configs 1000 KiB), so only a batch of many
/// of them (a stack deploy) comes near it; the size of the cluster never
/// does, because lists are streamed in chunks.
pub const MAX_REQUEST_BYTES: usize = 64 << 20;

impl ControlApi {
    /// The gRPC server for this API, reading requests up to
    /// [`MAX_REQUEST_BYTES`] (tonic's default is 4 MB).
    pub fn server(self) -> ControlServer<ControlApi> {
        ControlServer::new(self).max_decoding_message_size(MAX_REQUEST_BYTES)
    }

    /// A control API answering for whatever manager is in `slot`.
    pub fn new(slot: ManagerSlot) -> ControlApi {
        ControlApi { slot }
    }

    /// The manager context, after checking the caller may use the API.
    fn ctx<T>(&self, request: &Request<T>) -> Result<ManagerContext, Status> {
        if self.slot.is_locked() {
            return Err(Status::failed_precondition(LOCKED));
        }
        let ctx = self
            .slot
            .get()
            .ok_or_else(|| Status::failed_precondition(NOT_A_MANAGER))?;
        require_manager(&ctx, request)?;
        Ok(ctx)
    }
}

/// A list, streamed in chunks ([`shoal_proto::listing`]).
type ListStream<T> = std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<T, Status>> + Send>>;

/// Lists the way `lead!` serves other calls: here in chunks when this
/// manager leads, else the leader's chunks passed through as they come.
macro_rules! lead_list {
    ($self:ident, $request:ident, $method:ident, $local:ident) => {{
        let ctx = $self.ctx(&$request)?;
        match ctx.leader_channel()? {
            Some(channel) => {
                let chunks = ControlClient::new(channel)
                    .$method($request.into_inner())
                    .await?
                    .into_inner();
                Ok(Response::new(Box::pin(chunks) as ListStream<_>))
            }
            None => {
                let all = $local(&ctx, $request.into_inner()).await?;
                let chunks = Chunked::split(all, CHUNK_BYTES).into_iter().map(Ok);
                Ok(Response::new(
                    Box::pin(tokio_stream::iter(chunks)) as ListStream<_>
                ))
            }
        }
    }};
}

/// Serves a call here when this manager leads, else forwards it.
macro_rules! lead {
    ($self:ident, $request:ident, $method:ident, $local:ident) => {{
        let ctx = $self.ctx(&$request)?;
        match ctx.leader_channel()? {
            Some(channel) => {
                ControlClient::new(channel)
                    .$method($request.into_inner())
                    .await
            }
            None => $local(&ctx, $request.into_inner()).await.map(Response::new),
        }
    }};
}

/// The API's views of objects, without what callers never see (secret
/// data, registry credentials, the CA key), for the event log.
pub(crate) mod redact {
    pub(crate) use super::cluster::redact as cluster;
    pub(crate) use super::resources::without_data as secret;
    pub(crate) use super::services::{
        task_without_credentials as task, without_credentials as service,
    };
}

/// How many events may wait towards one watcher's connection.
const WATCH_QUEUE: usize = 64;

#[tonic::async_trait]
impl Control for ControlApi {
    async fn get_cluster(
        &self,
        r: Request<GetClusterRequest>,
    ) -> Result<Response<GetClusterResponse>, Status> {
        lead!(self, r, get_cluster, cluster_get)
    }
    async fn get_unlock_key(
        &self,
        r: Request<GetUnlockKeyRequest>,
    ) -> Result<Response<GetUnlockKeyResponse>, Status> {
        lead!(self, r, get_unlock_key, cluster_unlock_key)
    }
    async fn update_cluster(
        &self,
        r: Request<UpdateClusterRequest>,
    ) -> Result<Response<UpdateClusterResponse>, Status> {
        lead!(self, r, update_cluster, cluster_update)
    }
    async fn get_node(
        &self,
        r: Request<GetNodeRequest>,
    ) -> Result<Response<GetNodeResponse>, Status> {
        lead!(self, r, get_node, node_get)
    }
    type ListNodesStream = ListStream<ListNodesResponse>;
    async fn list_nodes(
        &self,
        r: Request<ListNodesRequest>,
    ) -> Result<Response<Self::ListNodesStream>, Status> {
        lead_list!(self, r, list_nodes, node_list)
    }
    async fn update_node(
        &self,
        r: Request<UpdateNodeRequest>,
    ) -> Result<Response<UpdateNodeResponse>, Status> {
        lead!(self, r, update_node, node_update)
    }
    async fn remove_node(
        &self,
        r: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        lead!(self, r, remove_node, node_remove)
    }
    async fn create_service(
        &self,
        r: Request<CreateServiceRequest>,
    ) -> Result<Response<CreateServiceResponse>, Status> {
        lead!(self, r, create_service, service_create)
    }
    async fn get_service(
        &self,
        r: Request<GetServiceRequest>,
    ) -> Result<Response<GetServiceResponse>, Status> {
        lead!(self, r, get_service, service_get)
    }
    type ListServicesStream = ListStream<ListServicesResponse>;
    async fn list_services(
        &self,
        r: Request<ListServicesRequest>,
    ) -> Result<Response<Self::ListServicesStream>, Status> {
        lead_list!(self, r, list_services, service_list)
    }
    async fn update_service(
        &self,
        r: Request<UpdateServiceRequest>,
    ) -> Result<Response<UpdateServiceResponse>, Status> {
        lead!(self, r, update_service, service_update)
    }
    async fn remove_service(
        &self,
        r: Request<RemoveServiceRequest>,
    ) -> Result<Response<RemoveServiceResponse>, Status> {
        lead!(self, r, remove_service, service_remove)
    }
    async fn get_task(
        &self,
        r: Request<GetTaskRequest>,
    ) -> Result<Response<GetTaskResponse>, Status> {
        lead!(self, r, get_task, task_get)
    }
    type ListTasksStream = ListStream<ListTasksResponse>;
    async fn list_tasks(
        &self,
        r: Request<ListTasksRequest>,
    ) -> Result<Response<Self::ListTasksStream>, Status> {
        lead_list!(self, r, list_tasks, task_list)
    }
    async fn create_network(
        &self,
        r: Request<CreateNetworkRequest>,
    ) -> Result<Response<CreateNetworkResponse>, Status> {
        lead!(self, r, create_network, network_create)
    }
    async fn get_network(
        &self,
        r: Request<GetNetworkRequest>,
    ) -> Result<Response<GetNetworkResponse>, Status> {
        lead!(self, r, get_network, network_get)
    }
    type ListNetworksStream = ListStream<ListNetworksResponse>;
    async fn list_networks(
        &self,
        r: Request<ListNetworksRequest>,
    ) -> Result<Response<Self::ListNetworksStream>, Status> {
        lead_list!(self, r, list_networks, network_list)
    }
    async fn remove_network(
        &self,
        r: Request<RemoveNetworkRequest>,
    ) -> Result<Response<RemoveNetworkResponse>, Status> {
        lead!(self, r, remove_network, network_remove)
    }
    async fn create_secret(
        &self,
        r: Request<CreateSecretRequest>,
    ) -> Result<Response<CreateSecretResponse>, Status> {
        lead!(self, r, create_secret, secret_create)
    }
    async fn get_secret(
        &self,
        r: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        lead!(self, r, get_secret, secret_get)
    }
    type ListSecretsStream = ListStream<ListSecretsResponse>;
    async fn list_secrets(
        &self,
        r: Request<ListSecretsRequest>,
    ) -> Result<Response<Self::ListSecretsStream>, Status> {
        lead_list!(self, r, list_secrets, secret_list)
    }
    async fn remove_secret(
        &self,
        r: Request<RemoveSecretRequest>,
    ) -> Result<Response<RemoveSecretResponse>, Status> {
        lead!(self, r, remove_secret, secret_remove)
    }
    async fn create_config(
        &self,
        r: Request<CreateConfigRequest>,
    ) -> Result<Response<CreateConfigResponse>, Status> {
        lead!(self, r, create_config, config_create)
    }
    async fn get_config(
        &self,
        r: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        lead!(self, r, get_config, config_get)
    }
    type ListConfigsStream = ListStream<ListConfigsResponse>;
    async fn list_configs(
        &self,
        r: Request<ListConfigsRequest>,
    ) -> Result<Response<Self::ListConfigsStream>, Status> {
        lead_list!(self, r, list_configs, config_list)
    }
    async fn remove_config(
        &self,
        r: Request<RemoveConfigRequest>,
    ) -> Result<Response<RemoveConfigResponse>, Status> {
        lead!(self, r, remove_config, config_remove)
    }
    async fn batch(&self, r: Request<BatchRequest>) -> Result<Response<BatchResponse>, Status> {
        lead!(self, r, batch, batch_create)
    }

    type WatchStream =
        Revocable<tokio_stream::wrappers::ReceiverStream<Result<WatchEvent, Status>>>;

    /// Served by any manager from its own event log: every manager
    /// applies every commit, so no call is forwarded to the leader.
    async fn watch(&self, r: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let ctx = self.ctx(&r)?;
        let window = crate::events::Window::from_request(r.get_ref())?;
        // Subscribed before the reply: whatever commits after it is seen.
        let subscription = ctx.events.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_QUEUE);
        tokio::spawn(crate::events::serve(subscription, window, tx));
        // A remote manager's watch ends when it is demoted or removed.
        let rx = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Revocable::new(&ctx, &caller(&r), rx)))
    }
}

use batch::batch as batch_create;
use cluster::{cluster_get, cluster_unlock_key, cluster_update};
use nodes::{node_get, node_list, node_remove, node_update};
use resources::{
    config_create, config_get, config_list, config_remove, network_create, network_get,
    network_list, network_remove, secret_create, secret_get, secret_list, secret_remove,
};
use services::{
    service_create, service_get, service_list, service_remove, service_update, task_get, task_list,
};
