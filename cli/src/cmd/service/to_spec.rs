//! The parsed flags of `service create|update` ([`super::args`]) → a
//! [`ServiceSpec`]: built whole on create, edited on update. Pure: the
//! names of secrets, configs and networks are resolved from a [`Lookup`]
//! the command filled beforehand, so every rule here is testable offline.
//! On update, removals (`-rm`) apply before additions (`-add`), as Docker's.
//! The container's runtime keys (capabilities, ulimits, sysctls, hosts,
//! logging...) are in [`runtime`], its variables in [`env`]; the values
//! themselves were parsed by [`crate::spec`].

mod env;
mod runtime;

use anyhow::{Context, bail};
use shoal_proto::objects::{
    Annotations, ConfigReference, ContainerSpec, EndpointSpec, FileTarget, GlobalJob,
    GlobalService, HealthConfig, NetworkAttachmentConfig, Placement, PlacementPreference,
    ReplicatedJob, ReplicatedService, ResourceRequirements, Resources, SecretReference,
    ServiceSpec, TaskSpec, UpdateConfig, endpoint_spec, restart_policy, service_spec::Mode,
    update_config,
};

use self::env::{env_key, expand_env, merge_env, read_env_file};
use super::args::{
    CommonFlags, ConditionArg, CreateArgs, EndpointModeArg, FailureActionArg, ModeArg, OrderArg,
    RolloutFlags, UpdateArgs,
};
use crate::cmd::common::resolve;
use crate::spec::{FileRef, default_restart, default_rollout, port_key};

/// `(id, name)` of the secrets, configs and networks a command may name.
#[derive(Debug, Default, Clone)]
pub struct Lookup {
    pub secrets: Vec<(String, String)>,
    pub configs: Vec<(String, String)>,
    pub networks: Vec<(String, String)>,
}

impl Lookup {
    fn find<'a>(
        kind: &str,
        list: &'a [(String, String)],
        arg: &str,
    ) -> anyhow::Result<(&'a str, &'a str)> {
        let pairs = list.iter().map(|(i, n)| (i.as_str(), n.as_str()));
        let id = resolve(kind, arg, pairs).with_context(|| match kind {
            "network" => format!("network {arg} not found; create it with `shoal network create`"),
            _ => format!("{kind} {arg} not found; create it with `shoal {kind} create`"),
        })?;
        list.iter()
            .find(|(i, _)| *i == id)
            .map(|(i, n)| (i.as_str(), n.as_str()))
            .with_context(|| format!("No such {kind}: {arg}"))
    }

    fn secret(&self, r: &FileRef) -> anyhow::Result<SecretReference> {
        let (id, name) = Self::find("secret", &self.secrets, &r.source)?;
        Ok(SecretReference {
            secret_id: id.to_string(),
            secret_name: name.to_string(),
            target: Some(file_target(r, name)),
        })
    }

    fn config(&self, r: &FileRef) -> anyhow::Result<ConfigReference> {
        let (id, name) = Self::find("config", &self.configs, &r.source)?;
        Ok(ConfigReference {
            config_id: id.to_string(),
            config_name: name.to_string(),
            target: Some(file_target(r, name)),
        })
    }

    fn network(&self, arg: &str) -> anyhow::Result<NetworkAttachmentConfig> {
        let (id, _) = Self::find("network", &self.networks, arg)?;
        Ok(NetworkAttachmentConfig {
            target: id.to_string(),
            aliases: Vec::new(),
        })
    }
}

/// The file a reference appears as: its target, else the object's name.
fn file_target(r: &FileRef, name: &str) -> FileTarget {
    FileTarget {
        name: if r.target.is_empty() {
            name.to_string()
        } else {
            r.target.clone()
        },
        uid: r.uid,
        gid: r.gid,
        mode: r.mode,
    }
}

