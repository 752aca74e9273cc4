//! What a deploy would do, computed offline from the desired objects and
//! what the cluster has: objects to create, services to update (with the
//! fields that differ), services to prune, and immutable-data conflicts.
//! `stack deploy --dry-run` / `stack diff` print it; `stack deploy` runs it.

use std::fmt::Debug;

use anyhow::bail;
use shoal_proto::objects::{ConfigSpec, NetworkSpec, SecretSpec, ServiceSpec};

use crate::compose::Desired;

/// The (id, name, data) of an object that exists.
#[derive(Debug, Clone, Default)]
pub struct Existing {
    pub id: String,
    pub name: String,
    /// Configs only: secrets never return their data.
    pub data: Option<Vec<u8>>,
}

/// A service update: its id, the new spec, and what changed.
#[derive(Debug)]
pub struct Update {
    pub id: String,
    pub spec: ServiceSpec,
    pub changes: Vec<String>,
}

/// The steps of a deploy.
#[derive(Debug, Default)]
pub struct Plan {
    pub networks: Vec<NetworkSpec>,
    pub secrets: Vec<SecretSpec>,
    /// Secrets that exist: the manager checks their data is unchanged
    /// (secret data is never read back, so only it can compare).
    pub existing_secrets: Vec<SecretSpec>,
    pub configs: Vec<ConfigSpec>,
    pub create: Vec<ServiceSpec>,
    pub update: Vec<Update>,
    /// (id, name) of services to remove (`--prune`).
    pub remove: Vec<(String, String)>,
    /// Services whose spec already matches.
    pub unchanged: Vec<String>,
}

/// What the cluster has, by kind.
#[derive(Debug, Default)]
pub struct Current {
    pub networks: Vec<Existing>,
    pub secrets: Vec<Existing>,
    pub configs: Vec<Existing>,
    /// Every service, with its spec.
    pub services: Vec<(String, ServiceSpec)>,
}

fn find<'a>(list: &'a [Existing], name: &str) -> Option<&'a Existing> {
    list.iter().find(|e| e.name == name)
}

fn name_of(a: &Option<shoal_proto::objects::Annotations>) -> String {
    a.as_ref().map(|a| a.name.clone()).unwrap_or_default()
}

/// The object plan: what to create, and the errors that stop a deploy
/// (missing externals, changed immutable data).
pub fn objects(stack: &str, d: &Desired, cur: &Current) -> anyhow::Result<Plan> {
    let mut plan = Plan::default();
    let missing = |kind: &str, list: &[Existing], names: &[String]| -> anyhow::Result<()> {
        for n in names {
            if find(list, n).is_none() {
                bail!(
                    "{kind} {n:?} is declared as external, but could not be found: create it first with `shoal {kind} create`"
                );
            }
        }
        Ok(())
    };
    missing("network", &cur.networks, &d.external_networks)?;
    missing("secret", &cur.secrets, &d.external_secrets)?;
    missing("config", &cur.configs, &d.external_configs)?;
    for n in &d.networks {
        if find(&cur.networks, &name_of(&n.annotations)).is_none() {
            plan.networks.push(n.clone());
        }
    }
    for s in &d.secrets {
        let name = name_of(&s.annotations);
        match find(&cur.secrets, &name) {
            None => plan.secrets.push(s.clone()),
            Some(_) => plan.existing_secrets.push(s.clone()),
        }
    }
    for c in &d.configs {
        let name = name_of(&c.annotations);
        match find(&cur.configs, &name) {
            None => plan.configs.push(c.clone()),
            Some(e) if e.data.as_ref().is_some_and(|have| *have != c.data) => {
                bail!(immutable("config", &name, stack))
            }
            Some(_) => {}
        }
    }
    Ok(plan)
}

fn immutable(kind: &str, name: &str, stack: &str) -> String {
    format!(
        "{kind} {name}: its data changed, but {kind}s are immutable in swarm: give it a new \
         name in the compose file (e.g. `name: {name}_v2`), or remove the stack first \
         (`shoal stack rm {stack}`)"
    )
}

