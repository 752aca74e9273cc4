//! Loader tests: malformed files give one precise line each; valid ones
//! convert as Docker's stack deploy would.

mod convert;
mod errors;
mod runtime;

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::load::{Loaded, load_with_env};

/// Writes `files` (name, text) into a fresh directory and loads them in order.
pub fn load_files(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Loaded, String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths: Vec<PathBuf> = Vec::new();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        if name.ends_with(".yml") {
            paths.push(p);
        }
    }
    let mut env = BTreeMap::new();
    env.insert("TAG".to_string(), "1.36".to_string());
    env.insert("REPLICAS".to_string(), "4".to_string());
    let r = load_with_env(&paths, env).map_err(|e| e.to_string());
    (dir, r)
}

/// The error of one `compose.yml`, with the directory stripped.
pub fn error_of(yaml: &str) -> String {
    let (dir, r) = load_files(&[("compose.yml", yaml)]);
    match r {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.replace(&format!("{}/", dir.path().display()), ""),
    }
}