/// The spec `service create` asks for.
pub fn create_spec(args: &CreateArgs, lookup: &Lookup) -> anyhow::Result<ServiceSpec> {
    let c = &args.common;
    let is_job = matches!(args.mode, ModeArg::ReplicatedJob | ModeArg::GlobalJob);
    let mode = match args.mode {
        ModeArg::Replicated => Mode::Replicated(ReplicatedService {
            replicas: c.replicas.unwrap_or(1),
        }),
        ModeArg::Global => Mode::Global(GlobalService {}),
        ModeArg::ReplicatedJob => {
            let total = c.replicas.unwrap_or(1);
            Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: c.max_concurrent.unwrap_or(total),
                total_completions: total,
            })
        }
        ModeArg::GlobalJob => Mode::GlobalJob(GlobalJob {}),
    };
    if c.replicas.is_some() && matches!(args.mode, ModeArg::Global | ModeArg::GlobalJob) {
        bail!("replicas can only be used with replicated or replicated-job mode");
    }
    if c.max_concurrent.is_some() && args.mode != ModeArg::ReplicatedJob {
        bail!("max-concurrent can only be used with replicated-job mode");
    }
    let mut env = Vec::new();
    for file in &args.env_file {
        env.extend(read_env_file(file)?);
    }
    env = merge_env(env, &expand_env(&args.env));
    let mut spec = ServiceSpec {
        annotations: Some(Annotations {
            name: args.name.clone().unwrap_or_default(),
            labels: args.label.iter().cloned().collect(),
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: args.image.clone(),
                labels: args.container_label.iter().cloned().collect(),
                args: args.args.clone(),
                env,
                mounts: args.mount.clone(),
                secrets: args
                    .secret
                    .iter()
                    .map(|r| lookup.secret(r))
                    .collect::<anyhow::Result<_>>()?,
                configs: args
                    .config
                    .iter()
                    .map(|r| lookup.config(r))
                    .collect::<anyhow::Result<_>>()?,
                ..ContainerSpec::default()
            }),
            restart: Some(default_restart(is_job)),
            placement: Some(Placement {
                constraints: args.constraint.clone(),
                preferences: args
                    .placement_pref
                    .iter()
                    .map(|p| preference(p))
                    .collect::<anyhow::Result<_>>()?,
                ..Placement::default()
            }),
            networks: args
                .network
                .iter()
                .map(|n| lookup.network(n))
                .collect::<anyhow::Result<_>>()?,
            ..TaskSpec::default()
        }),
        mode: Some(mode),
        update: Some(default_rollout()),
        rollback: Some(default_rollout()),
        networks: Vec::new(),
        endpoint: Some(EndpointSpec {
            mode: endpoint_spec::ResolutionMode::Vip as i32,
            ports: args.publish.clone(),
        }),
    };
    if let Some(container) = spec.task.as_mut().and_then(|t| t.container.as_mut()) {
        runtime::create(container, c, &args.container, &args.host)?;
    }
    apply_common(&mut spec, c)?;
    Ok(spec)
}

