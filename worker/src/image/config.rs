//! The image config blob: oci-spec reads the OCI part; Docker's
//! `Healthcheck` (not in the OCI spec) is read on the side.

use std::time::Duration;

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use super::{ImageConfig, ImageError, ImageHealthcheck, digest_hex};

/// An image config blob, parsed.
pub(crate) struct ParsedConfig {
    /// What a task needs.
    pub config: ImageConfig,
    /// `rootfs.diff_ids`, lowest layer first.
    pub diff_ids: Vec<String>,
}

/// Parses a config blob; `Corrupt` when it is not an image config or its
/// diff_ids are not sha256 digests (they become paths).
pub(crate) fn parse(bytes: &[u8]) -> Result<ParsedConfig, ImageError> {
    let bad = |e: serde_json::Error| ImageError::Corrupt(format!("bad image config: {e}"));
    let oci: ImageConfiguration = serde_json::from_slice(bytes).map_err(bad)?;
    let docker: DockerConfig = serde_json::from_slice(bytes).map_err(bad)?;
    let diff_ids = oci.rootfs().diff_ids().clone();
    if let Some(bad) = diff_ids.iter().find(|d| digest_hex(d).is_none()) {
        return Err(ImageError::Corrupt(format!(
            "bad image config: unsupported diff_id {bad:?}"
        )));
    }
    let mut config = ImageConfig::default();
    if let Some(c) = oci.config() {
        let list = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
        config = ImageConfig {
            entrypoint: list(c.entrypoint()),
            cmd: list(c.cmd()),
            env: list(c.env()),
            working_dir: c.working_dir().clone().unwrap_or_default(),
            user: c.user().clone().unwrap_or_default(),
            exposed_ports: list(c.exposed_ports()),
            stop_signal: c.stop_signal().clone().unwrap_or_default(),
            healthcheck: None,
            volumes: list(c.volumes()),
            labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
        };
        config.exposed_ports.sort();
        config.volumes.sort();
    }
    config.healthcheck = docker
        .config
        .and_then(|c| c.healthcheck)
        .map(|h| ImageHealthcheck {
            test: h.test.unwrap_or_default(),
            interval: nanos(h.interval),
            timeout: nanos(h.timeout),
            start_period: nanos(h.start_period),
            retries: h.retries.unwrap_or(0),
        });
    Ok(ParsedConfig { config, diff_ids })
}

/// Docker stores durations as nanoseconds; 0 means "the default".
fn nanos(value: Option<i64>) -> Option<Duration> {
    value
        .filter(|n| *n > 0)
        .map(|n| Duration::from_nanos(n as u64))
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    config: Option<DockerRunConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerRunConfig {
    #[serde(default)]
    healthcheck: Option<DockerHealthcheck>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerHealthcheck {
    #[serde(default)]
    test: Option<Vec<String>>,
    #[serde(default)]
    interval: Option<i64>,
    #[serde(default)]
    timeout: Option<i64>,
    #[serde(default)]
    start_period: Option<i64>,
    #[serde(default)]
    retries: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_with_healthcheck() {
        let json = r#"{
          "architecture": "amd64", "os": "linux",
          "config": {
            "User": "1000:1000", "Env": ["PATH=/bin", "FOO=bar"],
            "Entrypoint": ["/docker-entrypoint.sh"], "Cmd": null,
            "WorkingDir": "/work", "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
            "Volumes": {"/data": {}}, "StopSignal": "SIGQUIT",
            "Labels": {"a": "b"},
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5000000000,
                            "Timeout": 0, "StartPeriod": 1000000000, "Retries": 3}
          },
          "rootfs": {"type": "layers", "diff_ids": [
            "sha256:1111111111111111111111111111111111111111111111111111111111111111"]}
        }"#;
        let parsed = parse(json.as_bytes()).unwrap();
        let c = parsed.config;
        assert_eq!(c.user, "1000:1000");
        assert_eq!(c.env, ["PATH=/bin", "FOO=bar"]);
        assert_eq!(c.entrypoint, ["/docker-entrypoint.sh"]);
        assert!(c.cmd.is_empty());
        assert_eq!(c.working_dir, "/work");
        assert_eq!(c.exposed_ports, ["443/tcp", "80/tcp"]);
        assert_eq!(c.volumes, ["/data"]);
        assert_eq!(c.stop_signal, "SIGQUIT");
        assert_eq!(c.labels.get("a").map(String::as_str), Some("b"));
        let h = c.healthcheck.unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "true"]);
        assert_eq!(h.interval, Some(Duration::from_secs(5)));
        assert_eq!(h.timeout, None);
        assert_eq!(h.start_period, Some(Duration::from_secs(1)));
        assert_eq!(h.retries, 3);
        assert_eq!(parsed.diff_ids.len(), 1);
    }

    #[test]
    fn minimal_and_bad_configs() {
        let minimal =
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let parsed = parse(minimal.as_bytes()).unwrap();
        assert_eq!(parsed.config, ImageConfig::default());
        assert!(matches!(parse(b"not json"), Err(ImageError::Corrupt(_))));
        let escaping = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:../../x"]}}"#;
        assert!(matches!(
            parse(escaping.as_bytes()),
            Err(ImageError::Corrupt(_))
        ));
    }
}
