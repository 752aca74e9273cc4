//! Services in the Engine API's types: the create/update body as Shoal's
//! spec, and a service as inspect and list show it.
//!
//! The spec must survive Docker's read-modify-write: `docker service
//! scale` or `update` reads the spec, edits one field and sends the whole
//! of it back, so Shoal → Docker → Shoal gives the same spec (an unchanged
//! task template starts no rolling update).

use bollard::models as dk;
use serde_json::Value;
use shoal_proto::objects::{
    Annotations, Endpoint, EndpointSpec, GlobalJob, GlobalService, NetworkAttachmentConfig,
    Placement, PlacementPreference, Platform, PortConfig, RegistryAuth, ReplicatedJob,
    ReplicatedService, ResourceRequirements, Resources, RestartPolicy, Service, ServiceSpec,
    UpdateConfig, VirtualIp, endpoint_spec, port_config, restart_policy, service_spec::Mode,
    update_config, update_status,
};

use super::task::{task_spec_from_docker, task_spec_to_docker};
use super::{
    duration, from_hash, is_set, nanos, omit_empty, rfc3339, signed, times, to_hash, unsigned,
    unsupported, version,
};

/// The enumerations of a spec: where (`*`: each item of a list) and the
/// values each takes (`""`: the default).
#[rustfmt::skip]
const ENUMS: &[(&str, &[&str])] = &[
    ("TaskTemplate.RestartPolicy.Condition", &["", "none", "on-failure", "any"]),
    ("UpdateConfig.FailureAction", &["", "pause", "continue", "rollback"]),
    ("UpdateConfig.Order", &["", "stop-first", "start-first"]),
    ("RollbackConfig.FailureAction", &["", "pause", "continue"]),
    ("RollbackConfig.Order", &["", "stop-first", "start-first"]),
    ("EndpointSpec.Mode", &["", "vip", "dnsrr"]),
    ("EndpointSpec.Ports.*.Protocol", &["", "tcp", "udp", "sctp"]),
    ("EndpointSpec.Ports.*.PublishMode", &["", "ingress", "host"]),
    ("TaskTemplate.ContainerSpec.Mounts.*.Type", &["bind", "volume", "tmpfs", "image", "npipe", "cluster"]),
    ("TaskTemplate.ContainerSpec.Isolation", &["", "default", "process", "hyperv"]),
];

/// A create/update request body as the API's spec, read as Docker's daemon
/// reads it: keys matched regardless of case (see `docker_api::json`), and
/// an unknown enumeration value refused naming its field, where serde
/// alone would only say "unknown variant".
pub fn parse_spec(body: &[u8]) -> Result<dk::ServiceSpec, String> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    crate::docker_api::json::canonical_keys::<dk::ServiceSpec>(&mut v);
    for (path, allowed) in ENUMS {
        let mut found = Vec::new();
        values_at(&v, &path.split('.').collect::<Vec<_>>(), &mut found);
        if let Some(bad) = found.into_iter().find(|s| !allowed.contains(s)) {
            let expected: Vec<_> = allowed.iter().filter(|a| !a.is_empty()).collect();
            return Err(format!(
                "invalid {path} {bad:?}: expected one of {expected:?}"
            ));
        }
    }
    serde_json::from_value(v).map_err(|e| format!("invalid service spec: {e}"))
}

/// The strings at `path` in `v`.
fn values_at<'a>(v: &'a Value, path: &[&str], out: &mut Vec<&'a str>) {
    match path.split_first() {
        None => out.extend(v.as_str()),
        Some((&"*", rest)) => {
            for item in v.as_array().into_iter().flatten() {
                values_at(item, rest, out);
            }
        }
        Some((key, rest)) => {
            if let Some(next) = v.get(key) {
                values_at(next, rest, out);
            }
        }
    }
}