/// Edits `spec` as `service update` asks. `--rollback` is not a spec edit;
/// the caller sends it as its own request.
pub fn update_spec(
    spec: &mut ServiceSpec,
    args: &UpdateArgs,
    lookup: &Lookup,
) -> anyhow::Result<()> {
    let labels = &mut spec.annotations.get_or_insert_with(Default::default).labels;
    for k in &args.label_rm {
        labels.remove(k);
    }
    labels.extend(args.label_add.iter().cloned());
    let task = spec.task.get_or_insert_with(Default::default);
    let container = task.container.get_or_insert_with(Default::default);
    if let Some(image) = &args.image {
        if image.trim().is_empty() {
            bail!("--image must not be empty");
        }
        container.image = image.clone();
    }
    if let Some(a) = &args.args {
        container.args = a.split_whitespace().map(str::to_string).collect();
    }
    for k in &args.container_label_rm {
        container.labels.remove(k);
    }
    container
        .labels
        .extend(args.container_label_add.iter().cloned());
    container
        .env
        .retain(|e| !args.env_rm.iter().any(|k| env_key(e) == k));
    container.env = merge_env(
        std::mem::take(&mut container.env),
        &expand_env(&args.env_add),
    );
    container
        .mounts
        .retain(|m| !args.mount_rm.contains(&m.target));
    for m in &args.mount_add {
        container.mounts.retain(|have| have.target != m.target);
        container.mounts.push(m.clone());
    }
    container.secrets.retain(|s| {
        !args
            .secret_rm
            .iter()
            .any(|r| *r == s.secret_name || *r == s.secret_id)
    });
    for r in &args.secret_add {
        let new = lookup.secret(r)?;
        container.secrets.retain(|s| {
            s.secret_id != new.secret_id
                && s.target.as_ref().map(|t| &t.name) != new.target.as_ref().map(|t| &t.name)
        });
        container.secrets.push(new);
    }
    container.configs.retain(|s| {
        !args
            .config_rm
            .iter()
            .any(|r| *r == s.config_name || *r == s.config_id)
    });
    for r in &args.config_add {
        let new = lookup.config(r)?;
        container.configs.retain(|s| {
            s.config_id != new.config_id
                && s.target.as_ref().map(|t| &t.name) != new.target.as_ref().map(|t| &t.name)
        });
        container.configs.push(new);
    }
    runtime::update(container, args);
    let placement = task.placement.get_or_insert_with(Default::default);
    placement
        .constraints
        .retain(|c| !args.constraint_rm.contains(c));
    for c in &args.constraint_add {
        if !placement.constraints.contains(c) {
            placement.constraints.push(c.clone());
        }
    }
    let rm_prefs = args
        .placement_pref_rm
        .iter()
        .map(|p| preference(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    placement.preferences.retain(|p| !rm_prefs.contains(p));
    for p in &args.placement_pref_add {
        placement.preferences.push(preference(p)?);
    }
    // Attachments may sit in the task (today) or the service (older specs).
    let mut rm_ids = Vec::new();
    for n in &args.network_rm {
        rm_ids.push(
            lookup
                .network(n)
                .map(|a| a.target)
                .unwrap_or_else(|_| n.clone()),
        );
    }
    task.networks.retain(|a| !rm_ids.contains(&a.target));
    spec.networks.retain(|a| !rm_ids.contains(&a.target));
    for n in &args.network_add {
        let new = lookup.network(n)?;
        if task
            .networks
            .iter()
            .chain(&spec.networks)
            .any(|a| a.target == new.target)
        {
            bail!("service is already attached to network {n}");
        }
        task.networks.push(new);
    }
    if args.force {
        task.force_update += 1;
    }
    let endpoint = spec.endpoint.get_or_insert_with(Default::default);
    endpoint
        .ports
        .retain(|p| !args.publish_rm.contains(&port_key(p)));
    for p in &args.publish_add {
        endpoint.ports.retain(|have| {
            let same_published = p.published_port != 0
                && have.published_port == p.published_port
                && have.protocol == p.protocol;
            !same_published && have != p
        });
        endpoint.ports.push(p.clone());
    }
    apply_common(spec, &args.common)
}

/// The scalar flags, set only when given.
fn apply_common(spec: &mut ServiceSpec, c: &CommonFlags) -> anyhow::Result<()> {
    match (&mut spec.mode, c.replicas, c.max_concurrent) {
        (Some(Mode::Replicated(r)), Some(n), _) => r.replicas = n,
        (Some(Mode::ReplicatedJob(j)), n, m) => {
            if let Some(n) = n {
                j.total_completions = n;
            }
            if let Some(m) = m {
                j.max_concurrent = m;
            }
        }
        (_, Some(_), _) => {
            bail!("replicas can only be used with replicated or replicated-job mode")
        }
        (_, None, Some(_)) => bail!("max-concurrent can only be used with replicated-job mode"),
        _ => {}
    }
    let task = spec.task.get_or_insert_with(Default::default);
    let container = task.container.get_or_insert_with(Default::default);
    set(&mut container.dir, &c.workdir);
    set(&mut container.user, &c.user);
    set(&mut container.hostname, &c.hostname);
    if let Some(e) = &c.entrypoint {
        container.command = e.split_whitespace().map(str::to_string).collect();
    }
    if let Some(d) = c.stop_grace_period {
        container.stop_grace_period = Some(d);
    }
    set(&mut container.stop_signal, &c.stop_signal);
    apply_health(&mut container.healthcheck, c)?;
    if let Some(n) = c.replicas_max_per_node {
        task.placement
            .get_or_insert_with(Default::default)
            .max_replicas = n;
    }
    let resources = task
        .resources
        .get_or_insert_with(ResourceRequirements::default);
    let res = |r: &mut Option<Resources>, cpu: Option<i64>, mem: Option<i64>| {
        let r = r.get_or_insert_with(Default::default);
        if let Some(cpu) = cpu {
            r.nano_cpus = cpu;
        }
        if let Some(mem) = mem {
            r.memory_bytes = mem;
        }
    };
    res(&mut resources.limits, c.limit_cpu, c.limit_memory);
    res(&mut resources.reservations, c.reserve_cpu, c.reserve_memory);
    runtime::common(task, c)?;
    let restart = task.restart.get_or_insert_with(Default::default);
    if let Some(cond) = c.restart_condition {
        restart.set_condition(match cond {
            ConditionArg::Any => restart_policy::Condition::Any,
            ConditionArg::OnFailure => restart_policy::Condition::OnFailure,
            ConditionArg::None => restart_policy::Condition::None,
        });
    }
    if let Some(d) = c.restart_delay {
        restart.delay = Some(d);
    }
    if let Some(n) = c.restart_max_attempts {
        restart.max_attempts = n;
    }
    if let Some(w) = c.restart_window {
        restart.window = Some(w);
    }
    apply_rollout(spec.update.get_or_insert_with(default_rollout), &c.update())?;
    let rollback = c.rollback();
    if rollback.failure_action == Some(FailureActionArg::Rollback) {
        bail!(
            "invalid --rollback-failure-action: a rollback cannot itself roll back (use pause or continue)"
        );
    }
    apply_rollout(spec.rollback.get_or_insert_with(default_rollout), &rollback)?;
    if let Some(m) = c.endpoint_mode {
        spec.endpoint
            .get_or_insert_with(Default::default)
            .set_mode(match m {
                EndpointModeArg::Vip => endpoint_spec::ResolutionMode::Vip,
                EndpointModeArg::Dnsrr => endpoint_spec::ResolutionMode::Dnsrr,
            });
    }
    if let Some(e) = &spec.endpoint
        && e.mode() == endpoint_spec::ResolutionMode::Dnsrr
        && e.ports
            .iter()
            .any(|p| p.publish_mode() == shoal_proto::objects::port_config::PublishMode::Ingress)
    {
        bail!("port published with ingress mode can't be used with dnsrr mode");
    }
    Ok(())
}

fn set(field: &mut String, value: &Option<String>) {
    if let Some(v) = value {
        *field = v.clone();
    }
}

fn apply_rollout(u: &mut UpdateConfig, f: &RolloutFlags) -> anyhow::Result<()> {
    if let Some(p) = f.parallelism {
        u.parallelism = p;
    }
    if let Some(d) = f.delay {
        u.delay = Some(d);
    }
    if let Some(a) = f.failure_action {
        u.set_failure_action(match a {
            FailureActionArg::Pause => update_config::FailureAction::Pause,
            FailureActionArg::Continue => update_config::FailureAction::Continue,
            FailureActionArg::Rollback => update_config::FailureAction::Rollback,
        });
    }
    if let Some(m) = f.monitor {
        u.monitor = Some(m);
    }
    if let Some(r) = f.max_failure_ratio {
        u.max_failure_ratio = r;
    }
    if let Some(o) = f.order {
        u.set_order(match o {
            OrderArg::StopFirst => update_config::Order::StopFirst,
            OrderArg::StartFirst => update_config::Order::StartFirst,
        });
    }
    Ok(())
}

fn apply_health(h: &mut Option<HealthConfig>, c: &CommonFlags) -> anyhow::Result<()> {
    if c.no_healthcheck {
        *h = Some(HealthConfig {
            test: vec!["NONE".into()],
            ..HealthConfig::default()
        });
        return Ok(());
    }
    let any = c.health_cmd.is_some()
        || c.health_interval.is_some()
        || c.health_timeout.is_some()
        || c.health_retries.is_some()
        || c.health_start_period.is_some();
    if !any {
        return Ok(());
    }
    let h = h.get_or_insert_with(Default::default);
    if let Some(cmd) = &c.health_cmd {
        h.test = if cmd.is_empty() {
            Vec::new()
        } else {
            vec!["CMD-SHELL".into(), cmd.clone()]
        };
    } else if h.test.first().is_some_and(|t| t == "NONE") {
        bail!(
            "--health-* flags need a health check: add --health-cmd (this service has --no-healthcheck)"
        );
    }
    if let Some(d) = c.health_interval {
        h.interval = Some(d);
    }
    if let Some(d) = c.health_timeout {
        h.timeout = Some(d);
    }
    if let Some(n) = c.health_retries {
        h.retries = n;
    }
    if let Some(d) = c.health_start_period {
        h.start_period = Some(d);
    }
    Ok(())
}

/// `spread=node.labels.zone`: the only preference Docker knows.
fn preference(p: &str) -> anyhow::Result<PlacementPreference> {
    match p.split_once('=') {
        Some(("spread", d)) if !d.is_empty() => Ok(PlacementPreference {
            spread_descriptor: d.to_string(),
        }),
        _ => bail!(
            "invalid placement preference {p:?}: expected spread=<label>, e.g. spread=node.labels.zone"
        ),
    }
}
