//! Reading a project: each `-c` file is parsed, checked for a swarm-able
//! version and interpolated (shell variables win over `.env` beside the
//! first file), then the files are merged in order as `docker stack
//! deploy` does: mappings merge key by key, lists of ports, volumes,
//! secrets and configs are appended, other values are replaced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::errors::{ComposeError, Result};
use super::interp::{self, Env};
use super::model::{self, Project};
use super::yaml::{self, Key, Node, Value, join};

/// A loaded project and the warnings to print before acting on it.
#[derive(Debug)]
pub struct Loaded {
    pub project: Project,
    pub warnings: Vec<String>,
}

/// Loads `files` with the process environment and `.env`.
pub fn load(files: &[PathBuf]) -> Result<Loaded> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    if let Some(first) = files.first() {
        let dir = first.parent().unwrap_or_else(|| Path::new("."));
        let dot_env = if dir.as_os_str().is_empty() {
            PathBuf::from(".env")
        } else {
            dir.join(".env")
        };
        if let Ok(text) = std::fs::read_to_string(&dot_env) {
            for (k, v) in parse_env_text(&text) {
                vars.insert(k, v.unwrap_or_default());
            }
        }
    }
    vars.extend(std::env::vars());
    load_with_env(files, vars)
}

/// Loads `files` with exactly `vars` as the environment.
pub fn load_with_env(files: &[PathBuf], vars: BTreeMap<String, String>) -> Result<Loaded> {
    if files.is_empty() {
        return Err(ComposeError::new(
            "",
            0,
            "",
            "no compose file given: use -c FILE",
        ));
    }
    let mut env = Env::new(vars);
    let mut merged: Option<Node> = None;
    for file in files {
        let name = file.to_string_lossy().into_owned();
        let text = if name == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(file)
        }
        .map_err(|e| ComposeError::new(&name, 0, "", format!("cannot read the file: {e}")))?;
        let mut root = yaml::parse(&text, &name)?;
        if !matches!(root.value, Value::Map(_)) {
            return Err(ComposeError::new(
                &name,
                root.line,
                "",
                format!(
                    "invalid type: {}, expected a mapping at the top level",
                    root.value.describe()
                ),
            ));
        }
        check_version(&root)?;
        interp::tree(&mut root, "", &mut env)?;
        normalize(&mut root, "");
        merged = Some(match merged {
            None => root,
            Some(mut base) => {
                merge(&mut base, root, "");
                base
            }
        });
    }
    let root = merged.unwrap_or_else(|| Node::new(Value::Map(Vec::new()), 1, &Arc::from("")));
    let project = model::project(&root, &env.vars)?;
    let mut warnings: Vec<String> = env
        .unset
        .iter()
        .map(|v| format!("The {v:?} variable is not set. Defaulting to a blank string."))
        .collect();
    if !project.ignored.is_empty() {
        warnings.push(format!(
            "Ignoring unsupported options: {}",
            project.ignored.join(", ")
        ));
    }
    Ok(Loaded { project, warnings })
}

/// Swarm stacks need compose 3.x or the versionless specification.
fn check_version(root: &Node) -> Result<()> {
    let Some(v) = root.get("version") else {
        return Ok(());
    };
    let text = match &v.value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        other => {
            return Err(ComposeError::new(
                &v.file,
                v.line,
                "version",
                format!("invalid type: {}, expected a string", other.describe()),
            ));
        }
    };
    let ok = text == "3"
        || text
            .strip_prefix("3.")
            .is_some_and(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()));
    if !ok {
        return Err(ComposeError::new(
            &v.file,
            v.line,
            "version",
            format!(
                "unsupported Compose file version: {text}: swarm stacks need version 3.x (or none)"
            ),
        ));
    }
    Ok(())
}

/// `environment` and `labels` given as `KEY=VALUE` lists become mappings,
/// so two files merge them key by key.
fn normalize(node: &mut Node, path: &str) {
    let last = path.rsplit('.').next().unwrap_or("");
    if matches!(last, "environment" | "labels")
        && let Value::Seq(items) = &node.value
    {
        let mut entries = Vec::new();
        for item in items {
            if let Value::Str(s) = &item.value {
                let (k, v) = match s.split_once('=') {
                    Some((k, v)) => (k.to_string(), Value::Str(v.to_string())),
                    None => (s.clone(), Value::Null),
                };
                let key = Key {
                    name: k,
                    line: item.line,
                };
                entries.push((key, Node::new(v, item.line, &item.file)));
            } else {
                // Leave odd lists alone: the model reports their type.
                return;
            }
        }
        node.value = Value::Map(entries);
        return;
    }
    if let Value::Map(entries) = &mut node.value {
        for (k, v) in entries.iter_mut() {
            normalize(v, &join(path, &k.name));
        }
    }
}

/// Lists that later files extend rather than replace.
const APPENDED: &[&str] = &[
    "ports", "volumes", "secrets", "configs", "env_file", "tmpfs",
];

fn merge(base: &mut Node, over: Node, path: &str) {
    let last = path.rsplit('.').next().unwrap_or("");
    match (&mut base.value, over.value) {
        (Value::Map(b), Value::Map(o)) => {
            for (k, v) in o {
                let child = join(path, &k.name);
                match b.iter_mut().find(|(bk, _)| bk.name == k.name) {
                    Some((_, bv)) => merge(bv, v, &child),
                    None => b.push((k, v)),
                }
            }
        }
        (Value::Seq(b), Value::Seq(o))
            if APPENDED.contains(&last) && path.starts_with("services.") =>
        {
            for item in o {
                if !b.iter().any(|x| same(x, &item)) {
                    b.push(item);
                }
            }
        }
        (_, value) => {
            base.value = value;
            base.line = over.line;
            base.file = over.file;
        }
    }
}

/// Equal values, whatever their positions.
fn same(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, a), (kb, b))| ka.name == kb.name && same(a, b))
        }
        (x, y) => x == y,
    }
}

/// `KEY=VALUE` lines of an env file or `.env`: comments and blank lines
/// skipped, `export ` allowed, matching quotes removed; a bare `KEY` has
/// no value.
pub fn parse_env_text(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        match line.split_once('=') {
            Some((k, v)) => {
                let v = v.trim();
                let v = ['"', '\'']
                    .iter()
                    .find_map(|q| v.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                    .unwrap_or(v);
                out.push((k.trim().to_string(), Some(v.to_string())));
            }
            None => out.push((line.to_string(), None)),
        }
    }
    out
}
