//! Generic netlink messages for IPVS, encoded by hand (`linux/ip_vs.h`,
//! `linux/genetlink.h`).

use std::net::Ipv4Addr;

pub(super) const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
pub(super) const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;

const IPVS_GENL_VERSION: u8 = 1;
const IPVS_CMD_NEW_SERVICE: u8 = 1;
const IPVS_CMD_NEW_DEST: u8 = 5;
const IPVS_CMD_FLUSH: u8 = 17;
const IPVS_CMD_ATTR_SERVICE: u16 = 1;
const IPVS_CMD_ATTR_DEST: u16 = 2;

const IPVS_SVC_ATTR_AF: u16 = 1;
const IPVS_SVC_ATTR_FWMARK: u16 = 5;
const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
const IPVS_SVC_ATTR_FLAGS: u16 = 7;
const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
const IPVS_SVC_ATTR_NETMASK: u16 = 9;

const IPVS_DEST_ATTR_ADDR: u16 = 1;
const IPVS_DEST_ATTR_PORT: u16 = 2;
const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;

const AF_INET: u16 = 2;
/// `IP_VS_CONN_F_MASQ`: destinations are reached through NAT.
const FWD_MASQ: u32 = 0;

/// A firewall-mark virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The mark nftables sets on its traffic.
    pub fwmark: u32,
    /// The scheduler (`rr`, ...).
    pub scheduler: String,
}

impl Service {
    /// A round-robin fwmark service.
    pub fn fwmark(fwmark: u32) -> Self {
        Self {
            fwmark,
            scheduler: "rr".into(),
        }
    }
}

/// A real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its port (0: the packet's own).
    pub port: u16,
    /// Its weight.
    pub weight: u32,
}

/// A netlink attribute: header, payload, padding to 4 bytes.
fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = (4 + payload.len()) as u16;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// A whole message: nlmsghdr (seq and pid left 0: the socket fills pid,
/// the caller sets seq), genlmsghdr, attributes.
fn message(family: u16, cmd: u8, version: u8, attrs: &[u8]) -> Vec<u8> {
    let len = (16 + 4 + attrs.len()) as u32;
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&family.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[cmd, version, 0, 0]);
    m.extend_from_slice(attrs);
    m
}

/// Resolves a generic netlink family's id by name.
pub fn get_family(name: &str) -> Vec<u8> {
    let mut a = Vec::new();
    let mut z = name.as_bytes().to_vec();
    z.push(0);
    attr(&mut a, CTRL_ATTR_FAMILY_NAME, &z);
    message(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, &a)
}

fn service_attrs(s: &Service) -> Vec<u8> {
    let mut a = Vec::new();
    attr(&mut a, IPVS_SVC_ATTR_AF, &AF_INET.to_ne_bytes());
    attr(&mut a, IPVS_SVC_ATTR_FWMARK, &s.fwmark.to_ne_bytes());
    let mut sched = s.scheduler.as_bytes().to_vec();
    sched.push(0);
    attr(&mut a, IPVS_SVC_ATTR_SCHED_NAME, &sched);
    // struct ip_vs_flags { flags, mask }
    let mut flags = 0u32.to_ne_bytes().to_vec();
    flags.extend_from_slice(&u32::MAX.to_ne_bytes());
    attr(&mut a, IPVS_SVC_ATTR_FLAGS, &flags);
    attr(&mut a, IPVS_SVC_ATTR_TIMEOUT, &0u32.to_ne_bytes());
    attr(&mut a, IPVS_SVC_ATTR_NETMASK, &u32::MAX.to_ne_bytes());
    a
}

/// `IPVS_CMD_NEW_SERVICE`.
pub fn new_service(family: u16, s: &Service) -> Vec<u8> {
    let mut a = Vec::new();
    attr(&mut a, IPVS_CMD_ATTR_SERVICE, &service_attrs(s));
    message(family, IPVS_CMD_NEW_SERVICE, IPVS_GENL_VERSION, &a)
}

