//! From the model to control-API specs, named and labelled as Docker's
//! `stack deploy` does: objects are `STACK_key` (unless `name:` or
//! `external` says otherwise), every object carries
//! `com.docker.stack.namespace=STACK`, services also
//! `com.docker.stack.image`, and services without networks join
//! `STACK_default`. References to networks, secrets and configs are by
//! name here; the deploy resolves them to ids.

use std::collections::BTreeMap;

use shoal_proto::objects::{
    Annotations, ConfigReference, ConfigSpec, ContainerSpec, Driver, EndpointSpec, FileTarget,
    GlobalJob, GlobalService, IpamConfig, IpamOptions, Mount, NetworkAttachmentConfig, NetworkSpec,
    ReplicatedJob, ReplicatedService, SecretReference, SecretSpec, ServiceSpec, TaskSpec, mount,
    service_spec::Mode,
};

use super::model::{FileObject, ModeKind, Network, Project, Service};

pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
pub const IMAGE_LABEL: &str = "com.docker.stack.image";

/// Everything a stack deploy asks for.
#[derive(Debug, Default)]
pub struct Desired {
    /// Networks the stack owns (created when missing).
    pub networks: Vec<NetworkSpec>,
    /// Names of external networks (must exist).
    pub external_networks: Vec<String>,
    pub secrets: Vec<SecretSpec>,
    pub external_secrets: Vec<String>,
    pub configs: Vec<ConfigSpec>,
    pub external_configs: Vec<String>,
    /// Specs whose network targets and secret/config references hold
    /// names, not ids.
    pub services: Vec<ServiceSpec>,
}

fn scoped(stack: &str, key: &str, explicit: &str) -> String {
    if explicit.is_empty() {
        format!("{stack}_{key}")
    } else {
        explicit.to_string()
    }
}

fn labels(stack: &str, own: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut l = own.clone();
    l.insert(NAMESPACE_LABEL.into(), stack.into());
    l
}

fn annotations(name: String, labels: BTreeMap<String, String>) -> Option<Annotations> {
    Some(Annotations { name, labels })
}

/// Converts `p` for stack `stack`.
pub fn desired(stack: &str, p: &Project) -> Desired {
    let mut d = Desired::default();
    let uses_default = p
        .services
        .iter()
        .any(|s| s.networks.is_empty() || s.networks.iter().any(|(n, _)| n == "default"));
    let mut networks: BTreeMap<String, Network> = p.networks.clone();
    if uses_default && !networks.contains_key("default") {
        networks.insert("default".into(), Network::default());
    }
    for (key, n) in &networks {
        if n.external {
            d.external_networks.push(n.name.clone());
            continue;
        }
        if key != "default"
            && !p
                .services
                .iter()
                .any(|s| s.networks.iter().any(|(x, _)| x == key))
        {
            // Docker creates only the networks services use.
            continue;
        }
        d.networks.push(network_spec(stack, key, n));
    }
    for (key, o) in &p.secrets {
        match file_object(stack, key, o) {
            Ok((a, data)) => d.secrets.push(SecretSpec {
                annotations: a,
                data,
            }),
            Err(name) => d.external_secrets.push(name),
        }
    }
    for (key, o) in &p.configs {
        match file_object(stack, key, o) {
            Ok((a, data)) => d.configs.push(ConfigSpec {
                annotations: a,
                data,
            }),
            Err(name) => d.external_configs.push(name),
        }
    }
    d.services = p
        .services
        .iter()
        .map(|s| service_spec(stack, p, &networks, s))
        .collect();
    d
}

