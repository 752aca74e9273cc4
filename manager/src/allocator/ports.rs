//! Published ports: ingress-mode ports are cluster-wide (the routing mesh
//! listens on every node), so each (protocol, port) belongs to one service.
//! A port given as 0 gets one from Docker's dynamic range, 30000-32767,
//! and keeps it across updates of the service. Host-mode ports are the
//! node's business (the scheduler keeps them apart) and pass through.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use shoal_proto::objects::{PortConfig, Service, port_config};

/// Docker's range for ports published as 0.
pub const DYNAMIC: RangeInclusive<u32> = 30000..=32767;

/// Why a service's ports could not be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Another service publishes the port.
    #[error("port '{port}' is already in use by service {owner} as an ingress port")]
    InUse {
        /// The port.
        port: u32,
        /// The service holding it.
        owner: String,
    },
    /// The dynamic range is used up.
    #[error("no free port left in the dynamic range 30000-32767 for protocol {protocol}")]
    Exhausted {
        /// The protocol's name.
        protocol: &'static str,
    },
}

/// Whether a port goes through the routing mesh.
pub fn is_ingress(port: &PortConfig) -> bool {
    port.publish_mode() == port_config::PublishMode::Ingress
}

/// The ingress ports a service holds or asks for: its allocated ports and
/// the explicit ones of its spec, as (protocol, port).
pub fn ingress_ports_of(service: &Service) -> Vec<(i32, u32)> {
    let allocated = service.endpoint.as_ref().map_or(&[][..], |e| &e.ports[..]);
    let asked = service
        .spec
        .as_ref()
        .and_then(|s| s.endpoint.as_ref())
        .map_or(&[][..], |e| &e.ports[..]);
    allocated
        .iter()
        .chain(asked)
        .filter(|p| is_ingress(p) && p.published_port != 0)
        .map(|p| (p.protocol, p.published_port))
        .collect()
}

fn protocol_name(protocol: i32) -> &'static str {
    port_config::Protocol::try_from(protocol).map_or("tcp", |p| match p {
        port_config::Protocol::Tcp => "tcp",
        port_config::Protocol::Udp => "udp",
        port_config::Protocol::Sctp => "sctp",
    })
}

/// Who holds each published ingress port.
#[derive(Debug, Clone, Default)]
pub struct PortPool {
    owners: HashMap<(i32, u32), String>,
}

impl PortPool {
    /// Records that `owner` holds the port; the first holder keeps it.
    pub fn reserve(&mut self, protocol: i32, port: u32, owner: &str) -> Result<(), PortError> {
        let holder = self
            .owners
            .entry((protocol, port))
            .or_insert_with(|| owner.to_string());
        if holder == owner {
            Ok(())
        } else {
            Err(PortError::InUse {
                port,
                owner: holder.clone(),
            })
        }
    }

    /// The lowest free port of the dynamic range, now held by `owner`.
    pub fn allocate(&mut self, protocol: i32, owner: &str) -> Result<u32, PortError> {
        let port = DYNAMIC
            .clone()
            .find(|p| !self.owners.contains_key(&(protocol, *p)))
            .ok_or(PortError::Exhausted {
                protocol: protocol_name(protocol),
            })?;
        self.owners.insert((protocol, port), owner.to_string());
        Ok(port)
    }

    /// Forgets everything `owner` holds (before publishing its ports anew).
    pub fn release_all(&mut self, owner: &str) {
        self.owners.retain(|_, holder| holder != owner);
    }
}

/// The ports `owner` publishes for its `spec` ports: explicit ones as
/// given (refused if another service holds them), zero ingress ports the
/// port they had in `previous`, else a fresh one. On error nothing of
/// what this call reserved stays held.
pub fn publish(
    pool: &mut PortPool,
    owner: &str,
    spec: &[PortConfig],
    previous: &[PortConfig],
) -> Result<Vec<PortConfig>, PortError> {
    let saved = pool.clone();
    let result = publish_inner(pool, owner, spec, previous);
    if result.is_err() {
        *pool = saved;
    }
    result
}

