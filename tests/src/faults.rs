//! Network faults between hosts: cuts both ways, one-way partitions and
//! isolation, as nftables drop rules in each host's own namespace (a table
//! of its own, removed on heal).

use std::process::Stdio;

use anyhow::{Context, bail};

use crate::cluster::Cluster;
use crate::netns;

/// The nftables table that holds a host's injected faults.
const FAULT_TABLE: &str = "shoal_fault";

impl Cluster {
    /// Drops all traffic between hosts `a` and `b`, both ways.
    pub fn cut(&self, a: usize, b: usize) -> anyhow::Result<()> {
        self.drop_peer(a, b, true)?;
        self.drop_peer(b, a, true)
    }

    /// Drops what host `from` sends to host `to`, one way only: `to` still
    /// reaches `from` (a one-way partition). [`Cluster::heal`] of either
    /// removes it.
    pub fn cut_one_way(&self, from: usize, to: usize) -> anyhow::Result<()> {
        self.drop_peer(to, from, false)
    }

    /// Cuts host `a` off from every other host.
    pub fn isolate(&self, a: usize) -> anyhow::Result<()> {
        for b in (0..self.len()).filter(|&b| b != a) {
            self.cut(a, b)?;
        }
        Ok(())
    }

    /// Removes every cut that involves host `a`.
    pub fn heal(&self, a: usize) -> anyhow::Result<()> {
        for i in 0..self.len() {
            if i == a {
                let _ = self.nft(i, &["delete", "table", "inet", FAULT_TABLE]);
            } else {
                self.forget_peer(i, a)?;
            }
        }
        Ok(())
    }

    fn nft(&self, i: usize, args: &[&str]) -> anyhow::Result<String> {
        netns::run(self.hosts[i].netns.command("nft").args(args))
    }

    /// Host `on` drops what it receives from `peer` and, if `both`, what
    /// it sends there.
    fn drop_peer(&self, on: usize, peer: usize, both: bool) -> anyhow::Result<()> {
        let peer = self.addr(peer).to_string();
        let mut script = format!(
            "table inet {FAULT_TABLE} {{\n\
             chain input {{ type filter hook input priority -300; }}\n\
             chain output {{ type filter hook output priority -300; }}\n\
             }}\n\
             add rule inet {FAULT_TABLE} input ip saddr {peer} drop comment \"{peer}\"\n"
        );
        if both {
            script += &format!(
                "add rule inet {FAULT_TABLE} output ip daddr {peer} drop comment \"{peer}\"\n"
            );
        }
        let mut cmd = self.hosts[on].netns.command("nft");
        cmd.args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        use std::io::Write;
        child
            .stdin
            .take()
            .context("nft stdin")?
            .write_all(script.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "nft on {}: {}",
                self.hosts[on].hostname,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn forget_peer(&self, on: usize, peer: usize) -> anyhow::Result<()> {
        let Ok(listing) = self.nft(on, &["-a", "list", "table", "inet", FAULT_TABLE]) else {
            return Ok(()); // no cuts on this host
        };
        let peer = self.addr(peer).to_string();
        for line in listing
            .lines()
            .filter(|l| l.contains(&format!("\"{peer}\"")))
        {
            let chain = if line.contains("saddr") {
                "input"
            } else {
                "output"
            };
            if let Some(handle) = line.rsplit("# handle ").next().map(str::trim) {
                self.nft(
                    on,
                    &[
                        "delete",
                        "rule",
                        "inet",
                        FAULT_TABLE,
                        chain,
                        "handle",
                        handle,
                    ],
                )?;
            }
        }
        Ok(())
    }
}
