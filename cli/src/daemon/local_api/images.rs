//! `image pull|ls|inspect|rm|prune|load` on this node: the embedded
//! engine's image store, with the engine's task dirs saying which images
//! tasks use (those are never removed).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use shoal_proto::local::{
    Image as ImageMsg, ImageConfig as ConfigMsg, ImageHealthcheck, ImagePruneResponse,
    ImagePullDone, ImagePullEvent, ImagePullLayer, ImagePullResolved, ImageRemoveResponse,
    image_pull_event::Event,
};
use shoal_worker::engine_choice::EngineKind;
use shoal_worker::image::{Image, ImageError, ImageStore, PullProgress, RegistryAuth};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::stores::{Stores, in_use};

/// The stream `ImagePull` answers with.
pub type PullStream = ReceiverStream<Result<ImagePullEvent, Status>>;

impl Stores {
    /// The image store, or why this node has none.
    fn images(&self, command: &str) -> Result<&Arc<ImageStore>, Status> {
        self.images
            .as_ref()
            .ok_or_else(|| self.not_embedded("image", command))
    }

    /// Starts a pull; its progress and result arrive on the stream. The
    /// pull runs to its end even if the client goes away, as Docker's.
    pub fn image_pull(&self, reference: &str, auth: RegistryAuth) -> Result<PullStream, Status> {
        let store = self.images("pull")?.clone();
        let normal = ImageStore::normalize(reference).map_err(status)?;
        let (tx, rx) = mpsc::channel(64);
        let node = self.clone();
        tokio::spawn(async move {
            let before = store.get(&normal).map(|i| i.id);
            let events = tx.clone();
            let progress = move |p: PullProgress| {
                if let Some(event) = progress_event(p) {
                    // A slow or gone client loses progress, never the pull.
                    let _ = events.try_send(Ok(ImagePullEvent { event: Some(event) }));
                }
            };
            let result = store.pull(&normal, &auth, &progress).await;
            let last = match result {
                Ok(image) => {
                    let users = in_use(&node.tasks_dir);
                    let digest = image
                        .repo_digest
                        .as_deref()
                        .and_then(|d| d.rsplit_once('@'))
                        .map(|(_, d)| d.to_string())
                        .unwrap_or_default();
                    Ok(ImagePullEvent {
                        event: Some(Event::Done(ImagePullDone {
                            reference: normal,
                            digest,
                            up_to_date: before.as_deref() == Some(image.id.as_str()),
                            image: Some(node.image_msg(&image, &users.images)),
                        })),
                    })
                }
                Err(e) => Err(status(e)),
            };
            let _ = tx.send(last).await;
        });
        Ok(ReceiverStream::new(rx))
    }

    /// `reference` pinned to the digest its registry gives now; empty when
    /// this node has no image store (the CLI then deploys the tag as is).
    pub async fn image_resolve(
        &self,
        reference: &str,
        auth: RegistryAuth,
    ) -> Result<String, Status> {
        let Some(store) = self.images.as_ref() else {
            return Ok(String::new());
        };
        let digest = store
            .resolve_digest(reference, &auth)
            .await
            .map_err(status)?;
        // The name as the user wrote it, tag kept, digest added (Docker's).
        let name = reference.split('@').next().unwrap_or(reference);
        Ok(format!("{name}@{digest}"))
    }

    /// Every image.
    pub fn image_list(&self) -> Result<Vec<ImageMsg>, Status> {
        let store = self.images("ls")?;
        let users = in_use(&self.tasks_dir);
        Ok(store
            .list()
            .iter()
            .map(|i| self.image_msg(i, &users.images))
            .collect())
    }

    /// One image, by name, digest, id or id prefix.
    pub fn image_inspect(&self, reference: &str) -> Result<ImageMsg, Status> {
        let store = self.images("inspect")?;
        let image = store
            .get(reference)
            .ok_or_else(|| Status::not_found(format!("No such image: {reference}")))?;
        Ok(self.image_msg(&image, &in_use(&self.tasks_dir).images))
    }

