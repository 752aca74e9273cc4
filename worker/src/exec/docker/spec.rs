//! From a Shoal task to a Docker container: name, labels and the create
//! body. Pure functions, so every mapping is unit-tested without a daemon.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HealthConfig, HostConfig, HostConfigLogConfig,
    Mount, MountTmpfsOptions, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig,
    ResourcesUlimits,
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
    let ulimits: Vec<ResourcesUlimits> = c
        .ulimits
        .iter()
        .map(|u| ResourcesUlimits {
            name: Some(u.name.clone()),
            soft: Some(u.soft),
            hard: Some(u.hard),
        })
        .collect();
    // Unset: the engine's default driver. Options without a name apply to
    // the engine's default driver, as in Swarm.
    let log_config = task
        .spec
        .as_ref()
        .and_then(|s| s.log_driver.as_ref())
        .map(|d| HostConfigLogConfig {
            typ: non_empty(&d.name),
            config: hash_map(&d.options),
        });

    let host_config = HostConfig {
        // The sandbox's namespace, wired before this container starts.
        network_mode: Some(network_mode.to_string()),
        memory: limits.and_then(|l| positive(l.memory_bytes)),
        nano_cpus: limits.and_then(|l| positive(l.nano_cpus)),
        // CPU reservations only steer scheduling, as in Swarm; memory
        // reservations become a soft limit.
        memory_reservation: reservations.and_then(|r| positive(r.memory_bytes)),
        pids_limit: limits.and_then(|l| positive(l.pids)),
        init: c.init.then_some(true),
        mounts: (!mounts.is_empty()).then_some(mounts),
        cap_add: non_empty_vec(&c.cap_add),
        cap_drop: non_empty_vec(&c.cap_drop),
        readonly_rootfs: c.read_only.then_some(true),
        ulimits: (!ulimits.is_empty()).then_some(ulimits),
        sysctls: hash_map(&c.sysctls),
        log_config,
        // Extra hosts are the sandbox's (see [`extra_hosts`]): Docker
        // refuses them on a container that joins another's network, and
        // shares the sandbox's /etc/hosts with it.
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

/// The task's extra `/etc/hosts` entries as Docker's `ExtraHosts`
/// (`name:IP`), one per name of each Swarm entry (`IP name [alias...]`;
/// Swarm's own executor drops the aliases). They go on the task's
/// sandbox, whose hosts file the task's container shares.
pub fn extra_hosts(task: &Task) -> Option<Vec<String>> {
    let hosts: Vec<String> = container(task)?
        .hosts
        .iter()
        .flat_map(|entry| {
            let mut fields = entry.split_whitespace();
            let ip = fields.next().unwrap_or_default();
            fields.map(move |name| format!("{name}:{ip}"))
        })
        .collect();
    (!hosts.is_empty()).then_some(hosts)
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
        volume_options: (kind == MountKind::Volume)
            .then(|| volume_options(m))
            .flatten(),
        ..Default::default()
    }
}

/// A named volume's labels, driver and `nocopy`, for the engine to create
/// it as declared; none when the spec sets none. Docker refuses them on
/// other mount types.
fn volume_options(m: &objects::Mount) -> Option<MountVolumeOptions> {
    let driver = (!m.volume_driver.is_empty() || !m.volume_options.is_empty()).then(|| {
        MountVolumeOptionsDriverConfig {
            name: (!m.volume_driver.is_empty()).then(|| m.volume_driver.clone()),
            options: hash_map(&m.volume_options),
        }
    });
    let options = MountVolumeOptions {
        no_copy: m.volume_nocopy.then_some(true),
        labels: hash_map(&m.volume_labels),
        driver_config: driver,
        ..Default::default()
    };
    (options != MountVolumeOptions::default()).then_some(options)
}

/// A spec's map as bollard's; none when empty.
fn hash_map(m: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then(|| m.clone().into_iter().collect())
}