fn network_spec(stack: &str, key: &str, n: &Network) -> NetworkSpec {
    NetworkSpec {
        annotations: annotations(scoped(stack, key, &n.name), labels(stack, &n.labels)),
        driver_config: Some(Driver {
            name: if n.driver.is_empty() {
                "overlay".into()
            } else {
                n.driver.clone()
            },
            options: n
                .driver_opts
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
        internal: n.internal,
        attachable: n.attachable,
        ingress: false,
        ipam: if n.subnets.is_empty() {
            None
        } else {
            Some(IpamOptions {
                driver: None,
                configs: n
                    .subnets
                    .iter()
                    .map(|s| IpamConfig {
                        subnet: s.clone(),
                        ..IpamConfig::default()
                    })
                    .collect(),
            })
        },
    }
}

/// The annotations and data of an owned object, or the name of an external one.
fn file_object(
    stack: &str,
    key: &str,
    o: &FileObject,
) -> Result<(Option<Annotations>, Vec<u8>), String> {
    if o.external {
        return Err(o.name.clone());
    }
    Ok((
        annotations(scoped(stack, key, &o.name), labels(stack, &o.labels)),
        o.data.clone().unwrap_or_default(),
    ))
}

/// The cluster name of top-level object `key` among `objs`.
fn object_name(stack: &str, key: &str, objs: &BTreeMap<String, FileObject>) -> String {
    objs.get(key)
        .map_or_else(|| format!("{stack}_{key}"), |o| scoped(stack, key, &o.name))
}

/// A service's mount as Docker's stack deploy makes it: a named volume
/// gets its cluster name and, unless external, the stack's label, its own
/// labels and its driver, so the engine creates it as declared.
fn volume_mount(stack: &str, p: &Project, m: &Mount) -> Mount {
    let mut m = m.clone();
    if m.r#type != mount::Type::Volume as i32 || m.source.is_empty() {
        return m;
    }
    let v = p.volumes.get(&m.source).cloned().unwrap_or_default();
    m.source = scoped(stack, &m.source, &v.name);
    if !v.external {
        m.volume_labels = labels(stack, &v.labels);
        m.volume_driver = v.driver;
        m.volume_options = v.driver_opts;
    }
    m
}

fn service_spec(
    stack: &str,
    p: &Project,
    networks: &BTreeMap<String, Network>,
    s: &Service,
) -> ServiceSpec {
    let d = &s.deploy;
    let mut svc_labels = labels(stack, &d.labels);
    svc_labels.insert(IMAGE_LABEL.into(), s.image.clone());
    let attach = if s.networks.is_empty() {
        vec![("default".to_string(), Vec::new())]
    } else {
        s.networks.clone()
    };
    let task_networks = attach
        .iter()
        .map(|(key, aliases)| {
            let n = networks.get(key).cloned().unwrap_or_default();
            let mut all = vec![s.name.clone()];
            all.extend(aliases.iter().filter(|a| **a != s.name).cloned());
            NetworkAttachmentConfig {
                target: scoped(stack, key, &n.name),
                aliases: all,
            }
        })
        .collect();
    let mounts = s.mounts.iter().map(|m| volume_mount(stack, p, m)).collect();
    let secrets = s
        .secrets
        .iter()
        .map(|r| SecretReference {
            secret_id: String::new(),
            secret_name: object_name(stack, &r.source, &p.secrets),
            target: Some(FileTarget {
                name: if r.target.is_empty() {
                    r.source.clone()
                } else {
                    r.target.clone()
                },
                uid: r.uid,
                gid: r.gid,
                mode: r.mode,
            }),
        })
        .collect();
    let configs = s
        .configs
        .iter()
        .map(|r| ConfigReference {
            config_id: String::new(),
            config_name: object_name(stack, &r.source, &p.configs),
            target: Some(FileTarget {
                name: if r.target.is_empty() {
                    format!("/{}", r.source)
                } else {
                    r.target.clone()
                },
                uid: r.uid,
                gid: r.gid,
                mode: r.mode,
            }),
        })
        .collect();
    let is_job = matches!(d.mode, ModeKind::ReplicatedJob | ModeKind::GlobalJob);
    let replicas = d.replicas.unwrap_or(1);
    let mode = match d.mode {
        ModeKind::Replicated => Mode::Replicated(ReplicatedService { replicas }),
        ModeKind::Global => Mode::Global(GlobalService {}),
        ModeKind::ReplicatedJob => Mode::ReplicatedJob(ReplicatedJob {
            max_concurrent: replicas.max(1),
            total_completions: replicas.max(1),
        }),
        ModeKind::GlobalJob => Mode::GlobalJob(GlobalJob {}),
    };
    let restart = d
        .restart_policy
        .unwrap_or_else(|| crate::spec::default_restart(is_job));
    let (cap_add, cap_drop) = crate::spec::effective_caps(&s.cap_add, &s.cap_drop);
    ServiceSpec {
        annotations: annotations(format!("{stack}_{}", s.name), svc_labels),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: s.image.clone(),
                labels: labels(stack, &s.labels),
                command: s.entrypoint.clone().unwrap_or_default(),
                args: s.command.clone().unwrap_or_default(),
                hostname: s.hostname.clone(),
                env: s.env.clone(),
                dir: s.working_dir.clone(),
                user: s.user.clone(),
                mounts,
                stop_grace_period: s.stop_grace_period,
                stop_signal: s.stop_signal.clone(),
                healthcheck: s.healthcheck.clone(),
                secrets,
                configs,
                init: s.init,
                tty: s.tty,
                cap_add,
                cap_drop,
                read_only: s.read_only,
                ulimits: s.ulimits.clone(),
                sysctls: s.sysctls.clone(),
                hosts: s.extra_hosts.clone(),
                registry_auth: None,
            }),
            resources: d.resources,
            restart: Some(restart),
            placement: Some(d.placement.clone()),
            networks: task_networks,
            force_update: 0,
            log_driver: s.logging.clone(),
        }),
        mode: Some(mode),
        update: Some(d.update_config.unwrap_or_else(crate::spec::default_rollout)),
        rollback: Some(
            d.rollback_config
                .unwrap_or_else(crate::spec::default_rollout),
        ),
        networks: Vec::new(),
        endpoint: Some(EndpointSpec {
            mode: d.endpoint_mode as i32,
            ports: s.ports.clone(),
        }),
    }
}
