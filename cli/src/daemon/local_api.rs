//! The `Local` gRPC service: node-local questions answered by this daemon.
//! Swarm membership is the node's (`shoal_node::SwarmNode`), its errors
//! mapped to statuses in `status`; images and volumes are served by
//! [`Stores`] (`images`, `volumes`).

mod images;
mod status;
mod stores;
mod volumes;

pub use stores::Stores;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use shoal_node::SwarmNode;
use shoal_proto::build_info;
use shoal_proto::local::{
    ImageInspectRequest, ImageInspectResponse, ImageListRequest, ImageListResponse, ImageLoadChunk,
    ImageLoadResponse, ImagePruneRequest, ImagePruneResponse, ImagePullRequest, ImageRemoveRequest,
    ImageRemoveResponse, ImageResolveRequest, ImageResolveResponse, InfoRequest, InfoResponse,
    SwarmBackupChunk, SwarmBackupRequest, SwarmInitRequest, SwarmInitResponse, SwarmJoinRequest,
    SwarmJoinResponse, SwarmLeaveRequest, SwarmLeaveResponse, SwarmRestoreChunk,
    SwarmUnlockRequest, SwarmUnlockResponse, VersionRequest, VersionResponse, VolumeCreateRequest,
    VolumeCreateResponse, VolumeInspectRequest, VolumeInspectResponse, VolumeListRequest,
    VolumeListResponse, VolumePruneRequest, VolumePruneResponse, VolumeRemoveRequest,
    VolumeRemoveResponse, local_server::Local,
};
use shoal_worker::engine_choice::{EngineInfo, EngineKind};
use shoal_worker::host::HostFacts;
use shoal_worker::image::RegistryAuth;
use tonic::{Request, Response, Status, Streaming};

use status::status;

/// The largest backup a restore reads (a backup holds no tasks: this is
/// room for thousands of services, secrets and configs).
const MAX_BACKUP_BYTES: usize = 1 << 30;

/// Serves version and info about this node, and its swarm membership.
pub struct LocalApi {
    state_dir: PathBuf,
    engine: EngineInfo,
    started_at: SystemTime,
    swarm: Arc<SwarmNode>,
    stores: Stores,
}

