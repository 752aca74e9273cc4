//! Variable interpolation as Docker's compose does it: `$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`,
//! `${VAR:+alt}`, `${VAR+alt}`, and `$$` for a literal `$`. Defaults may
//! themselves hold variables. Applied to every string value of the tree
//! (not to keys), before any type check, so `replicas: ${N}` works.

use std::collections::BTreeMap;

use super::errors::{ComposeError, Result};
use super::yaml::{Node, Value, join};

/// Variables to substitute, and the names found unset (for the warning
/// Docker prints: they become empty strings).
#[derive(Debug, Default)]
pub struct Env {
    pub vars: BTreeMap<String, String>,
    pub unset: Vec<String>,
}

impl Env {
    pub fn new(vars: BTreeMap<String, String>) -> Env {
        Env {
            vars,
            unset: Vec::new(),
        }
    }
}

/// Interpolates every string in `node`.
pub fn tree(node: &mut Node, path: &str, env: &mut Env) -> Result<()> {
    match &mut node.value {
        Value::Str(s) => {
            *s = string(s, env).map_err(|m| ComposeError::new(&node.file, node.line, path, m))?;
        }
        Value::Seq(items) => {
            for (i, n) in items.iter_mut().enumerate() {
                tree(n, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Map(entries) => {
            for (k, n) in entries.iter_mut() {
                tree(n, &join(path, &k.name), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn invalid(s: &str) -> String {
    format!("invalid interpolation format {s:?}: you may need to escape any $ with another $")
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Interpolates one string; the error is the message only.
pub fn string(s: &str, env: &mut Env) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut chars = after.chars();
        match chars.next() {
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('{') => {
                let end = closing_brace(&after[1..]).ok_or_else(|| invalid(s))?;
                let inner = &after[1..1 + end];
                out.push_str(&braced(inner, s, env)?);
                rest = &after[1 + end + 1..];
            }
            Some(c) if is_name_start(c) => {
                let len = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
                out.push_str(&lookup(&after[..len], env));
                rest = &after[len..];
            }
            _ => return Err(invalid(s)),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` closing a `${`, counting nested `${...}`.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn lookup(name: &str, env: &mut Env) -> String {
    match env.vars.get(name) {
        Some(v) => v.clone(),
        None => {
            if !env.unset.iter().any(|u| u == name) {
                env.unset.push(name.to_string());
            }
            String::new()
        }
    }
}

/// The inside of `${...}`: a name and an optional operator.
fn braced(inner: &str, whole: &str, env: &mut Env) -> std::result::Result<String, String> {
    let len = inner.find(|c: char| !is_name(c)).unwrap_or(inner.len());
    let name = &inner[..len];
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(invalid(whole));
    }
    let op = &inner[len..];
    let value = env.vars.get(name).cloned();
    let nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    let (kind, arg) = if let Some(a) = op.strip_prefix(":-") {
        ("default-if-empty", a)
    } else if let Some(a) = op.strip_prefix('-') {
        ("default-if-unset", a)
    } else if let Some(a) = op.strip_prefix(":?") {
        ("error-if-empty", a)
    } else if let Some(a) = op.strip_prefix('?') {
        ("error-if-unset", a)
    } else if let Some(a) = op.strip_prefix(":+") {
        ("alt-if-nonempty", a)
    } else if let Some(a) = op.strip_prefix('+') {
        ("alt-if-set", a)
    } else if op.is_empty() {
        return Ok(lookup(name, env));
    } else {
        return Err(invalid(whole));
    };
    let unset_msg = |arg: &str, empty: bool| {
        let why = if arg.is_empty() {
            if empty {
                "is empty or unset"
            } else {
                "is unset"
            }
            .to_string()
        } else {
            arg.to_string()
        };
        format!("required variable {name} is missing a value: {why}")
    };
    Ok(match kind {
        "default-if-empty" if nonempty => value.unwrap_or_default(),
        "default-if-empty" => string(arg, env)?,
        "default-if-unset" => match value {
            Some(v) => v,
            None => string(arg, env)?,
        },
        "error-if-empty" if nonempty => value.unwrap_or_default(),
        "error-if-empty" => return Err(unset_msg(&string(arg, env)?, true)),
        "error-if-unset" => match value {
            Some(v) => v,
            None => return Err(unset_msg(&string(arg, env)?, false)),
        },
        "alt-if-nonempty" if nonempty => string(arg, env)?,
        "alt-if-set" if value.is_some() => string(arg, env)?,
        _ => String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        let mut v = BTreeMap::new();
        v.insert("TAG".to_string(), "1.2".to_string());
        v.insert("EMPTY".to_string(), String::new());
        Env::new(v)
    }

    #[test]
    fn forms() {
        let mut e = env();
        let cases = [
            ("busybox:${TAG}", "busybox:1.2"),
            ("busybox:$TAG", "busybox:1.2"),
            ("${NOPE:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${NOPE-x${TAG}}", "x1.2"),
            ("$$TAG", "$TAG"),
            ("${TAG:+set}", "set"),
            ("${EMPTY:+set}", ""),
            ("${TAG:?boom}", "1.2"),
        ];
        for (input, want) in cases {
            assert_eq!(string(input, &mut e).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn errors_and_unset() {
        let mut e = env();
        assert!(
            string("${TAG", &mut e)
                .unwrap_err()
                .contains("invalid interpolation")
        );
        assert!(string("${}", &mut e).is_err());
        assert!(string("a $ b", &mut e).is_err());
        let err = string("${NOPE:?must be set}", &mut e).unwrap_err();
        assert_eq!(
            err,
            "required variable NOPE is missing a value: must be set"
        );
        assert_eq!(string("x${NOPE}y", &mut e).as_deref(), Ok("xy"));
        assert_eq!(e.unset, vec!["NOPE".to_string()]);
    }
}
