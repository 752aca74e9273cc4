//! A Docker task's network sandbox: a tiny container whose network
//! namespace Shoal wires into the task's overlays, and which the task's
//! container then joins (`network_mode: container:<sandbox>`), as
//! Kubernetes' dockershim did with its pause containers.
//!
//! Why a sandbox and not a Docker network plugin: Docker creates a
//! container's namespace in the same call that starts its process, so
//! something must own the namespace before the task runs. A plugin would
//! put dockerd's own calls (every start, stop and remove of a container on
//! those networks) behind the Shoal daemon, so a daemon killed with -9
//! would stall dockerd until it came back; Docker's embedded resolver would
//! own 127.0.0.11 in plugin networks; and every Shoal network would need a
//! Docker network on every node. A sandbox keeps dockerd independent of
//! Shoal, lets the data plane wire Docker tasks exactly as it wires
//! process-engine tasks (a namespace path), and costs one container that
//! runs a static kilobyte-sized `pause` (`worker/pause/pause.rs`).
//!
//! Sandboxes are named `shoal-sandbox.<task id>` (so `docker ps -f
//! name=<service>` finds only tasks) and labelled with Shoal's managed
//! label, the node id and [`LABEL_SANDBOX`]; the engine removes a task's
//! sandbox with its container, and reports a sandbox left without one so
//! a restarted daemon removes or reuses it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig};
use bollard::query_parameters::ImportImageOptions;
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use shoal_proto::objects::Task;

use super::{docker_message, spec};
use crate::exec::ExecError;

/// Marks a sandbox; the value is its task's id.
pub const LABEL_SANDBOX: &str = "com.shoal.sandbox.task.id";

/// The pause program, built by `worker/build.rs`.
static PAUSE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shoal-pause"));

/// Where the pause program sits in its image.
const PAUSE_PATH: &str = "pause";

/// A sandbox never needs more than its one process.
const PIDS_LIMIT: i64 = 4;

/// `shoal/pause:<digest of the program>`: a rebuilt program is a new tag,
/// so a node never runs a stale one.
pub fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| format!("shoal/pause:{}", &hex(&Sha256::digest(PAUSE))[..12]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sandbox container's name.
pub fn name(task_id: &str) -> String {
    format!("shoal-sandbox.{task_id}")
}

/// The sandbox's labels: found by the engine, never taken for a task.
pub fn labels(task: &Task, node_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (spec::LABEL_MANAGED.to_string(), "true".to_string()),
        (spec::LABEL_NODE_ID.to_string(), node_id.to_string()),
        (LABEL_SANDBOX.to_string(), task.id.clone()),
        (
            spec::LABEL_SERVICE_NAME.to_string(),
            spec::service_name(task).to_string(),
        ),
    ])
}

/// The create body: no network of Docker's (Shoal wires the namespace),
/// the task's hostname and extra hosts (a container that joins another's
/// network takes its host name and /etc/hosts from it), and nothing it
/// could use: no capabilities, a read-only root, no new privileges, a
/// pids limit.
pub fn create_body(task: &Task, node_id: &str) -> ContainerCreateBody {
    let hostname = task
        .spec
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .map(|c| c.hostname.clone())
        .filter(|h| !h.is_empty());
    ContainerCreateBody {
        image: Some(image().to_string()),
        entrypoint: Some(vec![format!("/{PAUSE_PATH}")]),
        hostname,
        labels: Some(labels(task, node_id)),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            extra_hosts: spec::extra_hosts(task),
            cap_drop: Some(vec!["ALL".into()]),
            readonly_rootfs: Some(true),
            security_opt: Some(vec!["no-new-privileges".into()]),
            pids_limit: Some(PIDS_LIMIT),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A task's sandbox as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its container id.
    pub id: String,
    /// Whether its pause process runs (and so its namespace exists).
    pub running: bool,
    /// Its network namespace, while it runs.
    pub netns: Option<PathBuf>,
}

impl Found {
    /// The sandbox in `c`, if it is task `task_id`'s on node `node_id`.
    pub fn of(c: ContainerInspectResponse, node_id: &str, task_id: &str) -> Option<Found> {
        if !spec::labelled_for(&c, LABEL_SANDBOX, task_id, node_id) {
            return None;
        }
        Some(Found {
            id: c.id?,
            running: c.state.and_then(|s| s.running).unwrap_or(false),
            netns: c
                .network_settings
                .and_then(|n| n.sandbox_key)
                .filter(|k| !k.is_empty())
                .map(PathBuf::from),
        })
    }
}

/// The `network_mode` of a task container that joins sandbox `id`.
pub fn network_mode(id: &str) -> String {
    format!("container:{id}")
}

/// Loads the pause image when the node does not have it yet, from a
/// `docker save` archive made in memory (no registry involved). Every byte
/// of it is fixed (no timestamps), so the image id is too: nodes sharing
/// a dockerd that load it at once get one image, not a dangling copy.
pub async fn ensure_image(docker: &Docker) -> Result<(), ExecError> {
    let image = image();
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(e) if super::is_not_found(&e) => {}
        Err(e) => return Err(super::api(&format!("inspect image {image}"), &e)),
    }
    let archive = save_archive().map_err(|e| ExecError::Failed(format!("pause image: {e}")))?;
    let options = ImportImageOptions {
        quiet: true,
        ..Default::default()
    };
    docker
        .import_image(options, bollard::body_full(archive.into()), None)
        .try_for_each(|_| async { Ok(()) })
        .await
        .map_err(|e| ExecError::Failed(format!("load {image}: {}", docker_message(&e))))?;
    tracing::info!(image, "loaded the sandbox image");
    Ok(())
}

