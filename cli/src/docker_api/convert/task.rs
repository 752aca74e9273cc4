//! Tasks, and the task template a service and its tasks share (a task's
//! `Spec` is its service's `TaskTemplate`), in the Engine API's types:
//! here the template's container half; its scheduling half (resources,
//! restart, placement, networks) is with the service's.
//!
//! From Docker, a field Shoal cannot honour is refused when set (a 400
//! naming it) rather than dropped, so a client never believes it got what
//! it did not; the empty values Docker's CLI sends on every create pass.

use bollard::models as dk;
use serde_json::{Value, json};
use shoal_proto::objects::{
    ConfigReference, ContainerSpec, Driver, FileTarget, HealthConfig, IpamOptions, LogDriver,
    Mount, Network, NetworkAttachment, RegistryAuth, SecretReference, Task, TaskSpec, TaskState,
    TaskStatus, Ulimit, mount,
};

use super::service::{
    networks_from_docker, networks_to_docker, placement_from_docker, placement_to_docker,
    port_to_docker, resources_from_docker, resources_to_docker, restart_from_docker,
    restart_to_docker,
};
use super::{
    ZERO_TIME, duration, from_hash, is_set, nanos, omit_empty, refuse, rfc3339, signed, times,
    to_hash, unsigned, unsupported, version,
};

const CONTAINER: &str = "TaskTemplate.ContainerSpec";

/// Docker's task template as Shoal's; `auth` goes with the container.
pub(super) fn task_spec_from_docker(
    t: dk::TaskSpec,
    auth: Option<RegistryAuth>,
) -> Result<TaskSpec, String> {
    refuse_unsupported_task(&t)?;
    Ok(TaskSpec {
        container: t
            .container_spec
            .map(|c| container_from_docker(c, auth))
            .transpose()?,
        resources: t.resources.map(resources_from_docker).transpose()?,
        restart: t.restart_policy.map(restart_from_docker).transpose()?,
        placement: t.placement.map(placement_from_docker).transpose()?,
        networks: networks_from_docker(t.networks, "TaskTemplate.Networks")?,
        force_update: t.force_update.unwrap_or(0),
        log_driver: t.log_driver.map(|l| LogDriver {
            name: l.name.unwrap_or_default(),
            options: from_hash(l.options),
        }),
    })
}

/// Shoal's task template as Docker shows it.
pub(super) fn task_spec_to_docker(t: &TaskSpec) -> dk::TaskSpec {
    dk::TaskSpec {
        container_spec: t.container.as_ref().map(container_to_docker),
        resources: t.resources.as_ref().map(resources_to_docker),
        restart_policy: t.restart.as_ref().map(restart_to_docker),
        placement: t.placement.as_ref().map(placement_to_docker),
        force_update: Some(t.force_update),
        runtime: Some("container".into()),
        networks: networks_to_docker(&t.networks),
        log_driver: t.log_driver.as_ref().map(|l| dk::TaskSpecLogDriver {
            name: Some(l.name.clone()),
            options: omit_empty(to_hash(&l.options)),
        }),
        ..Default::default()
    }
}

/// Plugins, attachments, swap and generic resources have no Shoal form.
fn refuse_unsupported_task(t: &dk::TaskSpec) -> Result<(), String> {
    let r = t.resources.clone().unwrap_or_default();
    let attachment = t.network_attachment_spec.as_ref();
    refuse(
        "TaskTemplate",
        [
            ("PluginSpec", is_set(&t.plugin_spec)),
            (
                "NetworkAttachmentSpec",
                attachment.is_some_and(|n| is_set(&n.container_id)),
            ),
            (
                "Runtime",
                !matches!(t.runtime.as_deref(), None | Some("" | "container")),
            ),
            ("Resources.SwapBytes", r.swap_bytes.is_some()),
            (
                "Resources.MemorySwappiness",
                !matches!(r.memory_swappiness, None | Some(-1)),
            ),
            (
                "Resources.Reservations.GenericResources",
                r.reservations.is_some_and(|r| is_set(&r.generic_resources)),
            ),
        ],
    )
}