/// A create/update body as Shoal's spec. Err is a message for a 400 answer (say which field is wrong).
pub fn spec_from_docker(
    spec: dk::ServiceSpec,
    auth: Option<RegistryAuth>,
) -> Result<ServiceSpec, String> {
    let mut task = (spec.task_template)
        .map(|t| task_spec_from_docker(t, auth))
        .transpose()?;
    // Before API 1.44 networks were the service's; Docker moves them into
    // the template when that names none.
    let legacy = networks_from_docker(spec.networks, "Networks")?;
    if !legacy.is_empty() {
        let task = task.get_or_insert_default();
        if task.networks.is_empty() {
            task.networks = legacy;
        }
    }
    let rollback: Option<dk::ServiceSpecUpdateConfig> = spec.rollback_config.map(recast);
    Ok(ServiceSpec {
        annotations: Some(Annotations {
            name: spec.name.unwrap_or_default(),
            labels: from_hash(spec.labels),
        }),
        task,
        mode: Some(mode_from_docker(spec.mode.unwrap_or_default())?),
        update: (spec.update_config)
            .map(|u| rollout_from_docker(u, "UpdateConfig"))
            .transpose()?,
        rollback: rollback
            .map(|r| rollout_from_docker(r, "RollbackConfig"))
            .transpose()?,
        networks: Vec::new(),
        endpoint: spec.endpoint_spec.map(endpoint_from_docker).transpose()?,
    })
}

/// Shoal's spec as Docker shows it (inspect, and what clients send back on update).
pub fn spec_to_docker(spec: &ServiceSpec) -> dk::ServiceSpec {
    let annotations = spec.annotations.clone().unwrap_or_default();
    let mut task = spec
        .task
        .as_ref()
        .map(task_spec_to_docker)
        .unwrap_or_default();
    if task.networks.is_none() {
        task.networks = networks_to_docker(&spec.networks);
    }
    let rollback = spec.rollback.as_ref().map(|r| {
        let mut u = rollout_to_docker(r);
        // Docker's rollbacks cannot roll back; Shoal's pause then too.
        if u.failure_action == Some(dk::ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK) {
            u.failure_action = Some(dk::ServiceSpecUpdateConfigFailureActionEnum::PAUSE);
        }
        recast(u)
    });
    dk::ServiceSpec {
        name: Some(annotations.name),
        labels: Some(to_hash(&annotations.labels)),
        task_template: Some(task),
        mode: Some(mode_to_docker(spec.mode.as_ref())),
        update_config: spec.update.as_ref().map(rollout_to_docker),
        rollback_config: rollback,
        networks: None,
        endpoint_spec: spec.endpoint.as_ref().map(endpoint_spec_to_docker),
    }
}

/// The API's update and rollback configs differ in type only: one as
/// the other through their common JSON.
fn recast<A: serde::Serialize, B: serde::de::DeserializeOwned + Default>(a: A) -> B {
    serde_json::to_value(a)
        .and_then(serde_json::from_value)
        .unwrap_or_default()
}

/// A count Docker defaults to `default` when absent.
fn count(v: Option<i64>, default: u64, field: &str) -> Result<u64, String> {
    v.map_or(Ok(default), |n| unsigned(Some(n), field))
}

/// Docker's defaults: one replica; a job runs one at a time, as many
/// times as it runs at once.
fn mode_from_docker(m: dk::ServiceSpecMode) -> Result<Mode, String> {
    let given = [
        m.replicated.is_some(),
        m.global.is_some(),
        m.replicated_job.is_some(),
        m.global_job.is_some(),
    ];
    if given.into_iter().filter(|g| *g).count() > 1 {
        return Err(
            "Mode: only one of Replicated, Global, ReplicatedJob or GlobalJob may be set".into(),
        );
    }
    if m.global.is_some() {
        return Ok(Mode::Global(GlobalService {}));
    }
    if m.global_job.is_some() {
        return Ok(Mode::GlobalJob(GlobalJob {}));
    }
    if let Some(job) = m.replicated_job {
        let max_concurrent = count(job.max_concurrent, 1, "Mode.ReplicatedJob.MaxConcurrent")?;
        let total_completions = count(
            job.total_completions,
            max_concurrent,
            "Mode.ReplicatedJob.TotalCompletions",
        )?;
        return Ok(Mode::ReplicatedJob(ReplicatedJob {
            max_concurrent,
            total_completions,
        }));
    }
    let replicas = m.replicated.and_then(|r| r.replicas);
    Ok(Mode::Replicated(ReplicatedService {
        replicas: count(replicas, 1, "Mode.Replicated.Replicas")?,
    }))
}

