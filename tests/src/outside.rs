//! A machine outside the cluster: a namespace linked to one host only
//! (198.19.255.2/30 behind the host's 198.19.255.1), serving HTTP on port
//! 80, with no route to anything else. A task that reaches it went out
//! through its node and was masqueraded there: the outside host has no
//! route back to task addresses.

use std::net::Ipv4Addr;
use std::process::{Child, Stdio};

use crate::Cluster;
use crate::netns::{Netns, ip};

/// The outside host's address.
pub const OUTSIDE_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 2);
/// The linked host's address on that link.
const GATEWAY_ADDR: &str = "198.19.255.1/30";

/// The outside host; removed (server and namespace) when dropped.
#[derive(Debug)]
pub struct Outside {
    server: Child,
    netns: Netns,
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Outside {
    /// The outside host's namespace (to run clients or captures there).
    pub fn netns(&self) -> &Netns {
        &self.netns
    }
}

impl Cluster {
    /// An outside host linked to host `i`, answering `GET /` with `body`.
    pub fn outside(&self, i: usize, body: &str) -> anyhow::Result<Outside> {
        let run = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let netns = Netns::create(&format!("{run}-out{i}"))?;
        ip(&[
            "link",
            "add",
            "eth0",
            "netns",
            netns.name(),
            "type",
            "veth",
            "peer",
            "name",
            "out0",
            "netns",
            self.netns(i),
        ])?;
        netns.ip(&["addr", "add", &format!("{OUTSIDE_ADDR}/30"), "dev", "eth0"])?;
        netns.ip(&["link", "set", "eth0", "up"])?;
        let host = ["-n", self.netns(i)];
        ip(&[&host[..], &["addr", "add", GATEWAY_ADDR, "dev", "out0"]].concat())?;
        ip(&[&host[..], &["link", "set", "out0", "up"]].concat())?;
        let www = self.dir.join(format!("outside-{i}"));
        std::fs::create_dir_all(&www)?;
        std::fs::write(www.join("index.html"), body)?;
        let server = netns
            .command("busybox")
            .args(["httpd", "-f", "-p", "80", "-h"])
            .arg(&www)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Outside { server, netns })
    }
}
