//! Docker's rules for a cluster event's time and actor attributes (moby
//! `daemon/events.go`: `generateClusterEvent`, `logServiceEvent`,
//! `logNodeEvent`), as pure functions of the object before and after, so
//! `docker events` users see the same words from Shoal.

use std::collections::BTreeMap;
use std::time::SystemTime;

use shoal_proto::objects::node_spec::Availability;
use shoal_proto::objects::node_status::State as NodeState;
use shoal_proto::objects::service_spec::Mode;
use shoal_proto::objects::update_status::State as UpdateState;
use shoal_proto::objects::{Meta, Node, NodeRole, Service, Task, TaskState};

use crate::store::EventAction;

/// Attributes of one event, ordered (Docker prints them sorted by key).
pub type Attributes = BTreeMap<String, String>;

/// When the event happened, by Docker's rule: the object's creation time
/// for a create, its last update for an update. A removal carries no time
/// of its own in the store, so it is `now` (as in Docker), and so is
/// anything whose meta lacks the time.
pub fn event_time(action: EventAction, meta: Option<&Meta>, now: SystemTime) -> SystemTime {
    let stamp = match action {
        EventAction::Create => meta.and_then(|m| m.created_at),
        EventAction::Update => meta.and_then(|m| m.updated_at),
        EventAction::Remove => None,
    };
    stamp
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(now)
}

/// Only `name`: networks, secrets and configs.
pub fn named(name: &str) -> Attributes {
    Attributes::from([("name".to_string(), name.to_string())])
}

/// A service's attributes; on an update, what changed of its image,
/// replica count and rolling-update state.
pub fn service(action: EventAction, new: &Service, old: Option<&Service>) -> Attributes {
    let spec = new.spec.as_ref();
    let mut attrs = named(
        spec.and_then(|s| s.annotations.as_ref())
            .map_or("", |a| &a.name),
    );
    let (EventAction::Update, Some(old)) = (action, old) else {
        return attrs;
    };
    if let (Some(a), Some(b)) = (image(old), image(new))
        && a != b
    {
        changed(&mut attrs, "image", a, b);
    }
    if let (Some(a), Some(b)) = (replicas(old), replicas(new))
        && a != b
    {
        changed(&mut attrs, "replicas", &a.to_string(), &b.to_string());
    }
    if let Some(now) = &new.update_status {
        let now = now.state();
        match &old.update_status {
            None => {
                attrs.insert("updatestate.new".into(), update_state(now));
            }
            Some(before) if before.state() != now => {
                changed(
                    &mut attrs,
                    "updatestate",
                    &update_state(before.state()),
                    &update_state(now),
                );
            }
            Some(_) => {}
        }
    }
    attrs
}

/// A node's attributes: its name (or host name); on an update, what
/// changed of its desired role, availability and state.
pub fn node(action: EventAction, new: &Node, old: Option<&Node>) -> Attributes {
    let mut attrs = named(&node_name(new));
    let (EventAction::Update, Some(old)) = (action, old) else {
        return attrs;
    };
    let pairs = [
        ("role", role(old), role(new)),
        ("availability", availability(old), availability(new)),
        ("state", node_state(old), node_state(new)),
    ];
    for (what, before, after) in pairs {
        if before != after {
            changed(&mut attrs, what, &before, &after);
        }
    }
    attrs
}

/// A task's attributes: `name` as Docker names a task
/// (`<service>.<slot>`, or `<service>.<node id>` for a global one); on an
/// update, its observed state when that changed. `old_state` is the state
/// last seen, `service_name` the name to use when the task lacks one.
pub fn task(
    action: EventAction,
    task: &Task,
    old_state: Option<TaskState>,
    service_name: &str,
) -> Attributes {
    let mut attrs = named(&task_name(task, service_name));
    let now = shoal_proto::task_state::observed(task);
    if let (EventAction::Update, Some(before)) = (action, old_state)
        && before != now
    {
        changed(&mut attrs, "state", before.docker_name(), now.docker_name());
    }
    attrs
}

/// Docker's node name: the one given in the spec, else the host name.
pub fn node_name(node: &Node) -> String {
    let given = node
        .spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map_or("", |a| a.name.as_str());
    if !given.is_empty() {
        return given.to_string();
    }
    node.description
        .as_ref()
        .map_or_else(String::new, |d| d.hostname.clone())
}

/// `<service>.<slot>`, or `<service>.<node id>` for a task without a slot
/// (global services).
pub fn task_name(task: &Task, service_name: &str) -> String {
    let service = task
        .service_annotations
        .as_ref()
        .map(|a| a.name.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or(service_name);
    if task.slot > 0 {
        format!("{service}.{}", task.slot)
    } else {
        format!("{service}.{}", task.node_id)
    }
}

fn changed(attrs: &mut Attributes, what: &str, old: &str, new: &str) {
    attrs.insert(format!("{what}.old"), old.to_string());
    attrs.insert(format!("{what}.new"), new.to_string());
}

fn image(service: &Service) -> Option<&str> {
    let task = service.spec.as_ref()?.task.as_ref()?;
    task.container.as_ref().map(|c| c.image.as_str())
}

fn replicas(service: &Service) -> Option<u64> {
    match service.spec.as_ref()?.mode.as_ref()? {
        Mode::Replicated(r) => Some(r.replicas),
        _ => None,
    }
}

/// A protobuf enum name in Docker's words: its prefix dropped, lower case
/// (`STATE_ROLLBACK_STARTED` → `rollback_started`).
fn docker_word(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase()
}

fn update_state(state: UpdateState) -> String {
    docker_word(state.as_str_name(), "STATE_")
}

/// The role the node is meant to have (what `node promote`/`demote` set).
fn role(node: &Node) -> String {
    let role = node
        .spec
        .as_ref()
        .map_or(NodeRole::Worker, |s| s.desired_role());
    docker_word(role.as_str_name(), "NODE_ROLE_")
}

fn availability(node: &Node) -> String {
    let a = node
        .spec
        .as_ref()
        .map_or(Availability::Active, |s| s.availability());
    docker_word(a.as_str_name(), "AVAILABILITY_")
}

fn node_state(node: &Node) -> String {
    let s = node
        .status
        .as_ref()
        .map_or(NodeState::Unknown, |s| s.state());
    docker_word(s.as_str_name(), "STATE_")
}
