//! From a Shoal task to a Docker container: name, labels and the create
//! body. Pure functions, so every mapping is unit-tested without a daemon.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HealthConfig, HostConfig, Mount,
    MountTmpfsOptions, MountType,
};
use shoal_proto::objects::{self, Task, mount::Type as MountKind};

use crate::exec::TaskRun;

/// Marks every container Shoal created, so `list` never adopts others.
pub const LABEL_MANAGED: &str = "com.shoal.managed";
/// Docker Swarm's labels, so `docker ps` reads as Swarm users expect.
pub const LABEL_SERVICE_ID: &str = "com.docker.swarm.service.id";
/// The service's name.
pub const LABEL_SERVICE_NAME: &str = "com.docker.swarm.service.name";
/// The task id: how the engine finds a task's container again.
pub const LABEL_TASK_ID: &str = "com.docker.swarm.task.id";
/// The task's name (the same as the container's).
pub const LABEL_TASK_NAME: &str = "com.docker.swarm.task.name";
/// The node that created it: two nodes sharing one dockerd (tests) never
/// adopt each other's containers.
pub const LABEL_NODE_ID: &str = "com.docker.swarm.node.id";

/// `<service>.<slot>.<task id>`, or `<service>.<node id>.<task id>` for
/// global services (slot 0), as Swarm names its containers.
pub fn container_name(task: &Task, node_id: &str) -> String {
    let service = service_name(task);
    if task.slot == 0 {
        format!("{service}.{node_id}.{}", task.id)
    } else {
        format!("{service}.{}.{}", task.slot, task.id)
    }
}

/// The task's service name (its id when the task does not carry it).
pub fn service_name(task: &Task) -> &str {
    match task.service_annotations.as_ref().map(|a| a.name.as_str()) {
        Some(name) if !name.is_empty() => name,
        // A task without its service's name still needs a valid name.
        _ => &task.service_id,
    }
}

/// Every label of the container: the spec's own, then Swarm's and Shoal's
/// (which win, so a user label cannot hide a task from its engine).
pub fn labels(task: &Task, node_id: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = container(task)
        .map(|c| c.labels.clone().into_iter().collect())
        .unwrap_or_default();
    for (key, value) in [
        (LABEL_SERVICE_ID, task.service_id.clone()),
        (LABEL_SERVICE_NAME, service_name(task).to_string()),
        (LABEL_TASK_ID, task.id.clone()),
        (LABEL_TASK_NAME, container_name(task, node_id)),
        (LABEL_NODE_ID, node_id.to_string()),
        (LABEL_MANAGED, "true".to_string()),
    ] {
        labels.insert(key.to_string(), value);
    }
    labels
}

/// Whether inspected container `c` carries `key` = `task_id` and node
/// `node_id`'s label: found by a name alone, it could be anyone's.
pub fn labelled_for(c: &ContainerInspectResponse, key: &str, task_id: &str, node_id: &str) -> bool {
    let labels = c.config.as_ref().and_then(|c| c.labels.as_ref());
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    label(key) == Some(task_id) && label(LABEL_NODE_ID) == Some(node_id)
}

fn container(task: &Task) -> Option<&objects::ContainerSpec> {
    task.spec.as_ref().and_then(|s| s.container.as_ref())
}

/// The image the task runs (empty when the spec has none).
pub fn image(task: &Task) -> &str {
    container(task).map(|c| c.image.as_str()).unwrap_or("")
}

/// A bind of one secret or config file: host path on Shoal's tmpfs, path
/// inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBind {
    /// Where the file is on the node (always on tmpfs).
    pub source: String,
    /// Where the task sees it.
    pub target: String,
}

