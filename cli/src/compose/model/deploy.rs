//! `services.NAME.deploy`: mode, replicas, placement, resources, restart,
//! update and rollback configs. Absent sections stay `None`; conversion
//! fills Shoal's defaults (the same as `service create`).

use shoal_proto::objects::{
    Placement, PlacementPreference, ResourceRequirements, Resources, RestartPolicy, UpdateConfig,
    endpoint_spec, restart_policy, update_config,
};

use super::{Deploy, ModeKind};
use crate::compose::errors::Result;
use crate::compose::read::At;

const KEYS: &[&str] = &[
    "mode",
    "replicas",
    "endpoint_mode",
    "labels",
    "placement",
    "resources",
    "restart_policy",
    "update_config",
    "rollback_config",
];

pub fn read(at: Option<At<'_>>, ignored: &mut Vec<String>) -> Result<Deploy> {
    let mut d = Deploy {
        mode: ModeKind::Replicated,
        replicas: None,
        endpoint_mode: endpoint_spec::ResolutionMode::Vip,
        labels: Default::default(),
        placement: Placement::default(),
        resources: None,
        restart_policy: None,
        update_config: None,
        rollback_config: None,
    };
    let Some(at) = at else { return Ok(d) };
    let f = at.fields(KEYS, &[], ignored)?;
    if let Some(v) = f.get("mode") {
        d.mode = match v.string()?.as_str() {
            "replicated" => ModeKind::Replicated,
            "global" => ModeKind::Global,
            "replicated-job" => ModeKind::ReplicatedJob,
            "global-job" => ModeKind::GlobalJob,
            other => {
                return Err(v.err(format!(
                    "invalid mode {other:?}: expected replicated, global, replicated-job or global-job"
                )));
            }
        };
    }
    if let Some(v) = f.get("replicas") {
        if matches!(d.mode, ModeKind::Global | ModeKind::GlobalJob) {
            return Err(v.err("replicas can only be used with replicated or replicated-job mode"));
        }
        d.replicas = Some(v.uint()?);
    }
    if let Some(v) = f.get("endpoint_mode") {
        d.endpoint_mode = match v.string()?.as_str() {
            "vip" => endpoint_spec::ResolutionMode::Vip,
            "dnsrr" => endpoint_spec::ResolutionMode::Dnsrr,
            other => {
                return Err(v.err(format!(
                    "invalid endpoint mode {other:?}: expected vip or dnsrr"
                )));
            }
        };
    }
    if let Some(v) = f.get("labels") {
        d.labels = v.labels()?;
    }
    if let Some(v) = f.get("placement") {
        d.placement = placement(v)?;
    }
    if let Some(v) = f.get("resources") {
        d.resources = Some(resources(v)?);
    }
    if let Some(v) = f.get("restart_policy") {
        d.restart_policy = Some(restart(v)?);
    }
    if let Some(v) = f.get("update_config") {
        d.update_config = Some(rollout(v)?);
    }
    if let Some(v) = f.get("rollback_config") {
        d.rollback_config = Some(rollout(v)?);
    }
    Ok(d)
}

