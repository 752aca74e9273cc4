//! Image names. Everything in the store is keyed by the normal form Docker
//! uses (`docker.io/library/busybox:latest`), so `busybox`,
//! `library/busybox` and `docker.io/busybox:latest` are one image.

use std::net::IpAddr;

use oci_client::Reference;

use super::{ImageError, RegistryConfig};

/// Parses a reference; Docker Hub and `:latest` are filled in.
pub(crate) fn parse(reference: &str) -> Result<Reference, ImageError> {
    let reference = reference.trim();
    let bad = || ImageError::BadReference(reference.to_string());
    let parsed = reference.parse::<Reference>().map_err(|_| bad())?;
    // The grammar lets "UPPER/x" through as a registry host; Docker Hub
    // then makes it a repository, which must be lowercase.
    if parsed.repository().bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    Ok(parsed)
}

/// The normal form of a reference: `registry/repository[:tag][@digest]`,
/// `:latest` when it has neither tag nor digest.
pub fn normalize(reference: &str) -> Result<String, ImageError> {
    Ok(parse(reference)?.whole())
}

/// `registry/repository@digest`: the repo-digest form, without any tag.
pub(crate) fn repo_digest(reference: &Reference, digest: &str) -> String {
    format!(
        "{}/{}@{digest}",
        reference.registry(),
        reference.repository()
    )
}

/// `registry/repository:tag`, when the reference has a tag and no digest:
/// the name a pull records (a pull by digest pins content, not a tag).
pub(crate) fn tag_name(reference: &Reference) -> Option<String> {
    match (reference.tag(), reference.digest()) {
        (Some(tag), None) => Some(format!(
            "{}/{}:{tag}",
            reference.registry(),
            reference.repository()
        )),
        _ => None,
    }
}

/// Whether a registry (`host[:port]`, as written in the reference) is
/// reached over plain HTTP.
pub(crate) fn is_insecure(registry: &str, config: &RegistryConfig) -> bool {
    let host = host_of(registry);
    if host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    let ip = host.parse::<IpAddr>().ok();
    config
        .insecure
        .iter()
        .any(|entry| entry == registry || entry == host || ip.is_some_and(|ip| in_cidr(ip, entry)))
}

/// Whether `ip` is in `cidr` (`198.18.0.0/15`), as dockerd's
/// `--insecure-registry` accepts; `false` for anything else.
fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The host part of `host[:port]` (`[v6]:port` too).
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalizes_like_docker() {
        let n = |r: &str| normalize(r).unwrap();
        assert_eq!(n("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(n("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            n("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(n("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(
            n("198.18.0.1:5000/demo/web:1"),
            "198.18.0.1:5000/demo/web:1"
        );
        assert_eq!(n("localhost/web"), "localhost/web:latest");
        assert_eq!(n(" ghcr.io/a/b "), "ghcr.io/a/b:latest");
        assert_eq!(
            n(&format!("busybox@{D}")),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(
            n(&format!("nginx:1.25@{D}")),
            format!("docker.io/library/nginx:1.25@{D}")
        );
    }

    #[test]
    fn refuses_bad_references() {
        for bad in ["", "UPPER/case", "a b", "web:", "busybox@sha256:123", "-x"] {
            assert!(
                matches!(normalize(bad), Err(ImageError::BadReference(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_for_the_index() {
        let r = parse(&format!("nginx:1.25@{D}")).unwrap();
        assert_eq!(repo_digest(&r, D), format!("docker.io/library/nginx@{D}"));
        assert_eq!(tag_name(&r), None);
        let r = parse("10.0.0.1:5000/web").unwrap();
        assert_eq!(tag_name(&r).as_deref(), Some("10.0.0.1:5000/web:latest"));
    }

    #[test]
    fn insecure_registries() {
        let config = RegistryConfig {
            insecure: vec!["198.18.0.1:5000".into(), "registry.lan".into()],
        };
        assert!(is_insecure("127.0.0.1:5000", &config));
        assert!(is_insecure("127.1.2.3", &config));
        assert!(is_insecure("localhost:5000", &config));
        assert!(is_insecure("[::1]:5000", &config));
        assert!(is_insecure("198.18.0.1:5000", &config));
        assert!(is_insecure("registry.lan:443", &config));
        assert!(!is_insecure("198.18.0.1:5001", &config));
        let cidr = RegistryConfig {
            insecure: vec!["198.18.0.0/15".into()],
        };
        assert!(is_insecure("198.19.3.4:5000", &cidr));
        assert!(!is_insecure("198.20.0.1:5000", &cidr));
        assert!(!is_insecure("registry.lan", &cidr));
        assert!(!is_insecure("docker.io", &config));
        assert!(!is_insecure("ghcr.io", &RegistryConfig::default()));
    }
}