/// Adds the service steps to `plan`: `desired` specs hold resolved ids.
pub fn services(
    plan: &mut Plan,
    stack: &str,
    desired: Vec<ServiceSpec>,
    cur: &Current,
    prune: bool,
) {
    for mut spec in desired {
        let name = name_of(&spec.annotations);
        match cur
            .services
            .iter()
            .find(|(_, s)| name_of(&s.annotations) == name)
        {
            None => plan.create.push(spec),
            Some((id, have)) => {
                // `service update --force` counts are not the file's business.
                if let (Some(t), Some(h)) = (spec.task.as_mut(), have.task.as_ref()) {
                    t.force_update = h.force_update;
                }
                let changes = diff(have, &spec);
                if changes.is_empty() && *have == spec {
                    plan.unchanged.push(name);
                } else {
                    plan.update.push(Update {
                        id: id.clone(),
                        spec,
                        changes,
                    });
                }
            }
        }
    }
    if prune {
        let wanted: Vec<String> = plan
            .create
            .iter()
            .map(|s| name_of(&s.annotations))
            .chain(plan.update.iter().map(|u| name_of(&u.spec.annotations)))
            .chain(plan.unchanged.iter().cloned())
            .collect();
        for (id, s) in &cur.services {
            let in_stack = s.annotations.as_ref().is_some_and(|a| {
                a.labels
                    .get(crate::compose::NAMESPACE_LABEL)
                    .map(String::as_str)
                    == Some(stack)
            });
            let name = name_of(&s.annotations);
            if in_stack && !wanted.contains(&name) {
                plan.remove.push((id.clone(), name));
            }
        }
    }
}

fn show<T: Debug>(v: &T) -> String {
    let s = format!("{v:?}");
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "[]".into()
    } else {
        v.join(" ")
    }
}

/// The fields a user sees, rendered for a diff.
fn fields(s: &ServiceSpec) -> Vec<(&'static str, String)> {
    let task = s.task.clone().unwrap_or_default();
    let c = task.container.clone().unwrap_or_default();
    let mut labels = s
        .annotations
        .as_ref()
        .map(|a| a.labels.clone())
        .unwrap_or_default();
    // It follows the image, which has its own line.
    labels.remove(crate::compose::convert::IMAGE_LABEL);
    let mode = match &s.mode {
        Some(shoal_proto::objects::service_spec::Mode::Replicated(r)) => {
            format!("replicated {}", r.replicas)
        }
        Some(m) => show(m),
        None => "replicated 1".into(),
    };
    let endpoint = s.endpoint.clone().unwrap_or_default();
    vec![
        ("image", c.image.clone()),
        ("entrypoint", list(&c.command)),
        ("command", list(&c.args)),
        ("environment", list(&c.env)),
        ("labels", show(&labels)),
        ("container labels", show(&c.labels)),
        ("hostname", c.hostname.clone()),
        ("working_dir", c.dir.clone()),
        ("user", c.user.clone()),
        ("volumes", show(&c.mounts)),
        ("stop_grace_period", show(&c.stop_grace_period)),
        ("stop_signal", c.stop_signal.clone()),
        ("healthcheck", show(&c.healthcheck)),
        ("secrets", show(&c.secrets)),
        ("configs", show(&c.configs)),
        ("init", c.init.to_string()),
        ("tty", c.tty.to_string()),
        ("resources", show(&task.resources)),
        ("restart_policy", show(&task.restart)),
        ("placement", show(&task.placement)),
        ("networks", show(&task.networks)),
        ("mode", mode),
        ("update_config", show(&s.update)),
        ("rollback_config", show(&s.rollback)),
        (
            "endpoint_mode",
            endpoint.mode().as_str_name().to_lowercase(),
        ),
        (
            "ports",
            crate::cmd::service::view::ports_text(&endpoint.ports),
        ),
    ]
}

/// `field: old -> new` for each field that differs.
pub fn diff(have: &ServiceSpec, want: &ServiceSpec) -> Vec<String> {
    let out: Vec<String> = fields(have)
        .into_iter()
        .zip(fields(want))
        .filter(|((_, a), (_, b))| a != b)
        .map(|((k, a), (_, b))| format!("{k}: {a} -> {b}"))
        .collect();
    if out.is_empty() && have != want {
        return vec!["(other fields)".into()];
    }
    out
}

/// The plan as `stack diff` prints it.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for n in &plan.networks {
        out.push_str(&format!("+ network {}\n", name_of(&n.annotations)));
    }
    for s in &plan.secrets {
        out.push_str(&format!("+ secret {}\n", name_of(&s.annotations)));
    }
    for c in &plan.configs {
        out.push_str(&format!("+ config {}\n", name_of(&c.annotations)));
    }
    for s in &plan.create {
        out.push_str(&format!("+ service {}\n", name_of(&s.annotations)));
    }
    for u in &plan.update {
        let name = name_of(&u.spec.annotations);
        for c in &u.changes {
            out.push_str(&format!("~ service {name}: {c}\n"));
        }
    }
    for (_, name) in &plan.remove {
        out.push_str(&format!("- service {name}\n"));
    }
    let objects = plan.networks.len() + plan.secrets.len() + plan.configs.len();
    out.push_str(&format!(
        "Plan: {} to create, {} to update, {} to remove, {} unchanged.\n",
        objects + plan.create.len(),
        plan.update.len(),
        plan.remove.len(),
        plan.unchanged.len()
    ));
    out
}
