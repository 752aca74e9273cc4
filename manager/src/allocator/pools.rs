//! The allocator's pools as the store says they are: rebuilt from the
//! tables at every pass, so nothing is lost when leadership moves and
//! nothing needs freeing explicitly. What is held: every allocated
//! network's subnet and VXLAN id, the VIPs of services, the addresses of
//! tasks that have not ended, the nodes' ingress addresses, and the
//! published ingress ports.

use std::collections::HashMap;

use shoal_proto::objects::{Driver, IpamConfig, IpamOptions, Network, Node, Service, Task};
use shoal_proto::task_state::observed;

use super::ipam::{AddressPool, IpamError, Subnet, SubnetPool, VxlanIds, format_addr, parse_addr};
use super::ports::{PortPool, is_ingress};
use crate::store::Tables;

/// Where Docker's overlay driver keeps a network's VXLAN id.
pub const VXLAN_OPTION: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// Docker's default address pool.
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
/// Docker's default subnet size.
pub const DEFAULT_SUBNET_SIZE: u8 = 24;

/// The network's VXLAN id, once allocated.
pub fn vxlan_of(network: &Network) -> Option<u32> {
    network
        .driver_state
        .as_ref()?
        .options
        .get(VXLAN_OPTION)?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The network's subnet and gateway, once allocated.
pub fn subnet_of(network: &Network) -> Option<(Subnet, u32)> {
    vxlan_of(network)?;
    let config = network.ipam.as_ref()?.configs.first()?;
    let subnet = Subnet::parse(&config.subnet).ok()?;
    let gateway = parse_addr(&config.gateway).ok()?;
    Some((subnet, gateway))
}

/// Whether the network has its subnet, gateway and VXLAN id.
pub fn is_allocated(network: &Network) -> bool {
    subnet_of(network).is_some()
}

/// Whether the network is the ingress network.
pub fn is_ingress_network(network: &Network) -> bool {
    network.spec.as_ref().is_some_and(|s| s.ingress)
}

/// Every pool, as the tables hold them.
#[derive(Debug, Clone)]
pub struct Pools {
    /// Network subnets.
    pub subnets: SubnetPool,
    /// VXLAN ids.
    pub vxlan: VxlanIds,
    /// Addresses, per allocated network id.
    pub addresses: HashMap<String, AddressPool>,
    /// Published ingress ports.
    pub ports: PortPool,
}

impl Pools {
    /// The pools as `t` holds them. `cursors` carries each network's
    /// hand-out position over from the last pass.
    pub fn from_tables(t: &Tables, cursors: &HashMap<String, u32>) -> Pools {
        let cluster = t.cluster();
        let mut pools: Vec<Subnet> = cluster
            .map(|c| c.default_addr_pool.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| Subnet::parse(p).ok())
            .collect();
        if pools.is_empty() {
            pools.extend(Subnet::parse(DEFAULT_POOL).ok());
        }
        let size = cluster
            .map(|c| c.subnet_size)
            .filter(|s| (1..=30).contains(s))
            .map_or(DEFAULT_SUBNET_SIZE, |s| s as u8);
        let mut out = Pools {
            subnets: SubnetPool::new(pools, size),
            vxlan: VxlanIds::default(),
            addresses: HashMap::new(),
            ports: PortPool::default(),
        };
        for network in t.all::<Network>() {
            // An explicit subnet is out of the pool even before allocation.
            if let Some(subnet) = explicit_subnet(network).and_then(|s| s.ok()) {
                out.subnets.reserve(subnet.0);
            }
            if let Some(id) = vxlan_of(network) {
                out.vxlan.reserve(id);
            }
            if let Some((subnet, gateway)) = subnet_of(network) {
                out.subnets.reserve(subnet);
                out.add_network(&network.id, subnet, gateway, cursors);
            }
        }
        for service in t.all::<Service>() {
            out.hold_service(service);
        }
        for task in t.all::<Task>().filter(|x| !observed(x).is_terminal()) {
            for attachment in &task.networks {
                out.hold(attachment.network.as_ref(), &attachment.addresses, &task.id);
            }
        }
        for node in t.all::<Node>() {
            if let Some(a) = node.ingress.as_ref() {
                out.hold(a.network.as_ref(), &a.addresses, &node.id);
            }
        }
        out
    }

    fn add_network(
        &mut self,
        id: &str,
        subnet: Subnet,
        gateway: u32,
        cursors: &HashMap<String, u32>,
    ) {
        let mut pool = AddressPool::new(subnet, gateway);
        if let Some(cursor) = cursors.get(id) {
            pool.set_cursor(*cursor);
        }
        self.addresses.insert(id.to_string(), pool);
    }

    fn hold_service(&mut self, service: &Service) {
        let Some(endpoint) = service.endpoint.as_ref() else {
            return;
        };
        for vip in &endpoint.virtual_ips {
            if let Some(pool) = self.addresses.get_mut(&vip.network_id)
                && !pool.reserve_cidr(&vip.addr)
            {
                tracing::warn!(service = %service.id, addr = %vip.addr, "VIP held twice or outside its network");
            }
        }
        for port in endpoint.ports.iter().filter(|p| is_ingress(p)) {
            if port.published_port != 0
                && let Err(e) = self
                    .ports
                    .reserve(port.protocol, port.published_port, &service.id)
            {
                tracing::warn!(service = %service.id, error = %e, "published port held twice");
            }
        }
    }

    fn hold(&mut self, network: Option<&Network>, addresses: &[String], owner: &str) {
        let Some(pool) = network.and_then(|n| self.addresses.get_mut(&n.id)) else {
            return;
        };
        for addr in addresses {
            if !pool.reserve_cidr(addr) {
                tracing::warn!(owner, addr, "address held twice or outside its network");
            }
        }
    }

    /// Gives `network` its subnet (the spec's, or the next free block),
    /// gateway and VXLAN id; returns it updated.
    pub fn allocate_network(
        &mut self,
        network: &Network,
        cursors: &HashMap<String, u32>,
    ) -> Result<Network, IpamError> {
        let (subnet, gateway) = match explicit_subnet(network) {
            Some(given) => given?,
            None => {
                let subnet = self.subnets.allocate()?;
                (subnet, subnet.base() + 1)
            }
        };
        let vxlan = match vxlan_of(network) {
            Some(id) => id,
            None => self.vxlan.allocate()?,
        };
        let mut network = network.clone();
        let ipam = network.ipam.get_or_insert_with(IpamOptions::default);
        ipam.driver.get_or_insert_with(|| Driver {
            name: "default".into(),
            ..Default::default()
        });
        let config = IpamConfig {
            subnet: subnet.to_string(),
            gateway: format_addr(gateway),
            range: ipam
                .configs
                .first()
                .map(|c| c.range.clone())
                .unwrap_or_default(),
        };
        ipam.configs = vec![config];
        let driver = network.driver_state.get_or_insert_with(Driver::default);
        if driver.name.is_empty() {
            driver.name = "overlay".into();
        }
        driver
            .options
            .insert(VXLAN_OPTION.into(), vxlan.to_string());
        self.add_network(&network.id, subnet, gateway, cursors);
        Ok(network)
    }
}

/// The subnet and gateway the user gave in the spec, if any.
pub fn explicit_subnet(network: &Network) -> Option<Result<(Subnet, u32), IpamError>> {
    let config = network.spec.as_ref()?.ipam.as_ref()?.configs.first()?;
    if config.subnet.is_empty() {
        return None;
    }
    Some(check_explicit(&config.subnet, &config.gateway))
}

/// Checks a `--subnet` (and `--gateway`, the first address when empty).
pub fn check_explicit(subnet: &str, gateway: &str) -> Result<(Subnet, u32), IpamError> {
    let subnet = Subnet::parse(subnet)?;
    let gateway = if gateway.is_empty() {
        subnet.base() + 1
    } else {
        parse_addr(gateway)?
    };
    if !subnet.contains(gateway) || gateway == subnet.base() || gateway == subnet.last() {
        return Err(IpamError::GatewayOutside {
            gateway: format_addr(gateway),
            subnet: subnet.to_string(),
        });
    }
    Ok((subnet, gateway))
}