impl LocalApi {
    /// A local API for a daemon using `state_dir` and `engine`.
    pub fn new(
        state_dir: PathBuf,
        engine: EngineInfo,
        started_at: SystemTime,
        swarm: Arc<SwarmNode>,
        stores: Stores,
    ) -> LocalApi {
        LocalApi {
            state_dir,
            engine,
            started_at,
            swarm,
            stores,
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
    type ImagePullStream = images::PullStream;
    type SwarmBackupStream =
        futures_util::stream::Iter<std::vec::IntoIter<Result<SwarmBackupChunk, Status>>>;

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

    async fn info(&self, r: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let brief = r.get_ref().brief;
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
            swarm: Some(self.swarm.info(brief)),
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
            .map_err(status)
    }

    async fn swarm_backup(
        &self,
        request: Request<SwarmBackupRequest>,
    ) -> Result<Response<Self::SwarmBackupStream>, Status> {
        let (summary, file) = self
            .swarm
            .backup(request.into_inner().passphrase)
            .await
            .map_err(status)?;
        let mut chunks: Vec<_> = file
            .chunks(shoal_proto::listing::CHUNK_BYTES)
            .map(|data| {
                Ok(SwarmBackupChunk {
                    summary: None,
                    data: data.to_vec(),
                })
            })
            .collect();
        if let Some(Ok(first)) = chunks.first_mut() {
            first.summary = Some(summary);
        }
        Ok(Response::new(futures_util::stream::iter(chunks)))
    }

    async fn swarm_restore(
        &self,
        request: Request<Streaming<SwarmRestoreChunk>>,
    ) -> Result<Response<SwarmInitResponse>, Status> {
        let mut chunks = request.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("an empty restore request"))?;
        let init = first
            .init
            .ok_or_else(|| Status::invalid_argument("a restore starts with the init flags"))?;
        let mut file = first.data;
        while let Some(chunk) = chunks.message().await? {
            file.extend_from_slice(&chunk.data);
            if file.len() > MAX_BACKUP_BYTES {
                return Err(Status::invalid_argument(format!(
                    "the backup is larger than {} MiB: not a Shoal backup",
                    MAX_BACKUP_BYTES >> 20
                )));
            }
        }
        self.swarm
            .restore(init, file, first.passphrase)
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn swarm_join(
        &self,
        request: Request<SwarmJoinRequest>,
    ) -> Result<Response<SwarmJoinResponse>, Status> {
        self.swarm
            .join(request.into_inner())
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn swarm_leave(
        &self,
        request: Request<SwarmLeaveRequest>,
    ) -> Result<Response<SwarmLeaveResponse>, Status> {
        self.swarm
            .leave(request.into_inner().force)
            .await
            .map(|()| Response::new(SwarmLeaveResponse {}))
            .map_err(status)
    }

    async fn swarm_unlock(
        &self,
        request: Request<SwarmUnlockRequest>,
    ) -> Result<Response<SwarmUnlockResponse>, Status> {
        self.swarm
            .unlock(&request.into_inner().unlock_key)
            .await
            .map(|()| Response::new(SwarmUnlockResponse {}))
            .map_err(status)
    }

    async fn image_pull(
        &self,
        request: Request<ImagePullRequest>,
    ) -> Result<Response<Self::ImagePullStream>, Status> {
        let r = request.into_inner();
        let auth = RegistryAuth {
            username: r.username,
            password: r.password,
        };
        self.stores
            .image_pull(&r.reference, auth)
            .map(Response::new)
    }

    async fn image_resolve(
        &self,
        request: Request<ImageResolveRequest>,
    ) -> Result<Response<ImageResolveResponse>, Status> {
        let r = request.into_inner();
        let auth = RegistryAuth {
            username: r.username,
            password: r.password,
        };
        let pinned = self.stores.image_resolve(&r.reference, auth).await?;
        Ok(Response::new(ImageResolveResponse { pinned }))
    }

    async fn image_list(
        &self,
        _: Request<ImageListRequest>,
    ) -> Result<Response<ImageListResponse>, Status> {
        let images = self.stores.image_list()?;
        Ok(Response::new(ImageListResponse { images }))
    }

    async fn image_inspect(
        &self,
        request: Request<ImageInspectRequest>,
    ) -> Result<Response<ImageInspectResponse>, Status> {
        let image = self.stores.image_inspect(&request.into_inner().reference)?;
        Ok(Response::new(ImageInspectResponse { image: Some(image) }))
    }

    async fn image_remove(
        &self,
        request: Request<ImageRemoveRequest>,
    ) -> Result<Response<ImageRemoveResponse>, Status> {
        let request = request.into_inner();
        self.stores
            .image_remove(&request.reference, request.force)
            .map(Response::new)
    }

    async fn image_prune(
        &self,
        request: Request<ImagePruneRequest>,
    ) -> Result<Response<ImagePruneResponse>, Status> {
        self.stores
            .image_prune(request.into_inner().all)
            .await
            .map(Response::new)
    }

    async fn image_load(
        &self,
        request: Request<Streaming<ImageLoadChunk>>,
    ) -> Result<Response<ImageLoadResponse>, Status> {
        let images = self.stores.image_load(request.into_inner()).await?;
        Ok(Response::new(ImageLoadResponse { images }))
    }

    async fn volume_create(
        &self,
        request: Request<VolumeCreateRequest>,
    ) -> Result<Response<VolumeCreateResponse>, Status> {
        let r = request.into_inner();
        let volume = self
            .stores
            .volume_create(r.name, r.driver, r.labels, r.options)
            .await?;
        Ok(Response::new(VolumeCreateResponse {
            volume: Some(volume),
        }))
    }

    async fn volume_list(
        &self,
        _: Request<VolumeListRequest>,
    ) -> Result<Response<VolumeListResponse>, Status> {
        let volumes = self.stores.volume_list().await?;
        Ok(Response::new(VolumeListResponse { volumes }))
    }

    async fn volume_inspect(
        &self,
        request: Request<VolumeInspectRequest>,
    ) -> Result<Response<VolumeInspectResponse>, Status> {
        let volume = self
            .stores
            .volume_inspect(request.into_inner().name)
            .await?;
        Ok(Response::new(VolumeInspectResponse {
            volume: Some(volume),
        }))
    }

    async fn volume_remove(
        &self,
        request: Request<VolumeRemoveRequest>,
    ) -> Result<Response<VolumeRemoveResponse>, Status> {
        let r = request.into_inner();
        self.stores.volume_remove(r.name, r.force).await?;
        Ok(Response::new(VolumeRemoveResponse {}))
    }

    async fn volume_prune(
        &self,
        request: Request<VolumePruneRequest>,
    ) -> Result<Response<VolumePruneResponse>, Status> {
        self.stores
            .volume_prune(request.into_inner().all)
            .await
            .map(Response::new)
    }
}