/// The spec's health check as Docker's; `["NONE"]` passes through and
/// disables the image's. Durations are nanoseconds; zero means default.
fn healthcheck(h: &objects::HealthConfig) -> HealthConfig {
    let nanos = |d: &Option<prost_types::Duration>| {
        d.as_ref()
            .map(|d| i64::try_from(duration(d).as_nanos()).unwrap_or(i64::MAX))
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

/// A protobuf duration as std's; negative ones count as zero, and none is
/// longer than [`shoal_proto::limits::MAX_DURATION`] (which fits Docker's
/// nanoseconds in an `i64`).
pub fn duration(d: &prost_types::Duration) -> Duration {
    shoal_proto::limits::duration(d)
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
        Annotations, ContainerSpec, LogDriver, ResourceRequirements, Resources, TaskSpec, Ulimit,
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
                        pids: 0,
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

    /// Task `t1` with every runtime key of the spec set.
    fn runtime_task() -> Task {
        let mut t = task(1);
        let spec = t.spec.get_or_insert_with(Default::default);
        spec.log_driver = Some(LogDriver {
            name: "json-file".into(),
            options: [("max-size".to_string(), "10m".to_string())].into(),
        });
        if let Some(l) = spec.resources.as_mut().and_then(|r| r.limits.as_mut()) {
            l.pids = 100;
        }
        let c = spec.container.get_or_insert_with(Default::default);
        c.cap_add = vec!["CAP_NET_BIND_SERVICE".into()];
        c.cap_drop = vec!["ALL".into()];
        c.read_only = true;
        c.init = true;
        c.ulimits = vec![Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: 2048,
        }];
        c.sysctls = [(
            "net.ipv4.ip_unprivileged_port_start".to_string(),
            "80".to_string(),
        )]
        .into();
        c.hosts = vec!["10.0.0.5 db db.local".into(), "::1 v6".into()];
        c.mounts = vec![
            objects::Mount {
                r#type: MountKind::Volume as i32,
                source: "app_data".into(),
                target: "/data".into(),
                volume_labels: [("com.docker.stack.namespace".into(), "app".into())].into(),
                volume_driver: "local".into(),
                volume_options: [("type".into(), "tmpfs".into())].into(),
                volume_nocopy: true,
                ..Default::default()
            },
            objects::Mount {
                r#type: MountKind::Volume as i32,
                source: "plain".into(),
                target: "/plain".into(),
                ..Default::default()
            },
        ];
        t
    }

    #[test]
    fn maps_the_runtime_keys_onto_the_host_config() {
        let run = TaskRun {
            task: runtime_task(),
            files: vec![],
        };
        let hc = create_body(&run, "n1", &[], "container:sb1")
            .host_config
            .unwrap_or_default();
        assert_eq!(hc.cap_add, Some(vec!["CAP_NET_BIND_SERVICE".to_string()]));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.init, Some(true));
        assert_eq!(hc.pids_limit, Some(100));
        assert_eq!(
            hc.ulimits,
            Some(vec![ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(1024),
                hard: Some(2048),
            }])
        );
        let sysctls = hc.sysctls.unwrap_or_default();
        assert_eq!(sysctls["net.ipv4.ip_unprivileged_port_start"], "80");
        let log = hc.log_config.unwrap_or_default();
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(log.config.unwrap_or_default()["max-size"], "10m");
        // Docker refuses extra hosts with `container:` networking.
        assert_eq!(hc.extra_hosts, None);
        let mounts = hc.mounts.unwrap_or_default();
        let vo = mounts[0].volume_options.clone().unwrap_or_default();
        assert_eq!(vo.no_copy, Some(true));
        assert_eq!(
            vo.labels.unwrap_or_default()["com.docker.stack.namespace"],
            "app"
        );
        let driver = vo.driver_config.unwrap_or_default();
        assert_eq!(driver.name.as_deref(), Some("local"));
        assert_eq!(driver.options.unwrap_or_default()["type"], "tmpfs");
        assert_eq!(mounts[1].volume_options, None, "nothing declared");

        // Unset keys leave Docker's defaults alone.
        let plain = create_body(
            &TaskRun {
                task: task(1),
                files: vec![],
            },
            "n1",
            &[],
            "container:sb1",
        )
        .host_config
        .unwrap_or_default();
        assert_eq!(
            (plain.cap_add, plain.readonly_rootfs, plain.pids_limit),
            (None, None, None)
        );
        assert_eq!((plain.ulimits, plain.sysctls), (None, None));
        assert_eq!(plain.log_config, None);
        assert_eq!(plain.mounts.unwrap_or_default()[0].volume_options, None);
    }

    #[test]
    fn log_options_alone_keep_the_default_driver() {
        let mut t = task(1);
        if let Some(s) = t.spec.as_mut() {
            s.log_driver = Some(LogDriver {
                name: String::new(),
                options: [("max-size".to_string(), "1m".to_string())].into(),
            });
        }
        let run = TaskRun {
            task: t,
            files: vec![],
        };
        let log = create_body(&run, "n1", &[], "none")
            .host_config
            .and_then(|h| h.log_config)
            .unwrap_or_default();
        assert_eq!(log.typ, None);
        assert_eq!(log.config.unwrap_or_default()["max-size"], "1m");
    }

    #[test]
    fn extra_hosts_go_on_the_sandbox_in_dockers_form() {
        let t = runtime_task();
        assert_eq!(
            extra_hosts(&t),
            Some(vec![
                "db:10.0.0.5".to_string(),
                "db.local:10.0.0.5".to_string(),
                "v6:::1".to_string()
            ])
        );
        assert_eq!(extra_hosts(&task(1)), None);
        let sandbox = crate::exec::docker::sandbox::create_body(&t, "n1");
        assert_eq!(
            sandbox.host_config.and_then(|h| h.extra_hosts),
            extra_hosts(&t)
        );
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