fn mode_to_docker(mode: Option<&Mode>) -> dk::ServiceSpecMode {
    let replicated = |replicas| dk::ServiceSpecMode {
        replicated: Some(dk::ServiceSpecModeReplicated {
            replicas: Some(replicas),
        }),
        ..Default::default()
    };
    match mode {
        None => replicated(1),
        Some(Mode::Replicated(r)) => replicated(signed(r.replicas)),
        Some(Mode::Global(_)) => dk::ServiceSpecMode {
            global: Some(Default::default()),
            ..Default::default()
        },
        Some(Mode::ReplicatedJob(j)) => dk::ServiceSpecMode {
            replicated_job: Some(dk::ServiceSpecModeReplicatedJob {
                max_concurrent: Some(signed(j.max_concurrent)),
                total_completions: Some(signed(j.total_completions)),
            }),
            ..Default::default()
        },
        Some(Mode::GlobalJob(_)) => dk::ServiceSpecMode {
            global_job: Some(Default::default()),
            ..Default::default()
        },
    }
}

/// An update or rollback config (`field` says which).
fn rollout_from_docker(
    u: dk::ServiceSpecUpdateConfig,
    field: &str,
) -> Result<UpdateConfig, String> {
    use dk::ServiceSpecUpdateConfigFailureActionEnum as A;
    use dk::ServiceSpecUpdateConfigOrderEnum as O;
    let f = |name: &str| format!("{field}.{name}");
    let failure_action = match u.failure_action {
        None | Some(A::EMPTY | A::PAUSE) => update_config::FailureAction::Pause,
        Some(A::CONTINUE) => update_config::FailureAction::Continue,
        Some(A::ROLLBACK) => update_config::FailureAction::Rollback,
    };
    let order = match u.order {
        None | Some(O::EMPTY | O::STOP_FIRST) => update_config::Order::StopFirst,
        Some(O::START_FIRST) => update_config::Order::StartFirst,
    };
    let ratio = u.max_failure_ratio.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&ratio) {
        return Err(format!(
            "{} must be between 0 and 1, not {ratio}",
            f("MaxFailureRatio")
        ));
    }
    Ok(UpdateConfig {
        parallelism: unsigned(u.parallelism, &f("Parallelism"))?,
        delay: duration(u.delay, &f("Delay"))?,
        failure_action: failure_action as i32,
        monitor: duration(u.monitor, &f("Monitor"))?,
        max_failure_ratio: ratio as f32,
        order: order as i32,
    })
}

fn rollout_to_docker(u: &UpdateConfig) -> dk::ServiceSpecUpdateConfig {
    use dk::ServiceSpecUpdateConfigFailureActionEnum as A;
    use dk::ServiceSpecUpdateConfigOrderEnum as O;
    dk::ServiceSpecUpdateConfig {
        parallelism: Some(signed(u.parallelism)),
        delay: nanos(u.delay.as_ref()),
        failure_action: Some(match u.failure_action() {
            update_config::FailureAction::Pause => A::PAUSE,
            update_config::FailureAction::Continue => A::CONTINUE,
            update_config::FailureAction::Rollback => A::ROLLBACK,
        }),
        monitor: nanos(u.monitor.as_ref()),
        // Through its decimal form, so 0.2 shows as 0.2, not 0.200000003.
        max_failure_ratio: Some(u.max_failure_ratio.to_string().parse().unwrap_or_default()),
        order: Some(match u.order() {
            update_config::Order::StopFirst => O::STOP_FIRST,
            update_config::Order::StartFirst => O::START_FIRST,
        }),
    }
}

fn endpoint_from_docker(e: dk::EndpointSpec) -> Result<EndpointSpec, String> {
    let mode = match e.mode {
        Some(dk::EndpointSpecModeEnum::DNSRR) => endpoint_spec::ResolutionMode::Dnsrr,
        _ => endpoint_spec::ResolutionMode::Vip,
    };
    let ports = e.ports.unwrap_or_default().into_iter().enumerate();
    Ok(EndpointSpec {
        mode: mode as i32,
        ports: ports.map(port_from_docker).collect::<Result<_, _>>()?,
    })
}

