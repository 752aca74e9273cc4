//! The `Local` gRPC service: node-local questions answered by this daemon.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use shoal_proto::build_info;
use shoal_proto::local::{
    InfoRequest, InfoResponse, SwarmInitRequest, SwarmInitResponse, SwarmJoinRequest,
    SwarmJoinResponse, SwarmLeaveRequest, SwarmLeaveResponse, SwarmUnlockRequest,
    SwarmUnlockResponse, VersionRequest, VersionResponse, local_server::Local,
};
use shoal_worker::engine::{EngineInfo, EngineKind};
use shoal_worker::host::HostFacts;
use tonic::{Request, Response, Status};

use super::swarm::SwarmNode;

/// Serves version and info about this node, and its swarm membership.
pub struct LocalApi {
    state_dir: PathBuf,
    engine: EngineInfo,
    started_at: SystemTime,
    swarm: Arc<SwarmNode>,
}

impl LocalApi {
    /// A local API for a daemon using `state_dir` and `engine`.
    pub fn new(
        state_dir: PathBuf,
        engine: EngineInfo,
        started_at: SystemTime,
        swarm: Arc<SwarmNode>,
    ) -> LocalApi {
        LocalApi {
            state_dir,
            engine,
            started_at,
            swarm,
        }
    }

    /// Docker reports its own version for the engine; built-ins have none.
    fn engine_version(&self) -> String {
        match self.engine.kind {
            EngineKind::Docker => self.engine.version.clone(),
            _ => String::new(),
        }
    }
}

#[tonic::async_trait]
impl Local for LocalApi {
    async fn version(
        &self,
        _: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        let host = HostFacts::gather();
        Ok(Response::new(VersionResponse {
            daemon: Some(build_info::version_info()),
            engine: self.engine.kind.name().to_string(),
            engine_version: self.engine_version(),
            kernel_version: host.kernel_version,
        }))
    }

    async fn info(&self, _: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let host = HostFacts::gather();
        Ok(Response::new(InfoResponse {
            hostname: host.hostname,
            os: build_info::os().to_string(),
            arch: build_info::arch().to_string(),
            kernel_version: host.kernel_version,
            ncpu: host.ncpu,
            mem_total: host.mem_total,
            engine: self.engine.kind.name().to_string(),
            engine_version: self.engine_version(),
            state_dir: self.state_dir.display().to_string(),
            server_version: build_info::VERSION.to_string(),
            pid: std::process::id(),
            started_at: Some(self.started_at.into()),
            swarm: Some(self.swarm.info().await),
            cgroup_version: host.cgroup_version.to_string(),
            load_balancer: host.load_balancer.to_string(),
        }))
    }

    async fn swarm_init(
        &self,
        request: Request<SwarmInitRequest>,
    ) -> Result<Response<SwarmInitResponse>, Status> {
        self.swarm
            .init(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn swarm_join(
        &self,
        request: Request<SwarmJoinRequest>,
    ) -> Result<Response<SwarmJoinResponse>, Status> {
        self.swarm
            .join(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn swarm_leave(
        &self,
        request: Request<SwarmLeaveRequest>,
    ) -> Result<Response<SwarmLeaveResponse>, Status> {
        self.swarm
            .leave(request.into_inner().force)
            .await
            .map(|()| Response::new(SwarmLeaveResponse {}))
    }

    async fn swarm_unlock(
        &self,
        request: Request<SwarmUnlockRequest>,
    ) -> Result<Response<SwarmUnlockResponse>, Status> {
        self.swarm
            .unlock(&request.into_inner().unlock_key)
            .await
            .map(|()| Response::new(SwarmUnlockResponse {}))
    }
}
