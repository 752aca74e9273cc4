//! Request bodies read as Docker's daemon reads them. Go's JSON decoder
//! matches keys regardless of case, and clients rely on it: the `docker`
//! CLI sends `Healthcheck` where the schema says `HealthCheck`, the Python
//! SDK sends `{"replicated": {...}}` for `Replicated`. serde would drop
//! such keys silently, so each body's keys are first renamed to the
//! model's own, learnt once by tracing bollard's types.

use std::any::{TypeId, type_name};
use std::collections::HashMap;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use serde_reflection::{ContainerFormat, Format, Registry, Tracer, TracerConfig};

use super::error::ApiError;

/// Where keys are, per traced model: plain data, owned by `Send + Sync`
/// statics (the tracer's own formats are not).
#[derive(Debug, Clone)]
enum Node {
    /// A struct of that name.
    Struct(String),
    /// Each element of a list, or each value of a map.
    Each(Box<Node>),
    /// No keys inside.
    Leaf,
}

/// The traced models: each struct's fields, and each request type's root.
struct Models {
    structs: HashMap<String, Vec<(String, Node)>>,
    roots: HashMap<TypeId, Node>,
}

fn node(format: &Format, registry: &Registry) -> Node {
    match format {
        Format::TypeName(name) => match registry.get(name) {
            Some(ContainerFormat::Struct(_)) => Node::Struct(name.clone()),
            Some(ContainerFormat::NewTypeStruct(inner)) => node(inner, registry),
            _ => Node::Leaf,
        },
        Format::Option(inner) => node(inner, registry),
        Format::Seq(inner) | Format::Map { value: inner, .. } => {
            Node::Each(Box::new(node(inner, registry)))
        }
        _ => Node::Leaf,
    }
}

fn trace<T: DeserializeOwned + 'static>(tracer: &mut Tracer, roots: &mut Vec<(TypeId, Format)>) {
    match tracer.trace_simple_type::<T>() {
        Ok((format, _)) => roots.push((TypeId::of::<T>(), format)),
        Err(err) => {
            tracing::warn!(model = type_name::<T>(), %err, "cannot trace a Docker API model")
        }
    }
}

fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        use bollard::models::*;
        let mut tracer = Tracer::new(TracerConfig::default());
        let mut roots = Vec::new();
        trace::<ServiceSpec>(&mut tracer, &mut roots);
        trace::<NodeSpec>(&mut tracer, &mut roots);
        trace::<SwarmSpec>(&mut tracer, &mut roots);
        trace::<SwarmInitRequest>(&mut tracer, &mut roots);
        trace::<SwarmJoinRequest>(&mut tracer, &mut roots);
        trace::<SwarmUnlockRequest>(&mut tracer, &mut roots);
        trace::<SecretSpec>(&mut tracer, &mut roots);
        trace::<ConfigSpec>(&mut tracer, &mut roots);
        trace::<NetworkCreateRequest>(&mut tracer, &mut roots);
        // Enumerations are traced by their first variant only, which is
        // all key matching needs.
        let registry = tracer.registry_unchecked();
        let structs = registry
            .iter()
            .filter_map(|(name, container)| match container {
                ContainerFormat::Struct(fields) => Some((
                    name.clone(),
                    fields
                        .iter()
                        .map(|f| (f.name.clone(), node(&f.value, &registry)))
                        .collect(),
                )),
                _ => None,
            })
            .collect();
        Models {
            structs,
            roots: roots
                .iter()
                .map(|(id, format)| (*id, node(format, &registry)))
                .collect(),
        }
    })
}

/// Renames `value`'s keys to the model's spelling, as Go would match them.
pub fn canonical_keys<T: 'static>(value: &mut Value) {
    let models = models();
    if let Some(root) = models.roots.get(&TypeId::of::<T>()) {
        rename(value, root, models);
    }
}

fn rename(value: &mut Value, at: &Node, models: &Models) {
    match at {
        Node::Struct(name) => {
            if let (Value::Object(object), Some(fields)) = (value, models.structs.get(name)) {
                rename_fields(object, fields, models);
            }
        }
        Node::Each(inner) => match value {
            Value::Array(items) => items.iter_mut().for_each(|v| rename(v, inner, models)),
            Value::Object(map) => map.values_mut().for_each(|v| rename(v, inner, models)),
            _ => {}
        },
        Node::Leaf => {}
    }
}

fn rename_fields(object: &mut Map<String, Value>, fields: &[(String, Node)], models: &Models) {
    let keys: Vec<String> = object.keys().cloned().collect();
    for key in keys {
        if fields.iter().any(|(name, _)| *name == key) {
            continue;
        }
        let Some((name, _)) = fields
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&key))
        else {
            continue;
        };
        // An exact key wins over a differently cased one, as in Go.
        if !object.contains_key(name)
            && let Some(v) = object.remove(&key)
        {
            object.insert(name.clone(), v);
        }
    }
    for (name, at) in fields {
        if let Some(v) = object.get_mut(name) {
            rename(v, at, models);
        }
    }
}

/// A JSON body as `T`, keys matched as Go matches them; Docker's 400 when
/// it is not JSON or not a `T`. An empty body reads as `{}`.
pub fn read<T: DeserializeOwned + 'static>(body: &[u8]) -> Result<T, ApiError> {
    let mut value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    canonical_keys::<T>(&mut value);
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ServiceSpec;

    #[test]
    fn keys_match_regardless_of_case_as_in_go() {
        let body = br#"{"name":"py","Mode":{"replicated":{"replicas":2}},
            "TaskTemplate":{"ContainerSpec":{"Image":"busybox","Healthcheck":{"Test":["NONE"]}}},
            "Labels":{"lower.case":"kept"}}"#;
        let spec: ServiceSpec = read(body).unwrap();
        assert_eq!(spec.name.as_deref(), Some("py"));
        assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(2));
        let c = spec.task_template.unwrap().container_spec.unwrap();
        assert_eq!(c.health_check.unwrap().test.unwrap(), ["NONE"]);
        assert!(
            spec.labels.unwrap().contains_key("lower.case"),
            "map keys are data"
        );
    }

    #[test]
    fn bodies_that_are_not_json_get_a_400() {
        let err = read::<ServiceSpec>(b"{not json").unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
    }
}