/// `node.role == manager`, `node.labels.zone != east`...
fn constraint(at: At<'_>) -> Result<String> {
    let c = at.string()?;
    let ok = ["==", "!="].iter().any(|op| {
        c.split_once(op)
            .is_some_and(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
    });
    if !ok {
        return Err(at.err(format!(
            "invalid constraint {c:?}: expected KEY==VALUE or KEY!=VALUE, e.g. node.role==manager"
        )));
    }
    Ok(c)
}

fn placement(at: At<'_>) -> Result<Placement> {
    let mut skipped = Vec::new();
    let f = at.fields(
        &["constraints", "preferences", "max_replicas_per_node"],
        &[],
        &mut skipped,
    )?;
    let mut p = Placement::default();
    if let Some(v) = f.get("constraints") {
        for (path, n) in v.items()? {
            p.constraints.push(constraint(At::new(n, &path))?);
        }
    }
    if let Some(v) = f.get("preferences") {
        for (path, n) in v.items()? {
            let item = At::new(n, &path);
            let g = item.fields(&["spread"], &[], &mut skipped)?;
            let spread = g
                .get("spread")
                .ok_or_else(|| item.err("a placement preference needs `spread`"))?
                .string()?;
            p.preferences.push(PlacementPreference {
                spread_descriptor: spread,
            });
        }
    }
    if let Some(v) = f.get("max_replicas_per_node") {
        p.max_replicas = v.uint()?;
    }
    Ok(p)
}

fn resources(at: At<'_>) -> Result<ResourceRequirements> {
    let mut skipped = Vec::new();
    let f = at.fields(&["limits", "reservations"], &[], &mut skipped)?;
    let one = |v: At<'_>, skipped: &mut Vec<String>, limits: bool| -> Result<Resources> {
        let g = v.fields(
            &["cpus", "memory", "pids", "generic_resources", "devices"],
            &[],
            skipped,
        )?;
        let mut r = Resources::default();
        if let Some(c) = g.get("cpus") {
            let text = c.scalar()?;
            r.nano_cpus = crate::spec::cpus(&text).map_err(|m| c.err(m))?;
        }
        if let Some(m) = g.get("memory") {
            r.memory_bytes = m.bytes()?;
        }
        if let Some(p) = g.get("pids") {
            if !limits {
                return Err(p.err("pids can only be limited (deploy.resources.limits.pids)"));
            }
            r.pids = i64::try_from(p.uint()?).map_err(|_| p.err("too large"))?;
        }
        Ok(r)
    };
    Ok(ResourceRequirements {
        limits: f
            .get("limits")
            .map(|v| one(v, &mut skipped, true))
            .transpose()?,
        reservations: f
            .get("reservations")
            .map(|v| one(v, &mut skipped, false))
            .transpose()?,
    })
}

fn restart(at: At<'_>) -> Result<RestartPolicy> {
    let mut skipped = Vec::new();
    let f = at.fields(
        &["condition", "delay", "max_attempts", "window"],
        &[],
        &mut skipped,
    )?;
    let mut r = RestartPolicy {
        condition: restart_policy::Condition::Any as i32,
        delay: Some(prost_types::Duration {
            seconds: 5,
            nanos: 0,
        }),
        max_attempts: 0,
        window: None,
    };
    if let Some(v) = f.get("condition") {
        r.condition = match v.string()?.as_str() {
            "any" => restart_policy::Condition::Any,
            "on-failure" => restart_policy::Condition::OnFailure,
            "none" => restart_policy::Condition::None,
            other => {
                return Err(v.err(format!(
                    "invalid condition {other:?}: expected none, on-failure or any"
                )));
            }
        } as i32;
    }
    if let Some(v) = f.get("delay") {
        r.delay = Some(v.duration()?);
    }
    if let Some(v) = f.get("max_attempts") {
        r.max_attempts = v.uint()?;
    }
    if let Some(v) = f.get("window") {
        r.window = Some(v.duration()?);
    }
    Ok(r)
}

/// `update_config` / `rollback_config`, over Docker's defaults.
fn rollout(at: At<'_>) -> Result<UpdateConfig> {
    let mut skipped = Vec::new();
    let f = at.fields(
        &[
            "parallelism",
            "delay",
            "failure_action",
            "monitor",
            "max_failure_ratio",
            "order",
        ],
        &[],
        &mut skipped,
    )?;
    let mut u = crate::spec::default_rollout();
    if let Some(v) = f.get("parallelism") {
        u.parallelism = v.uint()?;
    }
    if let Some(v) = f.get("delay") {
        u.delay = Some(v.duration()?);
    }
    if let Some(v) = f.get("monitor") {
        u.monitor = Some(v.duration()?);
    }
    if let Some(v) = f.get("max_failure_ratio") {
        let r = v.float()?;
        if !(0.0..=1.0).contains(&r) {
            return Err(v.err(format!("{r} is not between 0 and 1")));
        }
        u.max_failure_ratio = r as f32;
    }
    if let Some(v) = f.get("failure_action") {
        u.failure_action = match v.string()?.as_str() {
            "pause" => update_config::FailureAction::Pause,
            "continue" => update_config::FailureAction::Continue,
            "rollback" => update_config::FailureAction::Rollback,
            other => {
                return Err(v.err(format!(
                    "invalid failure action {other:?}: expected pause, continue or rollback"
                )));
            }
        } as i32;
    }
    if let Some(v) = f.get("order") {
        u.order = match v.string()?.as_str() {
            "stop-first" => update_config::Order::StopFirst,
            "start-first" => update_config::Order::StartFirst,
            other => {
                return Err(v.err(format!(
                    "invalid order {other:?}: expected stop-first or start-first"
                )));
            }
        } as i32;
    }
    Ok(u)
}