fn container_from_docker(
    c: dk::TaskSpecContainerSpec,
    auth: Option<RegistryAuth>,
) -> Result<ContainerSpec, String> {
    refuse_unsupported_container(&c)?;
    let mounts = c.mounts.unwrap_or_default().into_iter().enumerate();
    let secrets = c.secrets.unwrap_or_default().into_iter().enumerate();
    let configs = c.configs.unwrap_or_default().into_iter().enumerate();
    Ok(ContainerSpec {
        image: c.image.unwrap_or_default(),
        labels: from_hash(c.labels),
        command: c.command.unwrap_or_default(),
        args: c.args.unwrap_or_default(),
        hostname: c.hostname.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        dir: c.dir.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
        mounts: mounts.map(mount_from_docker).collect::<Result<_, _>>()?,
        stop_grace_period: duration(c.stop_grace_period, &format!("{CONTAINER}.StopGracePeriod"))?,
        stop_signal: c.stop_signal.unwrap_or_default(),
        healthcheck: c.health_check.map(health_from_docker).transpose()?,
        secrets: secrets.map(secret_from_docker).collect::<Result<_, _>>()?,
        configs: configs.map(config_from_docker).collect::<Result<_, _>>()?,
        init: c.init.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        cap_add: c.capability_add.unwrap_or_default(),
        cap_drop: c.capability_drop.unwrap_or_default(),
        read_only: c.read_only.unwrap_or(false),
        ulimits: (c.ulimits.unwrap_or_default().into_iter())
            .map(|u| Ulimit {
                name: u.name.unwrap_or_default(),
                soft: u.soft.unwrap_or(0),
                hard: u.hard.unwrap_or(0),
            })
            .collect(),
        sysctls: from_hash(c.sysctls),
        // Both keep Swarm's /etc/hosts form, "IP hostname [alias...]".
        hosts: c.hosts.unwrap_or_default(),
        registry_auth: auth,
    })
}

