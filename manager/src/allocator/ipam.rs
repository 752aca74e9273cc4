//! Address arithmetic and pools, with no store in sight: IPv4 subnets,
//! the pool that carves network subnets out of the cluster's default
//! address pools, the pool of addresses inside one network, and VXLAN ids.
//!
//! Everything is rebuilt from the store by whoever uses it, so these pools
//! only need to answer "what is free" correctly for what was reserved.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

/// The first VXLAN id handed out (Docker starts its overlay ids there).
pub const FIRST_VXLAN_ID: u32 = 4097;
/// The largest VXLAN id (24 bits).
pub const LAST_VXLAN_ID: u32 = (1 << 24) - 1;

/// Why an address could not be parsed or allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// Not an IPv4 CIDR such as `10.0.1.0/24`.
    #[error("invalid subnet {value:?}: {why} (expected IPv4 CIDR such as 10.0.1.0/24)")]
    BadSubnet {
        /// What was given.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Not an IPv4 address.
    #[error("invalid address {value:?}: expected an IPv4 address such as 10.0.1.1")]
    BadAddress {
        /// What was given.
        value: String,
    },
    /// A gateway outside its subnet.
    #[error("gateway {gateway} is not inside subnet {subnet}")]
    GatewayOutside {
        /// The gateway.
        gateway: String,
        /// The subnet.
        subnet: String,
    },
    /// The default address pools have no free block left.
    #[error(
        "no free /{size} subnet left in the default address pools ({pools}); remove unused networks or widen --default-addr-pool"
    )]
    PoolsExhausted {
        /// The block size.
        size: u8,
        /// The pools, comma separated.
        pools: String,
    },
    /// Every address of a network is taken.
    #[error("no free address left in subnet {subnet}")]
    SubnetFull {
        /// The subnet.
        subnet: String,
    },
    /// Every VXLAN id is taken.
    #[error("no free VXLAN id left")]
    VxlanExhausted,
}

/// An IPv4 subnet: a base address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    base: u32,
    prefix: u8,
}

impl Subnet {
    /// The subnet holding `addr` with this prefix (host bits cleared).
    pub fn new(addr: u32, prefix: u8) -> Subnet {
        let prefix = prefix.min(32);
        Subnet {
            base: addr & mask(prefix),
            prefix,
        }
    }

