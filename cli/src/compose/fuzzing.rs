//! The `compose_loader` fuzz target's harness (`fuzz/`). Not an API:
//! nothing else calls it, and it may change with the target.
//!
//! Input: up to three compose files, split at NUL bytes, loaded and merged
//! in order as `shoal stack deploy -c a.yml -c b.yml -c c.yml` does, with a
//! fixed environment (`TAG`, `REPLICAS`, `EMPTY`), beside an env file
//! (`app.env`) and a secret file (`demo-secret.txt`) they may name. What
//! loads is converted to specs as a deploy converts it.
//!
//! What must hold: nothing panics, and every error is one line (the
//! loader's promise: `FILE:LINE: KEY: message`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::load::load_with_env;

/// Loads the files `data` holds, in `dir` (emptied first).
pub fn compose_loader(dir: &Path, data: &[u8]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create the stack directory");
    std::fs::write(dir.join("app.env"), "A=1\nexport B='two'\n# c\nC\n").expect("env file");
    std::fs::write(dir.join("demo-secret.txt"), "s3cr3t\n").expect("secret file");
    let mut files: Vec<PathBuf> = Vec::new();
    for (i, text) in data.splitn(3, |&b| b == 0).enumerate() {
        let path = dir.join(format!("compose-{i}.yml"));
        std::fs::write(&path, text).expect("write a compose file");
        files.push(path);
    }
    let env: BTreeMap<String, String> = [("TAG", "1.36"), ("REPLICAS", "4"), ("EMPTY", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match load_with_env(&files, env) {
        Ok(loaded) => {
            let _ = super::convert::desired("fuzz", &loaded.project);
        }
        Err(e) => {
            let text = e.to_string();
            assert!(
                !text.contains('\n'),
                "an error of more than one line: {text:?}"
            );
        }
    }
}

/// Inputs that load, to start a corpus from.
pub fn seeds() -> Vec<Vec<u8>> {
    let demo = include_str!("../../../deploy/examples/demo-stack.yml");
    let small = "\
version: \"3.8\"
services:
  api:
    image: registry.local/api:${TAG}
    env_file: app.env
    environment:
      - MODE=prod
      - EMPTY=${EMPTY:-none}
    ports: [\"8080:80/tcp\", \"9000-9001:9000-9001/udp\"]
    deploy:
      mode: replicated
      replicas: ${REPLICAS}
      resources:
        limits: {cpus: \"0.5\", memory: 64M}
      placement:
        constraints: [node.role == worker]
    healthcheck:
      test: [\"CMD\", \"true\"]
      interval: 5s
    volumes:
      - data:/var/lib/data:ro
      - type: tmpfs
        target: /tmp
configs:
  cfg:
    content: |
      key: value
volumes:
  data: {}
";
    let overlay = "\
services:
  api:
    labels:
      - tier=back
    ports: [\"8443:443\"]
    deploy:
      replicas: 2
x-extra: &anchor
  command: [\"sh\", \"-c\", \"echo $$HOME\"]
";
    vec![
        demo.as_bytes().to_vec(),
        small.as_bytes().to_vec(),
        [small.as_bytes(), &[0], overlay.as_bytes()].concat(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_load() {
        for seed in seeds() {
            let dir = tempfile::tempdir().expect("tempdir");
            let files: Vec<PathBuf> = seed
                .splitn(3, |&b| b == 0)
                .enumerate()
                .map(|(i, text)| {
                    let path = dir.path().join(format!("compose-{i}.yml"));
                    std::fs::write(&path, text).expect("write");
                    path
                })
                .collect();
            std::fs::write(dir.path().join("app.env"), "A=1\n").expect("env");
            std::fs::write(dir.path().join("demo-secret.txt"), "s\n").expect("secret");
            let env = [("TAG", "1"), ("REPLICAS", "4"), ("EMPTY", "")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if let Err(e) = load_with_env(&files, env) {
                panic!("a seed does not load: {e}");
            }
            compose_loader(&dir.path().join("fuzz"), &seed);
        }
    }

    /// Writes the seeds into `fuzz/corpus/compose_loader/` (`cargo test -p
    /// shoal --lib compose::fuzzing::tests::write_seeds -- --ignored`).
    #[test]
    #[ignore = "writes the fuzz seed corpus"]
    fn write_seeds() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/compose_loader");
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (i, data) in seeds().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), data).expect("write a seed");
        }
    }
}