fn container_to_docker(c: &ContainerSpec) -> dk::TaskSpecContainerSpec {
    dk::TaskSpecContainerSpec {
        image: Some(c.image.clone()),
        labels: omit_empty(to_hash(&c.labels)),
        command: omit_empty(c.command.clone()),
        args: omit_empty(c.args.clone()),
        hostname: omit_empty(c.hostname.clone()),
        env: omit_empty(c.env.clone()),
        dir: omit_empty(c.dir.clone()),
        user: omit_empty(c.user.clone()),
        tty: omit_empty(c.tty),
        read_only: omit_empty(c.read_only),
        mounts: omit_empty(c.mounts.iter().map(mount_to_docker).collect()),
        stop_signal: omit_empty(c.stop_signal.clone()),
        stop_grace_period: nanos(c.stop_grace_period.as_ref()),
        health_check: c.healthcheck.as_ref().map(health_to_docker),
        hosts: omit_empty(c.hosts.clone()),
        secrets: omit_empty(c.secrets.iter().map(secret_to_docker).collect()),
        configs: omit_empty(c.configs.iter().map(config_to_docker).collect()),
        init: c.init.then_some(true),
        sysctls: omit_empty(to_hash(&c.sysctls)),
        capability_add: omit_empty(c.cap_add.clone()),
        capability_drop: omit_empty(c.cap_drop.clone()),
        ulimits: omit_empty(
            (c.ulimits.iter())
                .map(|u| dk::ResourcesUlimits {
                    name: Some(u.name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect(),
        ),
        ..Default::default()
    }
}

/// Security options, groups, DNS and OOM tuning change what runs, and
/// Shoal's engines do not apply them; their empty forms are accepted.
/// `OpenStdin` is ignored: nothing attaches to a service task's stdin.
fn refuse_unsupported_container(c: &dk::TaskSpecContainerSpec) -> Result<(), String> {
    use dk::TaskSpecContainerSpecIsolationEnum as Iso;
    let dns = c.dns_config.clone().unwrap_or_default();
    refuse(
        CONTAINER,
        [
            ("Groups", is_set(&c.groups)),
            (
                "Privileges",
                c.privileges
                    .as_ref()
                    .is_some_and(|p| !default_privileges(p)),
            ),
            (
                "DNSConfig",
                is_set(&dns.nameservers) || is_set(&dns.search) || is_set(&dns.options),
            ),
            ("OomScoreAdj", is_set(&c.oom_score_adj)),
            (
                "Isolation",
                matches!(c.isolation, Some(Iso::PROCESS | Iso::HYPERV)),
            ),
        ],
    )
}

/// Privileges asking for nothing beyond the engine's defaults.
fn default_privileges(p: &dk::TaskSpecContainerSpecPrivileges) -> bool {
    use dk::TaskSpecContainerSpecPrivilegesAppArmorModeEnum as AppArmor;
    use dk::TaskSpecContainerSpecPrivilegesSeccompModeEnum as Seccomp;
    let cred = p.credential_spec.as_ref();
    let selinux = p.se_linux_context.as_ref();
    cred.is_none_or(|c| !is_set(&c.config) && !is_set(&c.file) && !is_set(&c.registry))
        && selinux.is_none_or(|s| {
            !is_set(&s.disable)
                && [&s.user, &s.role, &s.typ, &s.level]
                    .into_iter()
                    .all(|v| !is_set(v))
        })
        && (p.seccomp.as_ref()).is_none_or(|s| {
            matches!(s.mode, None | Some(Seccomp::EMPTY | Seccomp::DEFAULT)) && !is_set(&s.profile)
        })
        && (p.app_armor.as_ref())
            .is_none_or(|a| matches!(a.mode, None | Some(AppArmor::EMPTY | AppArmor::DEFAULT)))
        && !is_set(&p.no_new_privileges)
}

fn mount_from_docker((i, m): (usize, dk::Mount)) -> Result<Mount, String> {
    use dk::MountBindOptionsPropagationEnum as Propagation;
    let field = format!("{CONTAINER}.Mounts[{i}]");
    let r#type = match m.typ {
        Some(dk::MountType::VOLUME) => mount::Type::Volume,
        Some(dk::MountType::BIND) => mount::Type::Bind,
        Some(dk::MountType::TMPFS) => mount::Type::Tmpfs,
        None => return Err(format!("{field}.Type is required")),
        Some(t) => {
            return Err(format!(
                "{field}.Type {t:?} is not supported by Shoal: use volume, bind or tmpfs"
            ));
        }
    };
    let volume = m.volume_options.unwrap_or_default();
    let tmpfs = m.tmpfs_options.unwrap_or_default();
    let bind = m.bind_options.unwrap_or_default();
    let propagation = matches!(
        bind.propagation,
        None | Some(Propagation::EMPTY | Propagation::RPRIVATE)
    );
    let bind_flags = [
        bind.non_recursive,
        bind.create_mountpoint,
        bind.read_only_non_recursive,
    ];
    refuse(
        &field,
        [
            (
                "BindOptions",
                !propagation
                    || bind_flags.contains(&Some(true))
                    || is_set(&bind.read_only_force_recursive),
            ),
            ("VolumeOptions.Subpath", is_set(&volume.subpath)),
            ("TmpfsOptions.Options", is_set(&tmpfs.options)),
        ],
    )?;
    let driver = volume.driver_config.unwrap_or_default();
    Ok(Mount {
        r#type: r#type as i32,
        source: m.source.unwrap_or_default(),
        target: m.target.unwrap_or_default(),
        read_only: m.read_only.unwrap_or(false),
        tmpfs_size_bytes: unsigned(tmpfs.size_bytes, &format!("{field}.TmpfsOptions.SizeBytes"))?,
        tmpfs_mode: unsigned(tmpfs.mode, &format!("{field}.TmpfsOptions.Mode"))?,
        volume_labels: from_hash(volume.labels),
        volume_driver: driver.name.unwrap_or_default(),
        volume_options: from_hash(driver.options),
        volume_nocopy: volume.no_copy.unwrap_or(false),
    })
}

fn mount_to_docker(m: &Mount) -> dk::Mount {
    let driver = (!m.volume_driver.is_empty() || !m.volume_options.is_empty()).then(|| {
        dk::MountVolumeOptionsDriverConfig {
            name: omit_empty(m.volume_driver.clone()),
            options: omit_empty(to_hash(&m.volume_options)),
        }
    });
    let volume = (driver.is_some() || m.volume_nocopy || !m.volume_labels.is_empty()).then(|| {
        dk::MountVolumeOptions {
            no_copy: omit_empty(m.volume_nocopy),
            labels: omit_empty(to_hash(&m.volume_labels)),
            driver_config: driver,
            subpath: None,
        }
    });
    let tmpfs = (m.tmpfs_size_bytes != 0 || m.tmpfs_mode != 0).then(|| dk::MountTmpfsOptions {
        size_bytes: omit_empty(m.tmpfs_size_bytes),
        mode: omit_empty(i64::from(m.tmpfs_mode)),
        options: None,
    });
    dk::Mount {
        typ: Some(match m.r#type() {
            mount::Type::Volume => dk::MountType::VOLUME,
            mount::Type::Bind => dk::MountType::BIND,
            mount::Type::Tmpfs => dk::MountType::TMPFS,
        }),
        source: omit_empty(m.source.clone()),
        target: Some(m.target.clone()),
        read_only: omit_empty(m.read_only),
        volume_options: volume,
        tmpfs_options: tmpfs,
        ..Default::default()
    }
}

fn health_from_docker(h: dk::HealthConfig) -> Result<HealthConfig, String> {
    let field = |name: &str| format!("{CONTAINER}.HealthCheck.{name}");
    refuse(
        &format!("{CONTAINER}.HealthCheck"),
        [("StartInterval", is_set(&h.start_interval))],
    )?;
    Ok(HealthConfig {
        test: h.test.unwrap_or_default(),
        interval: duration(h.interval, &field("Interval"))?,
        timeout: duration(h.timeout, &field("Timeout"))?,
        retries: unsigned(h.retries, &field("Retries"))?,
        start_period: duration(h.start_period, &field("StartPeriod"))?,
    })
}

fn health_to_docker(h: &HealthConfig) -> dk::HealthConfig {
    dk::HealthConfig {
        test: omit_empty(h.test.clone()),
        interval: nanos(h.interval.as_ref()),
        timeout: nanos(h.timeout.as_ref()),
        retries: omit_empty(i64::from(h.retries)),
        start_period: nanos(h.start_period.as_ref()),
        start_interval: None,
    }
}

/// A secret's or config's file; Docker writes owners as decimal strings
/// and leaves the mode out for its default, 0444.
fn file_from_docker(
    field: &str,
    name: Option<String>,
    uid: Option<String>,
    gid: Option<String>,
    mode: Option<u32>,
) -> Result<FileTarget, String> {
    let id = |v: Option<String>, what: &str| {
        let v = v.unwrap_or_default();
        match v.as_str() {
            "" => Ok(0),
            _ => (v.parse())
                .map_err(|_| format!("invalid {field}.File.{what} {v:?}: expected a number")),
        }
    };
    Ok(FileTarget {
        name: name.unwrap_or_default(),
        uid: id(uid, "UID")?,
        gid: id(gid, "GID")?,
        mode: mode.unwrap_or(0o444),
    })
}

fn secret_from_docker(
    (i, s): (usize, dk::TaskSpecContainerSpecSecrets),
) -> Result<SecretReference, String> {
    let field = format!("{CONTAINER}.Secrets[{i}]");
    let target = (s.file)
        .map(|f| file_from_docker(&field, f.name, f.uid, f.gid, f.mode))
        .transpose()?;
    Ok(SecretReference {
        secret_id: s.secret_id.unwrap_or_default(),
        secret_name: s.secret_name.unwrap_or_default(),
        target,
    })
}

/// Runtime configs hold Windows credential specs, which Shoal has not.
fn config_from_docker(
    (i, c): (usize, dk::TaskSpecContainerSpecConfigs),
) -> Result<ConfigReference, String> {
    let field = format!("{CONTAINER}.Configs[{i}]");
    if c.runtime.is_some() {
        return Err(unsupported(&format!("{field}.Runtime")));
    }
    let target = (c.file)
        .map(|f| file_from_docker(&field, f.name, f.uid, f.gid, f.mode))
        .transpose()?;
    Ok(ConfigReference {
        config_id: c.config_id.unwrap_or_default(),
        config_name: c.config_name.unwrap_or_default(),
        target,
    })
}

/// Both file types of the API have the same fields.
macro_rules! file_to_docker {
    ($ty:ident, $t:expr) => {
        $t.map(|t| dk::$ty {
            name: Some(t.name.clone()),
            uid: Some(t.uid.to_string()),
            gid: Some(t.gid.to_string()),
            mode: Some(t.mode),
        })
    };
}

fn secret_to_docker(s: &SecretReference) -> dk::TaskSpecContainerSpecSecrets {
    dk::TaskSpecContainerSpecSecrets {
        file: file_to_docker!(TaskSpecContainerSpecFile, s.target.as_ref()),
        secret_id: Some(s.secret_id.clone()),
        secret_name: Some(s.secret_name.clone()),
    }
}

fn config_to_docker(c: &ConfigReference) -> dk::TaskSpecContainerSpecConfigs {
    dk::TaskSpecContainerSpecConfigs {
        file: file_to_docker!(TaskSpecContainerSpecFile1, c.target.as_ref()),
        runtime: None,
        config_id: Some(c.config_id.clone()),
        config_name: Some(c.config_name.clone()),
    }
}

/// A task as GET /tasks answers it.
pub fn task_to_docker(task: &Task) -> dk::Task {
    let (created_at, updated_at) = times(task.meta.as_ref());
    let labels = task.annotations.as_ref().map(|a| to_hash(&a.labels));
    dk::Task {
        id: Some(task.id.clone()),
        version: version(task.meta.as_ref()),
        created_at,
        updated_at,
        // Docker leaves it empty: clients build `service.slot` names.
        name: None,
        labels: Some(labels.unwrap_or_default()),
        spec: task.spec.as_ref().map(task_spec_to_docker),
        service_id: Some(task.service_id.clone()),
        // Global tasks have no slot; Docker's clients use the node instead.
        slot: (task.slot != 0).then(|| signed(task.slot)),
        node_id: omit_empty(task.node_id.clone()),
        assigned_generic_resources: None,
        status: Some(status_to_docker(task.status.as_ref())),
        desired_state: Some(docker_state(task.desired_state())),
        job_iteration: (task.job_iteration != 0).then_some(dk::ObjectVersion {
            index: Some(task.job_iteration),
        }),
    }
}

/// [`task_to_docker`] as JSON, with `NetworksAttachments`, which
/// bollard's type lacks (the Engine API's schema leaves it out too).
pub fn task_json(task: &Task) -> Value {
    let mut v = serde_json::to_value(task_to_docker(task)).unwrap_or_default();
    if !task.networks.is_empty() {
        v["NetworksAttachments"] = task.networks.iter().map(attachment_json).collect();
    }
    v
}

fn status_to_docker(s: Option<&TaskStatus>) -> dk::TaskStatus {
    let s = s.cloned().unwrap_or_default();
    dk::TaskStatus {
        timestamp: rfc3339(s.timestamp.as_ref()).or_else(|| Some(ZERO_TIME.into())),
        state: Some(docker_state(s.state())),
        message: omit_empty(s.message.clone()),
        err: omit_empty(s.err.clone()),
        container_status: s.container.as_ref().map(|c| dk::ContainerStatus {
            container_id: omit_empty(c.container_id.clone()),
            pid: omit_empty(i64::from(c.pid)),
            exit_code: omit_empty(i64::from(c.exit_code)),
        }),
        port_status: Some(dk::PortStatus {
            ports: omit_empty(s.ports.iter().map(port_to_docker).collect()),
        }),
    }
}

fn attachment_json(a: &NetworkAttachment) -> Value {
    json!({ "Network": a.network.as_ref().map(network_json), "Addresses": a.addresses })
}

/// A network as Docker's swarm `Network` object shows it.
fn network_json(n: &Network) -> Value {
    let spec = n.spec.clone().unwrap_or_default();
    let annotations = spec.annotations.unwrap_or_default();
    let (created, updated) = times(n.meta.as_ref());
    let driver = |d: Option<Driver>| d.map(|d| json!({ "Name": d.name, "Options": d.options }));
    let ipam = |i: Option<IpamOptions>| {
        i.map(|i| {
            let configs = i
                .configs
                .iter()
                .map(|c| json!({ "Subnet": c.subnet, "Range": c.range, "Gateway": c.gateway }));
            json!({ "Driver": driver(i.driver), "Configs": configs.collect::<Vec<_>>() })
        })
    };
    json!({
        "ID": n.id,
        "Version": version(n.meta.as_ref()),
        "CreatedAt": created,
        "UpdatedAt": updated,
        "Spec": {
            "Name": annotations.name,
            "Labels": annotations.labels,
            "DriverConfiguration": driver(spec.driver_config),
            "Internal": spec.internal,
            "Attachable": spec.attachable,
            "Ingress": spec.ingress,
            "IPAMOptions": ipam(spec.ipam),
            "Scope": "swarm",
        },
        "DriverState": driver(n.driver_state.clone()),
        "IPAMOptions": ipam(n.ipam.clone()),
    })
}

/// The Shoal task state a Docker name ("running", "shutdown", "accepted", ...) means, for the desired-state filter.
/// Docker's "allocated" has no Shoal counterpart (Shoal's allocator works
/// on pending tasks), so it means none.
pub fn state_from_name(name: &str) -> Option<TaskState> {
    TaskState::from_str_name(&format!("TASK_STATE_{}", name.trim().to_ascii_uppercase()))
}

/// The API's state: the same lower-case names.
pub(super) fn docker_state(state: TaskState) -> dk::TaskState {
    state.docker_name().parse().unwrap_or_default()
}
