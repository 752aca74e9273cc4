//! Choosing the addresses of `swarm init` / `swarm join`, as Docker does:
//! listen on `0.0.0.0:2377` by default, and advertise the listen address
//! when it is specific, else the machine's only non-loopback IPv4 address;
//! with several, ask the user to choose with `--advertise-addr`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The cluster port's default.
pub const DEFAULT_PORT: u16 = 2377;

/// Parses `ip`, `ip:port` or empty (default) into a listen address.
pub fn listen(text: &str) -> Result<SocketAddr, String> {
    if text.is_empty() {
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)));
    }
    with_port(text, DEFAULT_PORT)
}

fn with_port(text: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, port))
        .map_err(|_| format!("invalid address {text:?}: expected IP or IP:PORT"))
}

/// The address to advertise, given `--advertise-addr` (maybe empty), the
/// listen address, and the host's interface addresses.
pub fn advertise(
    text: &str,
    listen: SocketAddr,
    interfaces: &[(String, Ipv4Addr)],
) -> Result<SocketAddr, String> {
    if !text.is_empty() {
        return with_port(text, listen.port());
    }
    if !listen.ip().is_unspecified() {
        return Ok(listen);
    }
    let candidates: Vec<&(String, Ipv4Addr)> = interfaces
        .iter()
        .filter(|(_, ip)| !ip.is_loopback())
        .collect();
    match candidates.as_slice() {
        [(_, ip)] => Ok(SocketAddr::new(IpAddr::V4(*ip), listen.port())),
        [] => Err("could not find an address to advertise: this system has no non-loopback IPv4 address; use --advertise-addr".into()),
        many => Err(format!(
            "could not choose an IP address to advertise since this system has multiple addresses ({}); use --advertise-addr",
            many.iter().map(|(name, ip)| format!("{ip} on {name}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The host's IPv4 interface addresses.
pub fn interfaces() -> Vec<(String, Ipv4Addr)> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let ip = a.address?.as_sockaddr_in()?.ip();
            Some((a.interface_name, ip))
        })
        .collect()
}

/// Adds the default port to a manager address given without one.
pub fn remote(text: &str) -> String {
    if text.parse::<SocketAddr>().is_ok()
        || text
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        text.to_string()
    } else {
        format!("{text}:{DEFAULT_PORT}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifs(list: &[(&str, [u8; 4])]) -> Vec<(String, Ipv4Addr)> {
        list.iter()
            .map(|(n, ip)| (n.to_string(), Ipv4Addr::from(*ip)))
            .collect()
    }

    #[test]
    fn listen_defaults_to_all_interfaces_on_2377() {
        assert_eq!(listen("").unwrap().to_string(), "0.0.0.0:2377");
        assert_eq!(
            listen("198.18.0.10").unwrap().to_string(),
            "198.18.0.10:2377"
        );
        assert_eq!(
            listen("198.18.0.10:4000").unwrap().to_string(),
            "198.18.0.10:4000"
        );
        assert!(listen("nope").is_err());
    }

    #[test]
    fn advertise_picks_the_only_address_or_asks() {
        let any = listen("").unwrap();
        let one = ifs(&[("lo", [127, 0, 0, 1]), ("eth0", [198, 18, 0, 10])]);
        assert_eq!(
            advertise("", any, &one).unwrap().to_string(),
            "198.18.0.10:2377"
        );
        let two = ifs(&[("eth0", [198, 18, 0, 10]), ("eth1", [198, 19, 0, 1])]);
        let err = advertise("", any, &two).unwrap_err();
        assert!(
            err.contains("198.18.0.10 on eth0") && err.contains("--advertise-addr"),
            "{err}"
        );
        assert_eq!(
            advertise("198.19.0.1", any, &two).unwrap().to_string(),
            "198.19.0.1:2377"
        );
        assert!(advertise("", any, &ifs(&[("lo", [127, 0, 0, 1])])).is_err());
    }

    #[test]
    fn remote_gets_the_default_port() {
        assert_eq!(remote("198.18.0.10"), "198.18.0.10:2377");
        assert_eq!(remote("198.18.0.10:4000"), "198.18.0.10:4000");
    }
}