    /// `image rm`: a name of an image with others is only untagged; the
    /// last name (or the id) deletes the image, unless a task uses it.
    pub fn image_remove(
        &self,
        reference: &str,
        force: bool,
    ) -> Result<ImageRemoveResponse, Status> {
        let store = self.images("rm")?;
        let image = store
            .get(reference)
            .ok_or_else(|| Status::not_found(format!("No such image: {reference}")))?;
        let name = ImageStore::normalize(reference)
            .ok()
            .filter(|n| image.references.contains(n) || image.repo_digest.as_ref() == Some(n));
        let short = short_id(&image.id);
        if name.is_none() && image.references.len() > 1 && !force {
            return Err(Status::failed_precondition(format!(
                "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
            )));
        }
        let users = in_use(&self.tasks_dir).images;
        let untag_only = name.is_some() && image.references.len() > 1;
        if !untag_only && let Some(task) = users.get(&image.id).and_then(|t| t.first()) {
            return Err(Status::failed_precondition(match (&name, force) {
                (Some(_), false) => format!(
                    "conflict: unable to remove repository reference \"{reference}\" (must force) - container {task} is using its referenced image {short}"
                ),
                _ => format!(
                    "conflict: unable to delete {short} (cannot be forced) - image is being used by container {task}"
                ),
            }));
        }
        let removed = store
            .remove(reference, &|i| users.contains_key(&i.id))
            .map_err(status)?;
        if untag_only {
            return Ok(ImageRemoveResponse {
                untagged: name.into_iter().collect(),
                deleted: Vec::new(),
            });
        }
        Ok(removed_response(&removed))
    }

    /// `image prune`: dangling images, or with `all` every image no task
    /// uses; the space is what the layers no image keeps took.
    pub async fn image_prune(&self, all: bool) -> Result<ImagePruneResponse, Status> {
        let store = self.images("prune")?.clone();
        let users = in_use(&self.tasks_dir).images;
        let doomed =
            move |i: &Image| !users.contains_key(&i.id) && (all || i.references.is_empty());
        // Measured before: once pruned, the layers are gone.
        let images = store.list();
        let kept: HashSet<&PathBuf> = images
            .iter()
            .filter(|i| !doomed(i))
            .flat_map(|i| &i.layers)
            .collect();
        let freed: HashSet<PathBuf> = images
            .iter()
            .filter(|i| doomed(i))
            .flat_map(|i| &i.layers)
            .filter(|l| !kept.contains(l))
            .cloned()
            .collect();
        let reclaimed = tokio::task::spawn_blocking(move || freed.iter().map(|l| du(l)).sum())
            .await
            .unwrap_or(0);
        // The store's predicate says what to keep.
        let pruned = tokio::task::spawn_blocking(move || store.prune(&|i| !doomed(i)))
            .await
            .map_err(|e| Status::internal(format!("prune failed: {e}")))?
            .map_err(status)?;
        Ok(ImagePruneResponse {
            images: pruned.iter().map(removed_response).collect(),
            reclaimed,
        })
    }

    /// `image load`: the tarball's bytes land in a file in the state dir,
    /// which the store then loads.
    pub async fn image_load(
        &self,
        mut chunks: Streaming<shoal_proto::local::ImageLoadChunk>,
    ) -> Result<Vec<ImageMsg>, Status> {
        let store = self.images("load")?;
        let tarball = Spool::new(&self.state_dir.join("image-load"))?;
        let mut file = tokio::fs::File::create(&tarball.0)
            .await
            .map_err(|e| Status::internal(format!("{}: {e}", tarball.0.display())))?;
        while let Some(chunk) = chunks.message().await? {
            file.write_all(&chunk.data)
                .await
                .map_err(|e| Status::internal(format!("{}: {e}", tarball.0.display())))?;
        }
        file.flush()
            .await
            .map_err(|e| Status::internal(format!("{}: {e}", tarball.0.display())))?;
        drop(file);
        let images = store.load(&tarball.0).await.map_err(|e| {
            // Errors name the spooled file: name what the user gave.
            let s = status(e);
            let spooled = tarball.0.display().to_string();
            Status::new(s.code(), s.message().replace(&spooled, "the tarball"))
        })?;
        let users = in_use(&self.tasks_dir).images;
        Ok(images.iter().map(|i| self.image_msg(i, &users)).collect())
    }

