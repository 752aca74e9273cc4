//! Forwarding the names the cluster does not own to the host's resolvers.
//!
//! Sockets are opened on the runtime's threads, so in the daemon's own
//! namespace: a loopback resolver (127.0.0.53) works and the task needs
//! no route to the outside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::op::Message;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

/// The whole budget for one forwarded query, over every upstream: a task
/// waiting on an unreachable resolver gets SERVFAIL quickly.
pub const FORWARD_TIMEOUT: Duration = Duration::from_millis(1500);

/// The `nameserver` lines of a resolv.conf, as port-53 addresses.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        // Scoped IPv6 addresses (fe80::1%eth0) are not worth the trouble.
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The daemon namespace's resolvers (none if the file is unreadable).
pub fn host_upstreams() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|t| parse_resolv_conf(&t))
        .unwrap_or_default()
}

/// Sends the raw `query` to each upstream in turn until one answers;
/// `None` when none does within [`FORWARD_TIMEOUT`].
pub async fn forward(query: &[u8], tcp: bool, upstreams: &[SocketAddr]) -> Option<Message> {
    let deadline = Instant::now() + FORWARD_TIMEOUT;
    let id = query.get(..2)?;
    for up in upstreams {
        let reply = if tcp {
            timeout_at(deadline, over_tcp(query, *up)).await
        } else {
            timeout_at(deadline, over_udp(query, id, *up)).await
        };
        match reply {
            Ok(Ok(bytes)) => match Message::from_vec(&bytes) {
                Ok(m) => return Some(m),
                Err(e) => tracing::debug!(%up, error = %e, "dns: bad upstream reply"),
            },
            Ok(Err(e)) => tracing::debug!(%up, error = %e, "dns: upstream failed"),
            Err(_) => return None,
        }
    }
    None
}

async fn over_udp(query: &[u8], id: &[u8], up: SocketAddr) -> std::io::Result<Vec<u8>> {
    let any: IpAddr = match up {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = UdpSocket::bind((any, 0)).await?;
    sock.connect(up).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).await?;
        // A stale or spoofed datagram: keep waiting for ours.
        if buf.get(..2) == Some(id) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn over_tcp(query: &[u8], up: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(up).await?;
    let len = u16::try_from(query.len()).map_err(std::io::Error::other)?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(query).await?;
    let n = s.read_u16().await?;
    let mut buf = vec![0u8; usize::from(n)];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let ups = parse_resolv_conf(
            "# x\nsearch example.com\nnameserver 10.1.2.3\nnameserver fe80::1%eth0\n nameserver ::1\noptions ndots:2\n",
        );
        assert_eq!(
            ups,
            vec!["10.1.2.3:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }

    #[tokio::test]
    async fn no_upstream_is_a_quick_failure() {
        assert!(forward(&[0, 1, 0, 0], false, &[]).await.is_none());
    }
}