fn port_from_docker((i, p): (usize, dk::EndpointPortConfig)) -> Result<PortConfig, String> {
    use dk::EndpointPortConfigProtocolEnum as P;
    let number = |v: Option<i64>, name: &str| {
        unsigned::<u16>(v, &format!("EndpointSpec.Ports[{i}].{name}")).map(u32::from)
    };
    let protocol = match p.protocol {
        Some(P::UDP) => port_config::Protocol::Udp,
        Some(P::SCTP) => port_config::Protocol::Sctp,
        _ => port_config::Protocol::Tcp,
    };
    let publish_mode = match p.publish_mode {
        Some(dk::EndpointPortConfigPublishModeEnum::HOST) => port_config::PublishMode::Host,
        _ => port_config::PublishMode::Ingress,
    };
    Ok(PortConfig {
        name: p.name.unwrap_or_default(),
        protocol: protocol as i32,
        target_port: number(p.target_port, "TargetPort")?,
        published_port: number(p.published_port, "PublishedPort")?,
        publish_mode: publish_mode as i32,
    })
}

/// A port as specs, endpoints and task statuses show it.
pub(super) fn port_to_docker(p: &PortConfig) -> dk::EndpointPortConfig {
    use dk::EndpointPortConfigProtocolEnum as P;
    use dk::EndpointPortConfigPublishModeEnum as M;
    dk::EndpointPortConfig {
        name: omit_empty(p.name.clone()),
        protocol: Some(match p.protocol() {
            port_config::Protocol::Tcp => P::TCP,
            port_config::Protocol::Udp => P::UDP,
            port_config::Protocol::Sctp => P::SCTP,
        }),
        target_port: Some(i64::from(p.target_port)),
        published_port: omit_empty(i64::from(p.published_port)),
        publish_mode: Some(match p.publish_mode() {
            port_config::PublishMode::Ingress => M::INGRESS,
            port_config::PublishMode::Host => M::HOST,
        }),
    }
}

fn endpoint_spec_to_docker(e: &EndpointSpec) -> dk::EndpointSpec {
    dk::EndpointSpec {
        mode: Some(match e.mode() {
            endpoint_spec::ResolutionMode::Vip => dk::EndpointSpecModeEnum::VIP,
            endpoint_spec::ResolutionMode::Dnsrr => dk::EndpointSpecModeEnum::DNSRR,
        }),
        ports: omit_empty(e.ports.iter().map(port_to_docker).collect()),
    }
}

// The scheduling half of the task template: what the orchestrator and
// scheduler read (the container half is in `task`).

/// Limits and reservations; Docker's absent fields are zero, Shoal's "none".
pub(super) fn resources_from_docker(
    r: dk::TaskSpecResources,
) -> Result<ResourceRequirements, String> {
    let field = |name: &str| format!("TaskTemplate.Resources.{name}");
    let limits = r.limits.map(|l| -> Result<_, String> {
        Ok(Resources {
            nano_cpus: unsigned(l.nano_cpus, &field("Limits.NanoCPUs"))?,
            memory_bytes: unsigned(l.memory_bytes, &field("Limits.MemoryBytes"))?,
            pids: unsigned(l.pids, &field("Limits.Pids"))?,
        })
    });
    let reservations = r.reservations.map(|l| -> Result<_, String> {
        Ok(Resources {
            nano_cpus: unsigned(l.nano_cpus, &field("Reservations.NanoCPUs"))?,
            memory_bytes: unsigned(l.memory_bytes, &field("Reservations.MemoryBytes"))?,
            pids: 0,
        })
    });
    Ok(ResourceRequirements {
        limits: limits.transpose()?,
        reservations: reservations.transpose()?,
    })
}