    fn image_msg(&self, image: &Image, users: &HashMap<String, Vec<String>>) -> ImageMsg {
        let hex = image.id.strip_prefix("sha256:").unwrap_or(&image.id);
        // The record's write time: when this node stored the image.
        let record = self.images_root.join("images").join(format!("{hex}.json"));
        let created = std::fs::metadata(record)
            .and_then(|m| m.modified())
            .ok()
            .map(prost_types::Timestamp::from);
        let c = &image.config;
        let ns = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_nanos() as i64);
        ImageMsg {
            id: image.id.clone(),
            repo_tags: image.references.clone(),
            repo_digests: image.repo_digest.iter().cloned().collect(),
            size: image.size,
            created,
            layers: image
                .layers
                .iter()
                .map(|l| {
                    format!(
                        "sha256:{}",
                        l.file_name().unwrap_or_default().to_string_lossy()
                    )
                })
                .collect(),
            config: Some(ConfigMsg {
                entrypoint: c.entrypoint.clone(),
                cmd: c.cmd.clone(),
                env: c.env.clone(),
                working_dir: c.working_dir.clone(),
                user: c.user.clone(),
                exposed_ports: c.exposed_ports.clone(),
                stop_signal: c.stop_signal.clone(),
                healthcheck: c.healthcheck.as_ref().map(|h| ImageHealthcheck {
                    test: h.test.clone(),
                    interval_ns: ns(h.interval),
                    timeout_ns: ns(h.timeout),
                    start_period_ns: ns(h.start_period),
                    retries: h.retries,
                }),
                volumes: c.volumes.clone(),
                labels: c.labels.clone(),
            }),
            tasks: users.get(&image.id).cloned().unwrap_or_default(),
        }
    }
}

impl Stores {
    /// The error of a node whose engine keeps no images or volumes.
    pub(super) fn not_embedded(&self, noun: &str, command: &str) -> Status {
        let engine = self.engine.name();
        Status::failed_precondition(match self.engine {
            EngineKind::Docker => format!(
                "this node's engine is docker: use `docker {noun} {command}` (shoal {noun} commands manage the embedded engine's {noun}s)"
            ),
            _ => format!(
                "this node's engine is {engine}, which has no {noun}s: `shoal {noun} {command}` needs a node running the embedded engine (`shoal daemon --engine embedded`)"
            ),
        })
    }
}

fn progress_event(p: PullProgress) -> Option<Event> {
    Some(match p {
        PullProgress::Resolved {
            reference,
            digest,
            layers,
        } => Event::Resolved(ImagePullResolved {
            reference,
            digest,
            layers: layers as u32,
        }),
        PullProgress::Layer {
            digest,
            done,
            total,
        } => Event::Layer(ImagePullLayer {
            digest,
            done,
            total,
            ..ImagePullLayer::default()
        }),
        PullProgress::LayerDone { digest, cached } => Event::Layer(ImagePullLayer {
            digest,
            complete: true,
            cached,
            ..ImagePullLayer::default()
        }),
        PullProgress::Done => return None,
    })
}

/// What removing an image dropped: every name, then the image.
fn removed_response(image: &Image) -> ImageRemoveResponse {
    ImageRemoveResponse {
        untagged: image
            .references
            .iter()
            .chain(&image.repo_digest)
            .cloned()
            .collect(),
        deleted: vec![image.id.clone()],
    }
}

/// The 12 hex characters Docker shows of an id.
fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// A store error as a gRPC status.
pub(super) fn status(e: ImageError) -> Status {
    let message = e.to_string();
    match e {
        ImageError::BadReference(_) => Status::invalid_argument(message),
        ImageError::NotFound(_) => Status::not_found(message),
        ImageError::Unauthorized(_) => Status::permission_denied(message),
        ImageError::Unreachable(_) => Status::unavailable(message),
        ImageError::InUse(_) => Status::failed_precondition(message),
        ImageError::DigestMismatch { .. } | ImageError::Corrupt(_) => Status::data_loss(message),
        ImageError::Unsupported(_) => Status::invalid_argument(message),
        ImageError::Registry(_) | ImageError::Io(_) => Status::internal(message),
    }
}

/// A file in `dir`, removed when dropped.
struct Spool(PathBuf);

impl Spool {
    fn new(dir: &Path) -> Result<Spool, Status> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(dir)
            .map_err(|e| Status::internal(format!("{}: {e}", dir.display())))?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Ok(Spool(
            dir.join(format!("{}-{n}-{nanos}.tar", std::process::id())),
        ))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Bytes of regular files under a path (0 for what cannot be read).
pub(super) fn du(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}
