//! Docker's FORWARD policy. Where dockerd shares the daemon's namespace
//! (a Docker host) it sets iptables' FORWARD policy to DROP, which drops
//! what the node forwards for Shoal: published ports on their way to the
//! routing-mesh sandbox and tasks' egress. nftables cannot overrule
//! another table's drop, so Shoal puts accepts for its own interfaces in
//! Docker's `DOCKER-USER` chain, the place Docker documents for rules of
//! others (or at the top of FORWARD when its policy drops without Docker),
//! through the `iptables` command dockerd itself uses; they go when the
//! node leaves the swarm. Without iptables, or with a FORWARD that
//! accepts, there is nothing to do.

use std::io;
use std::process::{Command, Stdio};

use super::overlay::names;

/// Docker's chain for rules of others.
const DOCKER_USER: &str = "DOCKER-USER";

/// The rules, as `iptables` arguments after `-I/-D/-C <chain>`.
fn rules(prefix: &str) -> Vec<Vec<String>> {
    let mesh = names::mesh_host_if(prefix);
    let egress = format!("e{prefix}+");
    let accept = |args: &[&str]| {
        args.iter()
            .map(|a| a.to_string())
            .chain(["-j", "ACCEPT"].map(String::from))
            .collect()
    };
    vec![
        accept(&["-o", &mesh]),
        accept(&["-i", &mesh]),
        accept(&["-i", &egress]),
        accept(&[
            "-o",
            &egress,
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
        ]),
    ]
}

fn iptables(args: &[&str]) -> io::Result<std::process::Output> {
    Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .output()
}

/// The chain our accepts belong in, if forwarding is filtered at all.
fn chain() -> Option<&'static str> {
    if iptables(&["-S", DOCKER_USER]).is_ok_and(|o| o.status.success()) {
        return Some(DOCKER_USER);
    }
    let forward = iptables(&["-S", "FORWARD"]).ok()?;
    let drops = String::from_utf8_lossy(&forward.stdout)
        .lines()
        .any(|l| l == "-P FORWARD DROP");
    drops.then_some("FORWARD")
}

/// Lets the node forward for Shoal's interfaces (this daemon's `prefix`).
/// Idempotent: present rules are kept.
pub fn allow(prefix: &str) -> io::Result<()> {
    let Some(chain) = chain() else {
        return Ok(());
    };
    for rule in rules(prefix) {
        let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
        let present = iptables(&[&["-C", chain], &rule[..]].concat())?;
        if present.status.success() {
            continue;
        }
        let added = iptables(&[&["-I", chain, "1"], &rule[..]].concat())?;
        if !added.status.success() {
            return Err(io::Error::other(format!(
                "iptables -I {chain} {}: {}",
                rule.join(" "),
                String::from_utf8_lossy(&added.stderr).trim()
            )));
        }
    }
    tracing::info!(chain, "let the node forward for Shoal's interfaces");
    Ok(())
}

/// Removes what [`allow`] added, wherever it is.
pub fn revoke(prefix: &str) {
    for chain in [DOCKER_USER, "FORWARD"] {
        for rule in rules(prefix) {
            let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
            // Deleted until none is left (a rule added twice by hand).
            while iptables(&[&["-D", chain], &rule[..]].concat()).is_ok_and(|o| o.status.success())
            {
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_our_interfaces() {
        let rules = rules("ab12");
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[0], ["-o", "mab12", "-j", "ACCEPT"]);
        assert_eq!(rules[2], ["-i", "eab12+", "-j", "ACCEPT"]);
        assert!(rules[3].contains(&"RELATED,ESTABLISHED".to_string()));
    }
}