/// The image as `docker save` writes it: the layer, its config and a
/// manifest naming [`image`].
fn save_archive() -> std::io::Result<Vec<u8>> {
    let layer = layer()?;
    let diff_id = format!("sha256:{}", hex(&Sha256::digest(&layer)));
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": { "Entrypoint": [format!("/{PAUSE_PATH}")] },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    })
    .to_string();
    let config_name = format!("{}.json", hex(&Sha256::digest(config.as_bytes())));
    let layer_name = format!("{}/layer.tar", &diff_id["sha256:".len()..]);
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [image()],
        "Layers": [layer_name],
    }])
    .to_string();
    let mut archive = tar::Builder::new(Vec::new());
    for (name, data) in [
        (config_name.as_str(), config.as_bytes()),
        (layer_name.as_str(), &layer[..]),
        ("manifest.json", manifest.as_bytes()),
    ] {
        append(&mut archive, name, 0o644, data)?;
    }
    archive.into_inner()
}

/// The pause image's one layer: the program at [`PAUSE_PATH`].
fn layer() -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    append(&mut archive, PAUSE_PATH, 0o555, PAUSE)?;
    archive.into_inner()
}

/// Appends a regular file with a fixed owner and time.
fn append(
    archive: &mut tar::Builder<Vec<u8>>,
    name: &str,
    mode: u32,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    archive.append_data(&mut header, name, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_program_is_static_and_small() {
        assert_eq!(&PAUSE[..4], b"\x7fELF");
        assert!(PAUSE.len() < 16 * 1024, "{} bytes", PAUSE.len());
        assert!(image().starts_with("shoal/pause:") && image().len() == 24);
    }

    #[test]
    fn sandboxes_are_never_taken_for_tasks() {
        let task = Task {
            id: "t1".into(),
            ..Default::default()
        };
        let body = create_body(&task, "n1");
        let labels = body.labels.unwrap_or_default();
        assert_eq!(labels[LABEL_SANDBOX], "t1");
        assert!(!labels.contains_key(spec::LABEL_TASK_ID));
        let host = body.host_config.unwrap_or_default();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(name("t1"), "shoal-sandbox.t1");
    }

    #[test]
    fn a_sandbox_is_found_only_for_its_task_and_node() {
        use bollard::models::{ContainerConfig, ContainerState, NetworkSettings};
        let task = Task {
            id: "t1".into(),
            ..Default::default()
        };
        let inspect = |node: &str| ContainerInspectResponse {
            id: Some("c1".into()),
            config: Some(ContainerConfig {
                labels: Some(labels(&task, node)),
                ..Default::default()
            }),
            state: Some(ContainerState {
                running: Some(true),
                ..Default::default()
            }),
            network_settings: Some(NetworkSettings {
                sandbox_key: Some("/var/run/docker/netns/abc".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let found = Found::of(inspect("n1"), "n1", "t1").expect("ours");
        assert!(found.running);
        assert_eq!(
            found.netns,
            Some(PathBuf::from("/var/run/docker/netns/abc"))
        );
        assert_eq!(Found::of(inspect("n2"), "n1", "t1"), None, "another node's");
        assert_eq!(Found::of(inspect("n1"), "n1", "t2"), None, "another task's");
    }

    #[test]
    fn the_image_archive_is_the_same_every_time() {
        let archive = save_archive().unwrap();
        assert_eq!(archive, save_archive().unwrap());
        let mut names = Vec::new();
        for e in tar::Archive::new(&archive[..]).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(names.len(), 3);
        assert_eq!(names[2], "manifest.json");
        let layer = layer().unwrap();
        let mut files = tar::Archive::new(&layer[..]);
        let entry = files.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some("pause"));
        assert_eq!(entry.header().mode().unwrap(), 0o555);
    }
}
