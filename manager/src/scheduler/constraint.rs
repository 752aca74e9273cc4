//! Placement constraints in Docker's syntax (`node.labels.zone==east`,
//! `node.role!=manager`). Parsing is separate from matching so the control
//! API can refuse a malformed constraint when the service is created,
//! instead of the task sitting Pending with an error nobody reads.
//!
//! Values compare case-insensitively, as swarmkit's `EqualFold` does; label
//! names after `node.labels.` / `engine.labels.` keep their case. A label a
//! node lacks reads as the empty value, so `node.labels.x!=y` matches it.

use shoal_proto::objects::{Node, NodeRole};

/// The keys a constraint may name, for error messages.
const KEYS: &str = "node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<label>, engine.labels.<label>";

/// What a constraint looks at on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintKey {
    /// `node.id`
    NodeId,
    /// `node.hostname`
    Hostname,
    /// `node.role` (`manager` or `worker`)
    Role,
    /// `node.platform.os`
    Os,
    /// `node.platform.arch`
    Arch,
    /// `node.labels.<label>`: labels set with `node update --label-add`.
    NodeLabel(String),
    /// `engine.labels.<label>`: labels the node's engine reports.
    EngineLabel(String),
}

/// How a constraint compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `==`
    Eq,
    /// `!=`
    NotEq,
}

/// One parsed constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// What it looks at.
    pub key: ConstraintKey,
    /// How it compares.
    pub op: Operator,
    /// The value compared with (case-insensitively).
    pub value: String,
}

/// Why a constraint could not be parsed. A user error: the message says
/// what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// Neither `==` nor `!=` appears.
    #[error("invalid constraint {expr:?}: expected <key>==<value> or <key>!=<value>")]
    NoOperator {
        /// The constraint as written.
        expr: String,
    },
    /// The key is not one Shoal knows.
    #[error("invalid constraint {expr:?}: unknown key {key:?}; use one of {KEYS}")]
    UnknownKey {
        /// The constraint as written.
        expr: String,
        /// The key.
        key: String,
    },
    /// The value is empty or holds characters Docker refuses (such as
    /// another operator).
    #[error(
        "invalid constraint {expr:?}: value {value:?} is invalid; use letters, digits and - _ . : / (it may not be empty)"
    )]
    InvalidValue {
        /// The constraint as written.
        expr: String,
        /// The value.
        value: String,
    },
    /// `node.role` names something other than manager or worker.
    #[error("invalid constraint {expr:?}: node.role is either manager or worker, not {value:?}")]
    InvalidRole {
        /// The constraint as written.
        expr: String,
        /// The value.
        value: String,
    },
}

/// Parses constraints as `docker service create --constraint` takes them.
pub fn parse_constraints(exprs: &[String]) -> Result<Vec<Constraint>, ConstraintError> {
    exprs.iter().map(|e| parse_one(e)).collect()
}

fn parse_one(expr: &str) -> Result<Constraint, ConstraintError> {
    // `==` is looked for first, as swarmkit does.
    let (op, (key, value)) = [("==", Operator::Eq), ("!=", Operator::NotEq)]
        .into_iter()
        .find_map(|(token, op)| expr.split_once(token).map(|kv| (op, kv)))
        .ok_or_else(|| ConstraintError::NoOperator { expr: expr.into() })?;
    let (key, value) = (key.trim(), value.trim());
    let key = parse_key(key).ok_or_else(|| ConstraintError::UnknownKey {
        expr: expr.into(),
        key: key.into(),
    })?;
    if !valid_value(value) {
        return Err(ConstraintError::InvalidValue {
            expr: expr.into(),
            value: value.into(),
        });
    }
    if key == ConstraintKey::Role
        && !["manager", "worker"]
            .iter()
            .any(|r| r.eq_ignore_ascii_case(value))
    {
        return Err(ConstraintError::InvalidRole {
            expr: expr.into(),
            value: value.into(),
        });
    }
    Ok(Constraint {
        key,
        op,
        value: value.into(),
    })
}

fn parse_key(key: &str) -> Option<ConstraintKey> {
    let lower = key.to_ascii_lowercase();
    let fixed = match lower.as_str() {
        "node.id" => Some(ConstraintKey::NodeId),
        "node.hostname" => Some(ConstraintKey::Hostname),
        "node.role" => Some(ConstraintKey::Role),
        "node.platform.os" => Some(ConstraintKey::Os),
        "node.platform.arch" => Some(ConstraintKey::Arch),
        _ => None,
    };
    if fixed.is_some() {
        return fixed;
    }
    // The prefix is case-insensitive; the label name is not.
    let label = |prefix: &str| {
        lower
            .starts_with(prefix)
            .then(|| key[prefix.len()..].to_string())
            .filter(|l| valid_label(l))
    };
    label("node.labels.")
        .map(ConstraintKey::NodeLabel)
        .or_else(|| label("engine.labels.").map(ConstraintKey::EngineLabel))
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Docker's value pattern: no operators, nothing that would need quoting.
fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || c.is_whitespace() || ":-_.*()?+[]\\^$|/".contains(c)
        })
}

impl Constraint {
    /// Whether `node` satisfies this constraint.
    pub fn matches(&self, node: &Node) -> bool {
        let description = node.description.as_ref();
        let platform = description.and_then(|d| d.platform.as_ref());
        let actual: &str = match &self.key {
            ConstraintKey::NodeId => &node.id,
            ConstraintKey::Hostname => description.map_or("", |d| &d.hostname),
            ConstraintKey::Role => match node.role() {
                NodeRole::Manager => "manager",
                NodeRole::Worker => "worker",
            },
            ConstraintKey::Os => platform.map_or("", |p| &p.os),
            ConstraintKey::Arch => platform.map_or("", |p| &p.architecture),
            ConstraintKey::NodeLabel(label) => node
                .spec
                .as_ref()
                .and_then(|s| s.annotations.as_ref())
                .and_then(|a| a.labels.get(label))
                .map_or("", String::as_str),
            ConstraintKey::EngineLabel(label) => description
                .and_then(|d| d.engine.as_ref())
                .and_then(|e| e.labels.get(label))
                .map_or("", String::as_str),
        };
        let equal = actual.eq_ignore_ascii_case(&self.value);
        match self.op {
            Operator::Eq => equal,
            Operator::NotEq => !equal,
        }
    }
}

/// Whether `node` satisfies every constraint; a malformed list matches no
/// node (the control API refuses such specs, so this is only a guard).
pub fn node_matches(node: &Node, exprs: &[String]) -> bool {
    parse_constraints(exprs).is_ok_and(|cs| cs.iter().all(|c| c.matches(node)))
}
