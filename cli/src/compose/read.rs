//! Typed reads of tree nodes that know their key path, so each wrong type
//! or unknown key becomes `FILE:LINE: PATH: message`. Strings that look
//! like numbers or booleans are accepted where those are expected, because
//! interpolation (`replicas: ${N}`) always yields strings.

use std::collections::BTreeMap;

use super::errors::{ComposeError, Result};
use super::yaml::{Key, Node, Value, join};

/// A node and the path that leads to it.
#[derive(Clone, Copy)]
pub struct At<'a> {
    pub node: &'a Node,
    pub path: &'a str,
}

/// The entries of a mapping whose keys were checked.
pub struct Fields<'a> {
    entries: Vec<(&'a Key, At<'a>)>,
    paths: Vec<String>,
}

impl<'a> Fields<'a> {
    /// The value of `name`, with its path.
    pub fn get(&self, name: &str) -> Option<At<'_>> {
        self.entries
            .iter()
            .zip(&self.paths)
            .find(|((k, _), _)| k.name == name)
            .map(|((_, at), p)| At {
                node: at.node,
                path: p.as_str(),
            })
    }
}

impl<'a> At<'a> {
    pub fn new(node: &'a Node, path: &'a str) -> At<'a> {
        At { node, path }
    }

    pub fn err(&self, message: impl Into<String>) -> ComposeError {
        ComposeError::new(&self.node.file, self.node.line, self.path, message)
    }

    pub fn err_key(&self, key: &Key, message: impl Into<String>) -> ComposeError {
        ComposeError::new(&self.node.file, key.line, self.path, message)
    }

    fn invalid(&self, expected: &str) -> ComposeError {
        self.err(format!(
            "invalid type: {}, expected {expected}",
            self.node.value.describe()
        ))
    }

    pub fn is_null(&self) -> bool {
        matches!(self.node.value, Value::Null)
    }

    /// The entries of a mapping (a null value reads as empty).
    pub fn entries(&self) -> Result<Vec<(&'a Key, &'a Node)>> {
        match &self.node.value {
            Value::Map(m) => Ok(m.iter().map(|(k, v)| (k, v)).collect()),
            Value::Null => Ok(Vec::new()),
            _ => Err(self.invalid("a mapping")),
        }
    }

    /// A mapping whose keys must be among `known` (or `x-` extensions);
    /// keys in `ignored` are dropped and pushed onto `skipped`.
    pub fn fields(
        &self,
        known: &[&str],
        ignored: &[&str],
        skipped: &mut Vec<String>,
    ) -> Result<Fields<'a>> {
        let mut entries = Vec::new();
        let mut paths = Vec::new();
        for (k, v) in self.entries()? {
            if k.name.starts_with("x-") {
                continue;
            }
            if ignored.contains(&k.name.as_str()) {
                if !skipped.contains(&k.name) {
                    skipped.push(k.name.clone());
                }
                continue;
            }
            if !known.contains(&k.name.as_str()) {
                return Err(
                    self.err_key(k, format!("Additional property {} is not allowed", k.name))
                );
            }
            paths.push(join(self.path, &k.name));
            entries.push((k, At { node: v, path: "" }));
        }
        Ok(Fields { entries, paths })
    }

    /// The items of a sequence (a null value reads as empty).
    pub fn items(&self) -> Result<Vec<(String, &'a Node)>> {
        match &self.node.value {
            Value::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("{}[{i}]", self.path), n))
                .collect()),
            Value::Null => Ok(Vec::new()),
            _ => Err(self.invalid("a sequence")),
        }
    }

    pub fn string(&self) -> Result<String> {
        match &self.node.value {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(self.invalid("a string")),
        }
    }

    /// A string, also from a number or boolean (labels, env values).
    pub fn scalar(&self) -> Result<String> {
        match &self.node.value {
            Value::Str(s) => Ok(s.clone()),
            Value::Int(i) => Ok(i.to_string()),
            Value::Float(f) => Ok(f.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Null => Ok(String::new()),
            _ => Err(self.invalid("a string, number or boolean")),
        }
    }

    pub fn int(&self) -> Result<i64> {
        match &self.node.value {
            Value::Int(i) => Ok(*i),
            Value::Str(s) => s.trim().parse().map_err(|_| self.invalid("an integer")),
            _ => Err(self.invalid("an integer")),
        }
    }

    pub fn uint(&self) -> Result<u64> {
        let v = self.int()?;
        u64::try_from(v).map_err(|_| self.err(format!("{v} is negative: expected 0 or more")))
    }

    pub fn u32(&self) -> Result<u32> {
        let v = self.uint()?;
        u32::try_from(v).map_err(|_| self.err(format!("{v} is too large")))
    }

    pub fn float(&self) -> Result<f64> {
        match &self.node.value {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) => Ok(*f),
            Value::Str(s) => s.trim().parse().map_err(|_| self.invalid("a number")),
            _ => Err(self.invalid("a number")),
        }
    }

    pub fn bool(&self) -> Result<bool> {
        match &self.node.value {
            Value::Bool(b) => Ok(*b),
            Value::Str(s) if s.eq_ignore_ascii_case("true") => Ok(true),
            Value::Str(s) if s.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(self.invalid("a boolean")),
        }
    }

    /// A list of strings.
    pub fn strings(&self) -> Result<Vec<String>> {
        self.items()?
            .iter()
            .map(|(p, n)| At::new(n, p).scalar())
            .collect()
    }

    /// A string or a list of strings (`env_file`, `dns`...).
    pub fn string_or_list(&self) -> Result<Vec<String>> {
        match &self.node.value {
            Value::Str(s) => Ok(vec![s.clone()]),
            _ => self.strings(),
        }
    }

    /// `KEY: value` or `["KEY=value", "KEY"]`; a value of `None` is a
    /// bare `KEY` (for env: taken from the environment).
    pub fn dict(&self) -> Result<BTreeMap<String, Option<String>>> {
        let mut out = BTreeMap::new();
        match &self.node.value {
            Value::Seq(_) => {
                for (p, n) in self.items()? {
                    let item = At::new(n, &p).scalar()?;
                    match item.split_once('=') {
                        Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                        None => out.insert(item, None),
                    };
                }
            }
            _ => {
                for (k, v) in self.entries()? {
                    let path = join(self.path, &k.name);
                    let at = At::new(v, &path);
                    let value = if at.is_null() {
                        None
                    } else {
                        Some(at.scalar()?)
                    };
                    out.insert(k.name.clone(), value);
                }
            }
        }
        Ok(out)
    }

    /// Like [`At::dict`], with bare keys read as empty values (labels).
    pub fn labels(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .dict()?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect())
    }

    /// A Go duration (`10s`, `1m30s`).
    pub fn duration(&self) -> Result<prost_types::Duration> {
        let text = self.scalar()?;
        crate::spec::duration(&text).map_err(|m| self.err(m))
    }

    /// A byte size (`512M`, `2g`, or a plain number of bytes).
    pub fn bytes(&self) -> Result<i64> {
        let text = self.scalar()?;
        crate::spec::memory(&text).map_err(|m| self.err(m))
    }
}