pub(super) fn resources_to_docker(r: &ResourceRequirements) -> dk::TaskSpecResources {
    dk::TaskSpecResources {
        limits: r.limits.as_ref().map(|l| dk::Limit {
            nano_cpus: omit_empty(l.nano_cpus),
            memory_bytes: omit_empty(l.memory_bytes),
            pids: omit_empty(l.pids),
        }),
        reservations: r.reservations.as_ref().map(|l| dk::ResourceObject {
            nano_cpus: omit_empty(l.nano_cpus),
            memory_bytes: omit_empty(l.memory_bytes),
            generic_resources: None,
        }),
        ..Default::default()
    }
}

pub(super) fn restart_from_docker(r: dk::TaskSpecRestartPolicy) -> Result<RestartPolicy, String> {
    use dk::TaskSpecRestartPolicyConditionEnum as C;
    let field = |name: &str| format!("TaskTemplate.RestartPolicy.{name}");
    let condition = match r.condition {
        None | Some(C::EMPTY | C::ANY) => restart_policy::Condition::Any,
        Some(C::ON_FAILURE) => restart_policy::Condition::OnFailure,
        Some(C::NONE) => restart_policy::Condition::None,
    };
    Ok(RestartPolicy {
        condition: condition as i32,
        delay: duration(r.delay, &field("Delay"))?,
        max_attempts: unsigned(r.max_attempts, &field("MaxAttempts"))?,
        window: duration(r.window, &field("Window"))?,
    })
}

pub(super) fn restart_to_docker(r: &RestartPolicy) -> dk::TaskSpecRestartPolicy {
    use dk::TaskSpecRestartPolicyConditionEnum as C;
    dk::TaskSpecRestartPolicy {
        condition: Some(match r.condition() {
            restart_policy::Condition::Any => C::ANY,
            restart_policy::Condition::OnFailure => C::ON_FAILURE,
            restart_policy::Condition::None => C::NONE,
        }),
        delay: nanos(r.delay.as_ref()),
        max_attempts: Some(signed(r.max_attempts)),
        window: nanos(r.window.as_ref()),
    }
}

/// Constraints, spread preferences, platforms and the per-node cap; a
/// preference without a spread descriptor means nothing and is dropped.
pub(super) fn placement_from_docker(p: dk::TaskSpecPlacement) -> Result<Placement, String> {
    Ok(Placement {
        constraints: p.constraints.unwrap_or_default(),
        preferences: (p.preferences.unwrap_or_default().into_iter())
            .filter_map(|p| p.spread?.spread_descriptor.filter(|d| !d.is_empty()))
            .map(|spread_descriptor| PlacementPreference { spread_descriptor })
            .collect(),
        platforms: (p.platforms.unwrap_or_default().into_iter())
            .map(|p| Platform {
                architecture: p.architecture.unwrap_or_default(),
                os: p.os.unwrap_or_default(),
            })
            .collect(),
        max_replicas: unsigned(p.max_replicas, "TaskTemplate.Placement.MaxReplicas")?,
    })
}

pub(super) fn placement_to_docker(p: &Placement) -> dk::TaskSpecPlacement {
    let spread = |p: &PlacementPreference| dk::TaskSpecPlacementPreferences {
        spread: Some(dk::TaskSpecPlacementSpread {
            spread_descriptor: Some(p.spread_descriptor.clone()),
        }),
    };
    let platform = |p: &Platform| dk::Platform {
        architecture: omit_empty(p.architecture.clone()),
        os: omit_empty(p.os.clone()),
    };
    dk::TaskSpecPlacement {
        constraints: omit_empty(p.constraints.clone()),
        preferences: omit_empty(p.preferences.iter().map(spread).collect()),
        max_replicas: omit_empty(signed(p.max_replicas)),
        platforms: omit_empty(p.platforms.iter().map(platform).collect()),
    }
}

/// Network attachments; targets stay as given (name or id: the manager
/// resolves either).
pub(super) fn networks_from_docker(
    list: Option<Vec<dk::NetworkAttachmentConfig>>,
    field: &str,
) -> Result<Vec<NetworkAttachmentConfig>, String> {
    let one = |(i, n): (usize, dk::NetworkAttachmentConfig)| {
        if is_set(&n.driver_opts) {
            return Err(unsupported(&format!("{field}[{i}].DriverOpts")));
        }
        Ok(NetworkAttachmentConfig {
            target: n.target.unwrap_or_default(),
            aliases: n.aliases.unwrap_or_default(),
        })
    };
    list.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(one)
        .collect()
}

