//! Networks, secrets and configs as Docker's types, and their create bodies.
//! Secret data is never returned: Shoal's control API does not hand it out.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bollard::models::{
    Config, ConfigSpec, Ipam, IpamConfig, Network, NetworkCreateRequest, Secret, SecretSpec,
};
use shoal_proto::objects;

use super::{times, version};

/// Docker's name for Shoal's overlay driver.
const OVERLAY: &str = "overlay";

/// A network as `GET /networks` answers it (swarm scope).
pub fn network_to_docker(network: &objects::Network) -> Network {
    let spec = network.spec.clone().unwrap_or_default();
    let annotations = spec.annotations.clone().unwrap_or_default();
    let driver = network
        .driver_state
        .as_ref()
        .or(spec.driver_config.as_ref());
    let ipam = network.ipam.as_ref().or(spec.ipam.as_ref());
    Network {
        name: Some(annotations.name),
        id: Some(network.id.clone()),
        created: times(network.meta.as_ref()).0,
        scope: Some("swarm".into()),
        driver: Some(driver.map_or(OVERLAY.to_string(), |d| d.name.clone())),
        enable_ipv4: Some(true),
        enable_ipv6: Some(false),
        ipam: Some(Ipam {
            driver: Some(
                ipam.and_then(|i| i.driver.as_ref())
                    .map_or("default".to_string(), |d| d.name.clone()),
            ),
            config: Some(
                ipam.map(|i| {
                    i.configs
                        .iter()
                        .map(|c| IpamConfig {
                            subnet: Some(c.subnet.clone()),
                            ip_range: (!c.range.is_empty()).then(|| c.range.clone()),
                            gateway: Some(c.gateway.clone()),
                            auxiliary_addresses: None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            ),
            options: None,
        }),
        internal: Some(spec.internal),
        attachable: Some(spec.attachable),
        ingress: Some(spec.ingress),
        config_from: None,
        config_only: Some(false),
        options: Some(
            driver
                .map(|d| d.options.clone().into_iter().collect())
                .unwrap_or_default(),
        ),
        labels: Some(annotations.labels.into_iter().collect()),
        peers: None,
    }
}

/// `POST /networks/create` as Shoal's spec: swarm-scoped overlays only.
pub fn network_from_docker(req: NetworkCreateRequest) -> Result<objects::NetworkSpec, String> {
    let driver = req.driver.unwrap_or_else(|| "bridge".to_string());
    if driver != OVERLAY {
        return Err(format!(
            "Shoal serves swarm networks only: driver {driver:?} is not supported, use -d overlay"
        ));
    }
    if req.config_only == Some(true) || req.config_from.is_some() {
        return Err("config-only networks are not supported by Shoal".into());
    }
    if req.enable_ipv6 == Some(true) {
        return Err("IPv6 networks are not supported by Shoal".into());
    }
    let ipam = req.ipam.map(|ipam| objects::IpamOptions {
        driver: ipam
            .driver
            .filter(|d| d != "default")
            .map(|name| objects::Driver {
                name,
                options: ipam.options.unwrap_or_default().into_iter().collect(),
            }),
        configs: ipam
            .config
            .unwrap_or_default()
            .into_iter()
            .map(|c| objects::IpamConfig {
                subnet: c.subnet.unwrap_or_default(),
                range: c.ip_range.unwrap_or_default(),
                gateway: c.gateway.unwrap_or_default(),
            })
            .collect(),
    });
    Ok(objects::NetworkSpec {
        annotations: Some(objects::Annotations {
            name: req.name,
            labels: req.labels.unwrap_or_default().into_iter().collect(),
        }),
        driver_config: Some(objects::Driver {
            name: driver,
            options: req.options.unwrap_or_default().into_iter().collect(),
        }),
        internal: req.internal.unwrap_or(false),
        attachable: req.attachable.unwrap_or(false),
        ingress: req.ingress.unwrap_or(false),
        ipam,
    })
}

/// A secret without its data.
pub fn secret_to_docker(secret: &objects::Secret) -> Secret {
    let (created_at, updated_at) = times(secret.meta.as_ref());
    let annotations = secret
        .spec
        .as_ref()
        .and_then(|s| s.annotations.clone())
        .unwrap_or_default();
    Secret {
        id: Some(secret.id.clone()),
        version: version(secret.meta.as_ref()),
        created_at,
        updated_at,
        spec: Some(SecretSpec {
            name: Some(annotations.name),
            labels: Some(annotations.labels.into_iter().collect()),
            data: None,
            driver: None,
            templating: None,
        }),
    }
}

/// A config, with its data (configs are not secret).
pub fn config_to_docker(config: &objects::Config) -> Config {
    let (created_at, updated_at) = times(config.meta.as_ref());
    let spec = config.spec.clone().unwrap_or_default();
    let annotations = spec.annotations.unwrap_or_default();
    Config {
        id: Some(config.id.clone()),
        version: version(config.meta.as_ref()),
        created_at,
        updated_at,
        spec: Some(ConfigSpec {
            name: Some(annotations.name),
            labels: Some(annotations.labels.into_iter().collect()),
            data: Some(STANDARD.encode(&spec.data)),
            templating: None,
        }),
    }
}

/// Name, labels and decoded data of a create body.
fn payload(
    name: Option<String>,
    labels: Option<std::collections::HashMap<String, String>>,
    data: Option<String>,
    templating: bool,
) -> Result<(objects::Annotations, Vec<u8>), String> {
    if templating {
        return Err("templated secrets and configs are not supported by Shoal".into());
    }
    let data = STANDARD
        .decode(data.unwrap_or_default())
        .map_err(|e| format!("Data is not valid base64: {e}"))?;
    Ok((
        objects::Annotations {
            name: name.unwrap_or_default(),
            labels: labels.unwrap_or_default().into_iter().collect(),
        },
        data,
    ))
}

/// `POST /secrets/create` as Shoal's spec (external drivers refused).
pub fn secret_from_docker(spec: SecretSpec) -> Result<objects::SecretSpec, String> {
    if spec.driver.as_ref().is_some_and(|d| !d.name.is_empty()) {
        return Err("secret drivers are not supported by Shoal".into());
    }
    let (annotations, data) =
        payload(spec.name, spec.labels, spec.data, spec.templating.is_some())?;
    Ok(objects::SecretSpec {
        annotations: Some(annotations),
        data,
    })
}

/// `POST /configs/create` as Shoal's spec.
pub fn config_from_docker(spec: ConfigSpec) -> Result<objects::ConfigSpec, String> {
    let (annotations, data) =
        payload(spec.name, spec.labels, spec.data, spec.templating.is_some())?;
    Ok(objects::ConfigSpec {
        annotations: Some(annotations),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docker network create -d overlay --opt encrypted` keeps the option,
    /// so the manager's check (the one `shoal network create` and stack
    /// deploys meet) refuses it: Shoal has no encrypted overlay yet.
    #[test]
    fn the_encrypted_option_reaches_the_managers_check() {
        let req = NetworkCreateRequest {
            name: "secure".into(),
            driver: Some(OVERLAY.into()),
            options: Some([("encrypted".to_string(), String::new())].into()),
            ..Default::default()
        };
        let spec = network_from_docker(req).unwrap();
        let driver = spec.driver_config.unwrap();
        assert_eq!(driver.name, "overlay");
        assert_eq!(
            driver.options.get("encrypted").map(String::as_str),
            Some("")
        );
    }
}