/// The create body for a task. `files` are the task's secrets and configs
/// already written to tmpfs; they are bound read-only.
/// `network_mode` joins the task's sandbox (`container:<id>`).
pub fn create_body(
    run: &TaskRun,
    node_id: &str,
    files: &[FileBind],
    network_mode: &str,
) -> ContainerCreateBody {
    let task = &run.task;
    let default = objects::ContainerSpec::default();
    let c = container(task).unwrap_or(&default);
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let non_empty_vec = |v: &[String]| (!v.is_empty()).then(|| v.to_vec());

    let mut mounts: Vec<Mount> = c.mounts.iter().map(mount).collect();
    mounts.extend(files.iter().map(|f| Mount {
        typ: Some(MountType::BIND),
        source: Some(f.source.clone()),
        target: Some(f.target.clone()),
        read_only: Some(true),
        ..Default::default()
    }));

    let grace = c.stop_grace_period.as_ref().map(duration);
    let resources = task.spec.as_ref().and_then(|s| s.resources.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    let reservations = resources.and_then(|r| r.reservations.as_ref());
    let positive = |n: i64| (n > 0).then_some(n);

    let host_config = HostConfig {
        // The sandbox's namespace, wired before this container starts.
        network_mode: Some(network_mode.to_string()),
        memory: limits.and_then(|l| positive(l.memory_bytes)),
        nano_cpus: limits.and_then(|l| positive(l.nano_cpus)),
        // CPU reservations only steer scheduling, as in Swarm; memory
        // reservations become a soft limit.
        memory_reservation: reservations.and_then(|r| positive(r.memory_bytes)),
        init: c.init.then_some(true),
        mounts: (!mounts.is_empty()).then_some(mounts),
        ..Default::default()
    };

    ContainerCreateBody {
        image: Some(c.image.clone()),
        // Swarm's mapping: the spec's command replaces the image's
        // entrypoint, its args the image's cmd.
        entrypoint: non_empty_vec(&c.command),
        cmd: non_empty_vec(&c.args),
        env: non_empty_vec(&c.env),
        user: non_empty(&c.user),
        working_dir: non_empty(&c.dir),
        // The host name is the sandbox's: Docker refuses one here.
        tty: c.tty.then_some(true),
        labels: Some(labels(task, node_id)),
        stop_signal: non_empty(&c.stop_signal),
        stop_timeout: grace.map(|g| g.as_secs_f64().ceil() as i64),
        healthcheck: c.healthcheck.as_ref().map(healthcheck),
        host_config: Some(host_config),
        ..Default::default()
    }
}

fn mount(m: &objects::Mount) -> Mount {
    let kind = MountKind::try_from(m.r#type).unwrap_or(MountKind::Volume);
    let (typ, tmpfs_options) = match kind {
        MountKind::Volume => (MountType::VOLUME, None),
        MountKind::Bind => (MountType::BIND, None),
        MountKind::Tmpfs => (
            MountType::TMPFS,
            Some(MountTmpfsOptions {
                size_bytes: (m.tmpfs_size_bytes > 0).then_some(m.tmpfs_size_bytes),
                mode: (m.tmpfs_mode != 0).then_some(i64::from(m.tmpfs_mode)),
                ..Default::default()
            }),
        ),
    };
    Mount {
        typ: Some(typ),
        // An empty volume source is an anonymous volume (removed with the
        // container); tmpfs has none.
        source: (!m.source.is_empty() && kind != MountKind::Tmpfs).then(|| m.source.clone()),
        target: Some(m.target.clone()),
        read_only: m.read_only.then_some(true),
        tmpfs_options,
        ..Default::default()
    }
}

/// The spec's health check as Docker's; `["NONE"]` passes through and
/// disables the image's. Durations are nanoseconds; zero means default.
fn healthcheck(h: &objects::HealthConfig) -> HealthConfig {
    let nanos = |d: &Option<prost_types::Duration>| {
        d.as_ref()
            .map(|d| duration(d).as_nanos() as i64)
            .filter(|n| *n > 0)
    };
    HealthConfig {
        test: (!h.test.is_empty()).then(|| h.test.clone()),
        interval: nanos(&h.interval),
        timeout: nanos(&h.timeout),
        retries: (h.retries > 0).then_some(i64::from(h.retries)),
        start_period: nanos(&h.start_period),
        ..Default::default()
    }
}

/// A protobuf duration as std's; negative ones count as zero.
pub fn duration(d: &prost_types::Duration) -> Duration {
    let secs = u64::try_from(d.seconds).unwrap_or(0);
    let nanos = u32::try_from(d.nanos).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// The file a task file is written to under the task's files directory:
/// its in-task path mirrored below `dir`, so two files never collide.
pub fn file_source(dir: &Path, target: &Path) -> std::path::PathBuf {
    dir.join(target.strip_prefix("/").unwrap_or(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::objects::{
        Annotations, ContainerSpec, ResourceRequirements, Resources, TaskSpec,
    };

    fn task(slot: u64) -> Task {
        Task {
            id: "t1".into(),
            service_id: "svc1".into(),
            slot,
            service_annotations: Some(Annotations {
                name: "web".into(),
                ..Default::default()
            }),
            spec: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "shoal-test/busybox:1".into(),
                    command: vec!["sh".into(), "-c".into()],
                    args: vec!["echo hi".into()],
                    labels: [
                        ("mine".to_string(), "yes".to_string()),
                        (LABEL_TASK_ID.to_string(), "forged".to_string()),
                    ]
                    .into(),
                    stop_grace_period: Some(prost_types::Duration {
                        seconds: 3,
                        nanos: 500_000_000,
                    }),
                    mounts: vec![objects::Mount {
                        r#type: MountKind::Tmpfs as i32,
                        target: "/scratch".into(),
                        tmpfs_size_bytes: 1 << 20,
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                resources: Some(ResourceRequirements {
                    limits: Some(Resources {
                        nano_cpus: 500_000_000,
                        memory_bytes: 64 << 20,
                    }),
                    reservations: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn names_like_swarm() {
        assert_eq!(container_name(&task(3), "n1"), "web.3.t1");
        assert_eq!(container_name(&task(0), "n1"), "web.n1.t1");
    }

    #[test]
    fn swarm_labels_win_over_the_spec() {
        let l = labels(&task(1), "n1");
        assert_eq!(l["mine"], "yes");
        assert_eq!(l[LABEL_TASK_ID], "t1");
        assert_eq!(l[LABEL_TASK_NAME], "web.1.t1");
        assert_eq!(l[LABEL_SERVICE_NAME], "web");
        assert_eq!(l[LABEL_NODE_ID], "n1");
        assert_eq!(l[LABEL_MANAGED], "true");
    }

    #[test]
    fn maps_command_limits_mounts_and_grace() {
        let run = TaskRun {
            task: task(1),
            files: vec![],
        };
        let files = [FileBind {
            source: "/state/tasks/t1/files/run/secrets/s1".into(),
            target: "/run/secrets/s1".into(),
        }];
        let body = create_body(&run, "n1", &files, "container:sb1");
        assert_eq!(
            body.entrypoint.as_deref(),
            Some(&["sh".into(), "-c".into()][..])
        );
        assert_eq!(body.cmd.as_deref(), Some(&["echo hi".to_string()][..]));
        assert_eq!(body.stop_timeout, Some(4), "grace rounds up");
        assert_eq!(body.healthcheck, None, "the image's own is kept");
        let hc = body.host_config.unwrap_or_default();
        assert_eq!(hc.network_mode.as_deref(), Some("container:sb1"));
        assert_eq!(hc.memory, Some(64 << 20));
        assert_eq!(hc.nano_cpus, Some(500_000_000));
        let mounts = hc.mounts.unwrap_or_default();
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].typ, Some(MountType::TMPFS));
        assert_eq!(mounts[0].source, None);
        assert_eq!(mounts[1].typ, Some(MountType::BIND));
        assert_eq!(mounts[1].read_only, Some(true));
    }

    #[test]
    fn healthcheck_none_passes_through() {
        let h = healthcheck(&objects::HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        });
        assert_eq!(h.test, Some(vec!["NONE".to_string()]));
        assert_eq!(h.interval, None);
    }

    #[test]
    fn file_sources_mirror_the_target() {
        assert_eq!(
            file_source(Path::new("/s/files"), Path::new("/run/secrets/a")),
            Path::new("/s/files/run/secrets/a")
        );
    }
}
