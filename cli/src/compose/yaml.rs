//! The YAML layer: a generic tree in which every node and key keeps the
//! file and line it came from, so later checks can name both. serde-saphyr
//! parses (merge keys and anchors included); duplicate keys are passed
//! through and reported here with their key path.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use serde_saphyr::options::DuplicateKeyPolicy;

use super::errors::{ComposeError, Result};

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: usize,
    /// The compose file the node was read from (as the user named it).
    pub file: Arc<str>,
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// How an error message names this value, in serde's words.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Int(i) => format!("integer `{i}`"),
            Value::Float(f) => format!("floating point `{f}`"),
            Value::Str(s) => format!("string {s:?}"),
            Value::Seq(_) => "a sequence".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }
}

impl Node {
    pub fn new(value: Value, line: usize, file: &Arc<str>) -> Node {
        Node {
            value,
            line,
            file: file.clone(),
        }
    }

    /// The entry `name` of a mapping node.
    pub fn get(&self, name: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(m) => m.iter().find(|(k, _)| k.name == name).map(|(_, v)| v),
            _ => None,
        }
    }

    fn set_file(&mut self, file: &Arc<str>) {
        self.file = file.clone();
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.set_file(file)),
            Value::Map(entries) => entries.iter_mut().for_each(|(_, n)| n.set_file(file)),
            _ => {}
        }
    }
}

/// Parses one compose file's text.
pub fn parse(text: &str, file: &str) -> Result<Node> {
    let options = serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        // `mode: 0440` means octal in compose files, as in Docker's YAML.
        legacy_octal_numbers: true,
    };
    let file: Arc<str> = Arc::from(file);
    let parsed: Option<Node> = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line() as usize);
        ComposeError::new(&file, line, "", syntax_message(&e))
    })?;
    let mut root = parsed.unwrap_or_else(|| Node::new(Value::Map(Vec::new()), 1, &file));
    root.set_file(&file);
    check_duplicates(&root, "")?;
    Ok(root)
}

/// serde-saphyr's message without its snippet and trailing position (we
/// print the position first ourselves).
fn syntax_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let text = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    format!("invalid YAML: {text}")
}

fn check_duplicates(node: &Node, path: &str) -> Result<()> {
    match &node.value {
        Value::Map(entries) => {
            for (i, (k, v)) in entries.iter().enumerate() {
                if entries[..i].iter().any(|(p, _)| p.name == k.name) {
                    return Err(ComposeError::new(
                        &node.file,
                        k.line,
                        path,
                        format!("duplicate key {:?}", k.name),
                    ));
                }
                check_duplicates(v, &join(path, &k.name))?;
            }
        }
        Value::Seq(items) => {
            for (i, n) in items.iter().enumerate() {
                check_duplicates(n, &format!("{path}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `a.b` from `a` and `b`; `b` alone at the root.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

// ---- serde glue: a Spanned wrapper at every level keeps the lines ----

struct Raw(Value);
struct KeyRaw(String);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = Spanned::<Raw>::deserialize(d)?;
        Ok(Node {
            value: s.value.0,
            line: s.referenced.line() as usize,
            file: Arc::from(""),
        })
    }
}

impl<'de> Deserialize<'de> for KeyRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Raw::deserialize(d)?.0 {
            Value::Str(s) => Ok(KeyRaw(s)),
            Value::Int(i) => Ok(KeyRaw(i.to_string())),
            Value::Bool(b) => Ok(KeyRaw(b.to_string())),
            Value::Float(f) => Ok(KeyRaw(f.to_string())),
            Value::Null => Ok(KeyRaw("null".into())),
            _ => Err(de::Error::custom("a mapping key must be a scalar")),
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

type R<E> = std::result::Result<Raw, E>;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> R<E> {
        Ok(Raw(Value::Null))
    }
    fn visit_none<E>(self) -> R<E> {
        Ok(Raw(Value::Null))
    }
    fn visit_bool<E>(self, v: bool) -> R<E> {
        Ok(Raw(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> R<E> {
        Ok(Raw(Value::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> R<E> {
        i64::try_from(v)
            .map(|v| Raw(Value::Int(v)))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> R<E> {
        Ok(Raw(Value::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> R<E> {
        Ok(Raw(Value::Str(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> R<E> {
        Ok(Raw(Value::Str(v)))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> R<D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> R<A::Error> {
        let mut items = Vec::new();
        while let Some(n) = a.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Raw(Value::Seq(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> R<A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = a.next_key::<Spanned<KeyRaw>>()? {
            let v = a.next_value::<Node>()?;
            let key = Key {
                name: k.value.0,
                line: k.referenced.line() as usize,
            };
            entries.push((key, v));
        }
        Ok(Raw(Value::Map(entries)))
    }
}