fn publish_inner(
    pool: &mut PortPool,
    owner: &str,
    spec: &[PortConfig],
    previous: &[PortConfig],
) -> Result<Vec<PortConfig>, PortError> {
    pool.release_all(owner);
    let mut out: Vec<PortConfig> = Vec::with_capacity(spec.len());
    // Explicit ports first, so a dynamic one never takes a port asked for.
    for port in spec
        .iter()
        .filter(|p| !is_ingress(p) || p.published_port != 0)
    {
        if is_ingress(port) {
            pool.reserve(port.protocol, port.published_port, owner)?;
        }
    }
    let mut reused: Vec<bool> = vec![false; previous.len()];
    for port in spec {
        let mut port = port.clone();
        if is_ingress(&port) && port.published_port == 0 {
            let kept = previous.iter().enumerate().find(|(i, p)| {
                !reused[*i]
                    && is_ingress(p)
                    && p.published_port != 0
                    && p.protocol == port.protocol
                    && p.target_port == port.target_port
                    && p.name == port.name
                    && pool.reserve(p.protocol, p.published_port, owner).is_ok()
                    && !out
                        .iter()
                        .any(|o| o.protocol == p.protocol && o.published_port == p.published_port)
                    && !spec
                        .iter()
                        .any(|s| s.protocol == p.protocol && s.published_port == p.published_port)
            });
            port.published_port = match kept {
                Some((i, p)) => {
                    reused[i] = true;
                    p.published_port
                }
                None => pool.allocate(port.protocol, owner)?,
            };
        }
        out.push(port);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(target: u32, published: u32) -> PortConfig {
        PortConfig {
            target_port: target,
            published_port: published,
            ..Default::default()
        }
    }

    fn published(ports: &[PortConfig]) -> Vec<u32> {
        ports.iter().map(|p| p.published_port).collect()
    }

    #[test]
    fn zero_ports_get_dynamic_ones_and_keep_them() {
        let mut pool = PortPool::default();
        let first = publish(&mut pool, "a", &[port(80, 0), port(443, 8443)], &[]).expect("a");
        assert_eq!(published(&first), [30000, 8443]);
        let b = publish(&mut pool, "b", &[port(80, 0)], &[]).expect("b");
        assert_eq!(published(&b), [30001]);
        // Republishing `a` (an update) keeps its dynamic port.
        let again = publish(&mut pool, "a", &[port(80, 0), port(443, 8443)], &first).expect("a2");
        assert_eq!(published(&again), [30000, 8443]);
    }

    #[test]
    fn explicit_ports_conflict_across_services_not_protocols() {
        let mut pool = PortPool::default();
        publish(&mut pool, "a", &[port(80, 8080)], &[]).expect("a");
        let err = publish(&mut pool, "b", &[port(80, 8080), port(81, 0)], &[]).expect_err("taken");
        assert_eq!(
            err,
            PortError::InUse {
                port: 8080,
                owner: "a".into()
            }
        );
        // The failed call held nothing: 30000 is still free.
        let mut udp = port(53, 8080);
        udp.set_protocol(port_config::Protocol::Udp);
        let ok = publish(&mut pool, "b", &[udp, port(81, 0)], &[]).expect("udp is apart");
        assert_eq!(published(&ok), [8080, 30000]);
    }

    #[test]
    fn host_ports_pass_through_and_an_explicit_port_beats_a_kept_one() {
        let mut pool = PortPool::default();
        let mut host = port(80, 0);
        host.set_publish_mode(port_config::PublishMode::Host);
        let out = publish(&mut pool, "a", &[host.clone()], &[]).expect("host");
        assert_eq!(published(&out), [0]);
        let first = publish(&mut pool, "a", &[port(80, 0)], &[]).expect("dyn");
        assert_eq!(published(&first), [30000]);
        // Asking for 30000 explicitly for another target moves the zero one.
        let next = publish(&mut pool, "a", &[port(80, 0), port(81, 30000)], &first).expect("x");
        assert_eq!(published(&next), [30001, 30000]);
    }

    #[test]
    fn the_range_runs_out() {
        let mut pool = PortPool::default();
        for p in DYNAMIC {
            pool.reserve(0, p, "x").expect("free");
        }
        assert_eq!(
            pool.allocate(0, "y"),
            Err(PortError::Exhausted { protocol: "tcp" })
        );
    }
}