    /// Parses `10.0.1.0/24` (host bits must be zero, as Docker insists).
    pub fn parse(value: &str) -> Result<Subnet, IpamError> {
        let bad = |why| IpamError::BadSubnet {
            value: value.to_string(),
            why,
        };
        let (addr, prefix) = parse_cidr(value).ok_or_else(|| bad("not an IPv4 CIDR"))?;
        let subnet = Subnet::new(addr, prefix);
        if subnet.base != addr {
            return Err(bad("host bits are set"));
        }
        Ok(subnet)
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The first address (the network address).
    pub fn base(&self) -> u32 {
        self.base
    }

    /// The last address (the broadcast address).
    pub fn last(&self) -> u32 {
        self.base | !mask(self.prefix)
    }

    /// Whether `addr` lies inside.
    pub fn contains(&self, addr: u32) -> bool {
        addr & mask(self.prefix) == self.base
    }

    /// Whether the two share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }

    /// `addr` in CIDR form with this subnet's prefix (`10.0.1.5/24`).
    pub fn cidr_of(&self, addr: u32) -> String {
        format!("{}/{}", Ipv4Addr::from(addr), self.prefix)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

/// Parses `a.b.c.d/n` into the address and the prefix.
pub fn parse_cidr(value: &str) -> Option<(u32, u8)> {
    let (addr, prefix) = value.trim().split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    (prefix <= 32).then_some((u32::from(addr), prefix))
}

/// Parses a plain IPv4 address.
pub fn parse_addr(value: &str) -> Result<u32, IpamError> {
    value
        .trim()
        .parse::<Ipv4Addr>()
        .map(u32::from)
        .map_err(|_| IpamError::BadAddress {
            value: value.to_string(),
        })
}

/// Formats an address without prefix.
pub fn format_addr(addr: u32) -> String {
    Ipv4Addr::from(addr).to_string()
}

/// Carves network subnets out of the cluster's default address pools.
#[derive(Debug, Clone)]
pub struct SubnetPool {
    pools: Vec<Subnet>,
    size: u8,
    used: BTreeSet<Subnet>,
}

impl SubnetPool {
    /// Blocks of `/size` from `pools`.
    pub fn new(pools: Vec<Subnet>, size: u8) -> SubnetPool {
        SubnetPool {
            pools,
            size: size.clamp(1, 30),
            used: BTreeSet::new(),
        }
    }

    /// Marks a subnet as taken (allocated or given explicitly).
    pub fn reserve(&mut self, subnet: Subnet) {
        self.used.insert(subnet);
    }

    /// The lowest free block that overlaps nothing reserved.
    pub fn allocate(&mut self) -> Result<Subnet, IpamError> {
        for pool in &self.pools {
            // A pool smaller than a block is one block.
            let size = self.size.max(pool.prefix);
            let step = 1u64 << (32 - u32::from(size));
            let mut at = u64::from(pool.base);
            while at + step - 1 <= u64::from(pool.last()) {
                let candidate = Subnet::new(at as u32, size);
                match self.used.iter().find(|u| u.overlaps(&candidate)) {
                    None => {
                        self.used.insert(candidate);
                        return Ok(candidate);
                    }
                    // Jump past the subnet in the way, to the next block.
                    Some(u) => {
                        let next = u64::from(u.last()) + 1;
                        at = next.div_ceil(step) * step;
                    }
                }
            }
        }
        Err(IpamError::PoolsExhausted {
            size: self.size,
            pools: self
                .pools
                .iter()
                .map(Subnet::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// The addresses of one network: the network and broadcast addresses and
/// the gateway are never handed out.
#[derive(Debug, Clone)]
pub struct AddressPool {
    subnet: Subnet,
    gateway: u32,
    used: BTreeSet<u32>,
    /// Where the next search starts: addresses are handed out in turn, so
    /// one just freed is not reused at once (peers may still cache it).
    cursor: u32,
}

impl AddressPool {
    /// A pool over `subnet` whose gateway is `gateway`.
    pub fn new(subnet: Subnet, gateway: u32) -> AddressPool {
        let mut used = BTreeSet::from([subnet.base(), gateway]);
        if subnet.prefix() < 31 {
            used.insert(subnet.last());
        }
        AddressPool {
            subnet,
            gateway,
            used,
            cursor: subnet.base(),
        }
    }

    /// The subnet.
    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    /// The gateway.
    pub fn gateway(&self) -> u32 {
        self.gateway
    }

    /// Where the next search starts.
    pub fn cursor(&self) -> u32 {
        self.cursor
    }

    /// Continues handing out after `cursor` (kept across rebuilds).
    pub fn set_cursor(&mut self, cursor: u32) {
        if self.subnet.contains(cursor) {
            self.cursor = cursor;
        }
    }

    /// Marks `addr` as taken; false when it is outside or already taken.
    pub fn reserve(&mut self, addr: u32) -> bool {
        self.subnet.contains(addr) && self.used.insert(addr)
    }

    /// Marks a `10.0.1.5/24` address taken; false when it is not ours.
    pub fn reserve_cidr(&mut self, cidr: &str) -> bool {
        parse_cidr(cidr).is_some_and(|(addr, _)| self.reserve(addr))
    }

    /// Gives `addr` back.
    pub fn release(&mut self, addr: u32) {
        if addr != self.gateway && addr != self.subnet.base() && addr != self.subnet.last() {
            self.used.remove(&addr);
        }
    }

    /// The next free address after the cursor, wrapping around.
    pub fn allocate(&mut self) -> Result<u32, IpamError> {
        let (first, last) = (self.subnet.base(), self.subnet.last());
        let after = (u64::from(self.cursor) + 1)..=u64::from(last);
        let before = u64::from(first)..=u64::from(self.cursor);
        for addr in after.chain(before) {
            let addr = addr as u32;
            if !self.used.contains(&addr) {
                self.used.insert(addr);
                self.cursor = addr;
                return Ok(addr);
            }
        }
        Err(IpamError::SubnetFull {
            subnet: self.subnet.to_string(),
        })
    }
}

/// VXLAN ids in use, from [`FIRST_VXLAN_ID`] up.
#[derive(Debug, Clone, Default)]
pub struct VxlanIds {
    used: BTreeSet<u32>,
}

impl VxlanIds {
    /// Marks `id` taken; false when it already was.
    pub fn reserve(&mut self, id: u32) -> bool {
        self.used.insert(id)
    }

    /// The lowest free id.
    pub fn allocate(&mut self) -> Result<u32, IpamError> {
        let mut candidate = FIRST_VXLAN_ID;
        for &id in self.used.range(FIRST_VXLAN_ID..) {
            if id != candidate {
                break;
            }
            candidate += 1;
        }
        if candidate > LAST_VXLAN_ID {
            return Err(IpamError::VxlanExhausted);
        }
        self.used.insert(candidate);
        Ok(candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(s: &str) -> Subnet {
        Subnet::parse(s).expect(s)
    }

    #[test]
    fn subnets_parse_print_and_compare() {
        let s = subnet("10.0.1.0/24");
        assert_eq!(s.to_string(), "10.0.1.0/24");
        assert_eq!(format_addr(s.last()), "10.0.1.255");
        assert!(s.contains(parse_addr("10.0.1.7").expect("addr")));
        assert!(!s.contains(parse_addr("10.0.2.7").expect("addr")));
        assert!(s.overlaps(&subnet("10.0.0.0/16")));
        assert!(!s.overlaps(&subnet("10.0.2.0/24")));
        assert_eq!(s.cidr_of(s.base() + 5), "10.0.1.5/24");
        for bad in ["10.0.1.1/24", "10.0.1.0", "10.0.1.0/33", "x/24", "::1/64"] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subnet_pool_hands_out_blocks_in_order_skipping_taken_ones() {
        let mut pool = SubnetPool::new(vec![subnet("10.0.0.0/8")], 24);
        assert_eq!(pool.allocate().expect("first").to_string(), "10.0.0.0/24");
        // An explicit /23 over 10.0.2.0-10.0.3.255 is skipped whole.
        pool.reserve(subnet("10.0.2.0/23"));
        assert_eq!(pool.allocate().expect("2").to_string(), "10.0.1.0/24");
        assert_eq!(pool.allocate().expect("3").to_string(), "10.0.4.0/24");
        // A wider explicit subnet elsewhere in the pool is skipped as well.
        pool.reserve(subnet("10.0.5.0/24"));
        assert_eq!(pool.allocate().expect("4").to_string(), "10.0.6.0/24");
    }

    #[test]
    fn subnet_pool_moves_to_the_next_pool_then_runs_out() {
        let mut pool = SubnetPool::new(vec![subnet("10.9.0.0/23"), subnet("10.8.0.0/24")], 24);
        let got: Vec<String> = (0..3)
            .map(|_| pool.allocate().expect("block").to_string())
            .collect();
        assert_eq!(got, ["10.9.0.0/24", "10.9.1.0/24", "10.8.0.0/24"]);
        let err = pool.allocate().expect_err("exhausted");
        assert!(err.to_string().contains("no free /24 subnet"), "{err}");
    }

    #[test]
    fn address_pool_skips_reserved_hands_out_in_turn_and_wraps() {
        let s = subnet("10.0.1.0/29"); // .0 network, .1 gateway, .7 broadcast
        let mut pool = AddressPool::new(s, s.base() + 1);
        assert!(!pool.reserve(s.base() + 1), "gateway is taken");
        assert!(pool.reserve_cidr("10.0.1.3/29"));
        assert!(!pool.reserve_cidr("10.0.2.3/24"), "outside");
        let got: Vec<String> = (0..4)
            .map(|_| format_addr(pool.allocate().expect("addr")))
            .collect();
        assert_eq!(got, ["10.0.1.2", "10.0.1.4", "10.0.1.5", "10.0.1.6"]);
        assert!(pool.allocate().is_err());
        // A freed address comes back only after the cursor wraps.
        pool.release(s.base() + 4);
        pool.release(s.base() + 1);
        assert_eq!(format_addr(pool.allocate().expect("again")), "10.0.1.4");
        assert!(pool.allocate().is_err(), "gateway never handed out");
    }

    #[test]
    fn vxlan_ids_are_unique_from_4097() {
        let mut ids = VxlanIds::default();
        assert_eq!(ids.allocate(), Ok(4097));
        assert!(ids.reserve(4099));
        assert!(!ids.reserve(4099));
        assert_eq!(ids.allocate(), Ok(4098));
        assert_eq!(ids.allocate(), Ok(4100));
    }
}
