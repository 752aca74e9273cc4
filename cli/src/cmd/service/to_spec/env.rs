//! `--env`, `--env-file` and `--env-add/-rm`: the container's variables,
//! with Docker's rules for a bare `KEY` and for replacing a variable.

use anyhow::{Context, bail};

/// The name of a `KEY=VALUE` variable.
pub(super) fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// `KEY` alone takes its value from this environment, and is dropped when
/// unset there, as Docker does.
pub(super) fn expand_env(list: &[String]) -> Vec<String> {
    list.iter()
        .filter_map(|e| match e.contains('=') {
            true => Some(e.clone()),
            false => std::env::var(e).ok().map(|v| format!("{e}={v}")),
        })
        .collect()
}

/// `base` with each of `add` replacing the entry of the same key in place,
/// or appended.
pub(super) fn merge_env(mut base: Vec<String>, add: &[String]) -> Vec<String> {
    for e in add {
        match base.iter_mut().find(|b| env_key(b) == env_key(e)) {
            Some(slot) => *slot = e.clone(),
            None => base.push(e.clone()),
        }
    }
    base
}

/// The variables of an env file: `KEY=VALUE` lines, `KEY` alone taken from
/// here, `#` comments and blank lines skipped.
pub(super) fn read_env_file(path: &str) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read env file {path}"))?;
    parse_env_file(&text).with_context(|| format!("in env file {path}"))
}

fn parse_env_file(text: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if env_key(line).is_empty() || env_key(line).contains(char::is_whitespace) {
            bail!(
                "line {}: variable {:?} has an invalid name",
                i + 1,
                env_key(line)
            );
        }
        out.extend(expand_env(&[line.to_string()]));
    }
    Ok(out)
}
