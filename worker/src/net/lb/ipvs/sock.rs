//! A blocking generic netlink socket: send a request, wait for its ack.
//! Opened on a namespace thread, so it talks to that namespace's IPVS.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use super::msg;

const NLMSG_ERROR: u16 = 2;

/// A NETLINK_GENERIC socket.
pub struct Genl {
    fd: OwnedFd,
    seq: u32,
}

impl Genl {
    /// Opens and binds the socket (the kernel picks the port id).
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket/bind calls; the fd is owned right away and
        // the sockaddr is a zeroed struct we own.
        unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_GENERIC,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            let len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            if libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), len) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Self { fd, seq: 0 })
        }
    }

    /// A family's id (`IPVS`: fails with ENOENT where the module is missing).
    pub fn family(&mut self, name: &str) -> io::Result<u16> {
        let reply = self.exchange(&msg::get_family(name))?;
        // nlmsghdr (16) + genlmsghdr (4), then attributes.
        msg::attrs(reply.get(20..).unwrap_or_default())
            .find(|(k, _)| *k == msg::CTRL_ATTR_FAMILY_ID)
            .and_then(|(_, v)| Some(u16::from_ne_bytes([*v.first()?, *v.get(1)?])))
            .ok_or_else(|| io::Error::other(format!("no generic netlink family {name}")))
    }

    /// Sends a request and waits for its ack.
    pub fn request(&mut self, m: &[u8]) -> io::Result<()> {
        self.exchange(m).map(|_| ())
    }

    /// Sends `m` with the next sequence number; returns the first reply
    /// that is not a bare ack, or an empty one for an ack.
    fn exchange(&mut self, m: &[u8]) -> io::Result<Vec<u8>> {
        self.seq = self.seq.wrapping_add(1);
        let mut m = m.to_vec();
        if let Some(seq) = m.get_mut(8..12) {
            seq.copy_from_slice(&self.seq.to_ne_bytes());
        }
        // SAFETY: the buffer outlives the call; the length is its own.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), m.as_ptr().cast(), m.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut data = None;
        loop {
            let mut buf = vec![0u8; 16 * 1024];
            // SAFETY: as above, for the receive buffer.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            buf.truncate(n as usize);
            let mut rest = buf.as_slice();
            while rest.len() >= 16 {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                let one = rest.get(..len.max(16)).unwrap_or(rest);
                if seq == self.seq {
                    if kind == NLMSG_ERROR {
                        let code = one
                            .get(16..20)
                            .map_or(0, |e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]));
                        if code != 0 {
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        return Ok(data.unwrap_or_default());
                    }
                    data = Some(one.to_vec());
                }
                rest = rest
                    .get(len.next_multiple_of(4).max(16)..)
                    .unwrap_or_default();
            }
        }
    }
}