/// `IPVS_CMD_NEW_DEST` for service `s`.
pub fn new_dest(family: u16, s: &Service, d: &Dest) -> Vec<u8> {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&d.addr.octets());
    let mut da = Vec::new();
    attr(&mut da, IPVS_DEST_ATTR_ADDR, &addr);
    attr(&mut da, IPVS_DEST_ATTR_PORT, &d.port.to_be_bytes());
    attr(&mut da, IPVS_DEST_ATTR_FWD_METHOD, &FWD_MASQ.to_ne_bytes());
    attr(&mut da, IPVS_DEST_ATTR_WEIGHT, &d.weight.to_ne_bytes());
    attr(&mut da, IPVS_DEST_ATTR_U_THRESH, &0u32.to_ne_bytes());
    attr(&mut da, IPVS_DEST_ATTR_L_THRESH, &0u32.to_ne_bytes());
    attr(&mut da, IPVS_DEST_ATTR_ADDR_FAMILY, &AF_INET.to_ne_bytes());
    let mut a = Vec::new();
    attr(&mut a, IPVS_CMD_ATTR_SERVICE, &service_attrs(s));
    attr(&mut a, IPVS_CMD_ATTR_DEST, &da);
    message(family, IPVS_CMD_NEW_DEST, IPVS_GENL_VERSION, &a)
}

/// `IPVS_CMD_FLUSH`: every service of the namespace.
pub fn flush(family: u16) -> Vec<u8> {
    message(family, IPVS_CMD_FLUSH, IPVS_GENL_VERSION, &[])
}

/// Walks the attributes of `buf`, yielding (type without flags, payload).
pub(super) fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*buf.first()?, *buf.get(1)?]));
        let kind = u16::from_ne_bytes([*buf.get(2)?, *buf.get(3)?]) & 0x3fff;
        let payload = buf.get(4..len)?;
        buf = buf.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, payload))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_request() {
        let m = get_family("IPVS");
        assert_eq!(m.len(), 16 + 4 + 12);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), GENL_ID_CTRL);
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(&m[16..20], &[CTRL_CMD_GETFAMILY, 1, 0, 0]);
        // nla_len 9 ("IPVS\0" + 4), padded to 12.
        assert_eq!(
            &m[20..32],
            &[9, 0, 2, 0, b'I', b'P', b'V', b'S', 0, 0, 0, 0]
        );
    }

    #[test]
    fn dest_message_nests_service_and_dest() {
        let s = Service::fwmark(0x5300);
        let d = Dest {
            addr: Ipv4Addr::new(10, 0, 5, 11),
            port: 80,
            weight: 1,
        };
        let m = new_dest(0x22, &s, &d);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x22);
        assert_eq!(&m[16..20], &[IPVS_CMD_NEW_DEST, IPVS_GENL_VERSION, 0, 0]);
        let top: Vec<_> = attrs(&m[20..]).collect();
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].0, IPVS_CMD_ATTR_SERVICE);
        let svc: Vec<_> = attrs(top[0].1).collect();
        assert!(svc.contains(&(IPVS_SVC_ATTR_FWMARK, &0x5300u32.to_ne_bytes()[..])));
        assert!(svc.contains(&(IPVS_SVC_ATTR_SCHED_NAME, &b"rr\0"[..])));
        assert_eq!(top[1].0, IPVS_CMD_ATTR_DEST);
        let dest: Vec<_> = attrs(top[1].1).collect();
        assert_eq!(
            dest[0],
            (
                IPVS_DEST_ATTR_ADDR,
                &[10, 0, 5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]
            )
        );
        // Ports are big-endian on the wire.
        assert_eq!(dest[1], (IPVS_DEST_ATTR_PORT, &[0, 80][..]));
        assert_eq!(
            m.len(),
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize
        );
    }

    #[test]
    fn flush_is_bare() {
        assert_eq!(flush(7).len(), 20);
    }
}