pub(super) fn networks_to_docker(
    list: &[NetworkAttachmentConfig],
) -> Option<Vec<dk::NetworkAttachmentConfig>> {
    let one = |n: &NetworkAttachmentConfig| dk::NetworkAttachmentConfig {
        target: Some(n.target.clone()),
        aliases: omit_empty(n.aliases.clone()),
        driver_opts: None,
    };
    omit_empty(list.iter().map(one).collect())
}

/// A service as GET /services and /services/{id} answer it. `status` is set when the client asked `status=true`.
pub fn service_to_docker(
    service: &Service,
    status: Option<dk::ServiceServiceStatus>,
) -> dk::Service {
    let (created_at, updated_at) = times(service.meta.as_ref());
    let is_job = matches!(
        service.spec.as_ref().and_then(|s| s.mode.as_ref()),
        Some(Mode::ReplicatedJob(_) | Mode::GlobalJob(_))
    );
    let job = service.job_status.unwrap_or_default();
    dk::Service {
        id: Some(service.id.clone()),
        version: version(service.meta.as_ref()),
        created_at,
        updated_at,
        spec: service.spec.as_ref().map(spec_to_docker),
        endpoint: Some(endpoint_to_docker(service)),
        update_status: service.update_status.as_ref().and_then(|u| {
            use dk::ServiceUpdateStatusStateEnum as S;
            let state = match u.state() {
                update_status::State::Unknown => return None,
                update_status::State::Updating => S::UPDATING,
                update_status::State::Paused => S::PAUSED,
                update_status::State::Completed => S::COMPLETED,
                update_status::State::RollbackStarted => S::ROLLBACK_STARTED,
                update_status::State::RollbackPaused => S::ROLLBACK_PAUSED,
                update_status::State::RollbackCompleted => S::ROLLBACK_COMPLETED,
            };
            Some(dk::ServiceUpdateStatus {
                state: Some(state),
                started_at: rfc3339(u.started_at.as_ref()),
                completed_at: rfc3339(u.completed_at.as_ref()),
                message: omit_empty(u.message.clone()),
            })
        }),
        service_status: status,
        job_status: is_job.then(|| dk::ServiceJobStatus {
            job_iteration: Some(dk::ObjectVersion {
                index: Some(job.job_iteration),
            }),
            last_execution: rfc3339(job.last_execution.as_ref()),
        }),
    }
}

/// [`service_to_docker`] as JSON, with the `PreviousSpec` Docker shows
/// after an update, which bollard's type lacks.
pub fn service_json(service: &Service, status: Option<dk::ServiceServiceStatus>) -> Value {
    let mut v = serde_json::to_value(service_to_docker(service, status)).unwrap_or_default();
    if let Some(previous) = &service.previous_spec {
        v["PreviousSpec"] = serde_json::to_value(spec_to_docker(previous)).unwrap_or_default();
    }
    v
}

/// The endpoint: its spec, the ports as published (dynamic ones with the
/// number the allocator gave) and a virtual IP per network.
fn endpoint_to_docker(service: &Service) -> dk::ServiceEndpoint {
    let none = Endpoint::default();
    let endpoint = service.endpoint.as_ref().unwrap_or(&none);
    let spec = (endpoint.spec.as_ref()).or(service.spec.as_ref().and_then(|s| s.endpoint.as_ref()));
    let vip = |v: &VirtualIp| dk::ServiceEndpointVirtualIps {
        network_id: Some(v.network_id.clone()),
        addr: Some(v.addr.clone()),
    };
    dk::ServiceEndpoint {
        spec: Some(spec.map(endpoint_spec_to_docker).unwrap_or_default()),
        ports: omit_empty(endpoint.ports.iter().map(port_to_docker).collect()),
        virtual_ips: omit_empty(endpoint.virtual_ips.iter().map(vip).collect()),
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
