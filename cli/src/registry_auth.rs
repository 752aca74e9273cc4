//! `--with-registry-auth`: the caller's credentials for a service's image
//! registry, read where `docker login` keeps them (`$DOCKER_CONFIG` or
//! `~/.docker/config.json`, the `auths` map), so a Swarm user's login works
//! unchanged. Credential helpers (`credsStore`) are not run.

use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use shoal_proto::objects::{RegistryAuth, ServiceSpec};

/// Docker's key for Docker Hub in `auths`.
const DOCKER_HUB: &str = "https://index.docker.io/v1/";

/// The registry host of an image reference (`docker.io` when it names none).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// Credentials for `image`'s registry from `config` (a docker config.json).
pub fn from_config(config: &str, image: &str) -> anyhow::Result<Option<RegistryAuth>> {
    let json: serde_json::Value =
        serde_json::from_str(config).context("the docker config is not JSON")?;
    let registry = registry_of(image);
    let Some(auths) = json.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let hub = registry == "docker.io";
    let entry = auths.iter().find(|(key, _)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        host == registry
            || (hub && (key.as_str() == DOCKER_HUB || host.starts_with("index.docker.io")))
    });
    let Some((_, entry)) = entry else {
        return Ok(None);
    };
    let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .context("a docker config `auth` is not base64")?;
    let decoded = String::from_utf8(decoded).context("a docker config `auth` is not UTF-8")?;
    let (username, password) = decoded
        .split_once(':')
        .context("a docker config `auth` is not user:password")?;
    Ok(Some(RegistryAuth {
        server: registry.to_string(),
        username: username.to_string(),
        password: password.to_string(),
    }))
}

/// The docker config of the caller.
fn config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The caller's login for `image`'s registry, if `docker login` made one.
pub fn login_for(image: &str) -> anyhow::Result<Option<RegistryAuth>> {
    let Some(path) = config_path() else {
        return Ok(None);
    };
    let config = match std::fs::read_to_string(&path) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    from_config(&config, image).with_context(|| format!("in {}", path.display()))
}

/// Puts the caller's credentials for the spec's image into it. Without a
/// login for that registry the spec is left as it is (Docker sends empty
/// credentials then, and the nodes pull anonymously).
pub fn attach(spec: &mut ServiceSpec) -> anyhow::Result<()> {
    if let Some(container) = spec.task.as_mut().and_then(|t| t.container.as_mut()) {
        container.registry_auth = login_for(&container.image)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_login_of_the_images_registry() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let config = format!(
            r#"{{"auths": {{"198.18.0.10:5001": {{"auth": "{auth}"}}, "https://index.docker.io/v1/": {{"auth": "{auth}"}}}}}}"#
        );
        let a = from_config(&config, "198.18.0.10:5001/team/app:1")
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.username.as_str(), a.password.as_str()),
            ("alice", "s3cret")
        );
        assert_eq!(a.server, "198.18.0.10:5001");
        let hub = from_config(&config, "library/redis:7").unwrap().unwrap();
        assert_eq!(hub.server, "docker.io");
        assert!(from_config(&config, "ghcr.io/x/y").unwrap().is_none());
        assert!(from_config("{}", "busybox").unwrap().is_none());
        assert!(from_config("nope", "busybox").is_err());
    }

    #[test]
    fn registry_hosts() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1"), "docker.io");
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("10.0.0.1:5000/x:1"), "10.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/o/r@sha256:ab"), "ghcr.io");
    }
}
