//! The container's runtime keys of `service create|update`: capabilities,
//! read-only root, init, ulimits, sysctls, extra hosts, the log driver and
//! the pids limit. Lists follow Docker's update rules: removals first,
//! then additions; a capability dropped on update is no longer added.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use anyhow::bail;
use shoal_proto::objects::{ContainerSpec, LogDriver, TaskSpec, Ulimit};

use crate::cmd::service::args::{CommonFlags, ContainerFlags, UpdateArgs};
use crate::spec::{self, CAP_RESET};

/// The keys `create` and `update` set alike, each only when given.
pub fn common(task: &mut TaskSpec, c: &CommonFlags) -> anyhow::Result<()> {
    let container = task.container.get_or_insert_with(Default::default);
    if let Some(b) = c.read_only {
        container.read_only = b;
    }
    if let Some(b) = c.init {
        container.init = b;
    }
    if let Some(n) = c.limit_pids {
        task.resources
            .get_or_insert_with(Default::default)
            .limits
            .get_or_insert_with(Default::default)
            .pids = n;
    }
    match c.log_driver.as_deref() {
        // The options come with their driver, replacing the old ones.
        Some(name) if !name.is_empty() => {
            task.log_driver = Some(LogDriver {
                name: name.to_string(),
                options: c.log_opt.iter().cloned().collect(),
            });
        }
        _ if !c.log_opt.is_empty() => bail!(
            "--log-opt needs --log-driver: a driver's options are set with it, e.g. --log-driver json-file --log-opt max-size=10m"
        ),
        _ => {}
    }
    Ok(())
}

/// `service create`: the lists as given; capabilities as Docker's
/// effective add and drop lists.
pub fn create(
    c: &mut ContainerSpec,
    common: &CommonFlags,
    flags: &ContainerFlags,
    extra_hosts: &[String],
) -> anyhow::Result<()> {
    if common
        .cap_add
        .iter()
        .chain(&common.cap_drop)
        .any(|x| x == CAP_RESET)
    {
        bail!("--cap-add/--cap-drop RESET is for service update (there is nothing to reset yet)");
    }
    (c.cap_add, c.cap_drop) = spec::effective_caps(&common.cap_add, &common.cap_drop);
    c.ulimits = ulimits(Vec::new(), &[], &flags.ulimit);
    c.sysctls = flags.sysctl.iter().cloned().collect();
    c.hosts = hosts(&[], &[], extra_hosts);
    Ok(())
}

/// `service update`: the `--*-add` / `--*-rm` lists and capabilities.
pub fn update(c: &mut ContainerSpec, args: &UpdateArgs) {
    capabilities(c, &args.common.cap_add, &args.common.cap_drop);
    if !args.ulimit_add.is_empty() || !args.ulimit_rm.is_empty() {
        c.ulimits = ulimits(
            std::mem::take(&mut c.ulimits),
            &args.ulimit_rm,
            &args.ulimit_add,
        );
    }
    for k in &args.sysctl_rm {
        c.sysctls.remove(spec::key_of(k));
    }
    c.sysctls.extend(args.sysctl_add.iter().cloned());
    if !args.host_add.is_empty() || !args.host_rm.is_empty() {
        c.hosts = hosts(&c.hosts, &args.host_rm, &args.host_add);
    }
}

/// One ulimit per name, sorted by name as Docker keeps them.
fn ulimits(have: Vec<Ulimit>, rm: &[String], add: &[Ulimit]) -> Vec<Ulimit> {
    let mut by_name: BTreeMap<String, Ulimit> =
        have.into_iter().map(|u| (u.name.clone(), u)).collect();
    for name in rm {
        by_name.remove(spec::key_of(name));
    }
    for u in add {
        by_name.insert(u.name.clone(), u.clone());
    }
    by_name.into_values().collect()
}

/// Docker's `service update --cap-add/--cap-drop`: `RESET` forgets the
/// list first; dropping a capability also stops adding it; adding wins
/// when a capability is both added and dropped.
fn capabilities(c: &mut ContainerSpec, add: &[String], drop: &[String]) {
    if add.is_empty() && drop.is_empty() {
        return;
    }
    let set = |l: &[String]| -> BTreeSet<String> {
        l.iter()
            .map(|x| spec::capability(x).unwrap_or_else(|_| x.clone()))
            .collect()
    };
    let (mut cap_add, mut cap_drop) = (set(&c.cap_add), set(&c.cap_drop));
    let (mut to_add, mut to_drop) = (set(add), set(drop));
    if to_add.remove(CAP_RESET) {
        cap_add.clear();
    }
    if to_drop.remove(CAP_RESET) {
        cap_drop.clear();
    }
    for x in &to_drop {
        if !to_add.contains(x) {
            cap_add.remove(x);
            cap_drop.insert(x.clone());
        }
    }
    for x in to_add {
        cap_drop.remove(&x);
        cap_add.insert(x);
    }
    let list = |s: BTreeSet<String>| s.into_iter().collect::<Vec<_>>();
    (c.cap_add, c.cap_drop) = spec::effective_caps(&list(cap_add), &list(cap_drop));
}

/// Docker's `--host-rm` / `--host-add` over Swarm's `IP name [alias...]`
/// entries: `name` leaves every entry, `name:ip` only the entries of that
/// address; an entry left without names goes; additions are appended;
/// the first of two equal entries stays (the first match wins in
/// `/etc/hosts`).
fn hosts(have: &[String], rm: &[String], add: &[String]) -> Vec<String> {
    let rm: Vec<(&str, &str)> = rm
        .iter()
        .map(|e| {
            let (name, ip) = e
                .split_once('=')
                .or_else(|| e.split_once(':'))
                .unwrap_or((e, ""));
            let ip = ip
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .unwrap_or(ip);
            (name, ip)
        })
        .collect();
    let mut out = Vec::new();
    for entry in have {
        let mut fields = entry.split_whitespace();
        let Some(ip) = fields.next() else { continue };
        let names: Vec<&str> = fields
            .filter(|name| {
                !rm.iter()
                    .any(|(n, a)| n == name && (a.is_empty() || *a == ip))
            })
            .collect();
        if !names.is_empty() {
            out.push(format!("{ip} {}", names.join(" ")));
        }
    }
    out.extend(add.iter().cloned());
    let mut seen = HashSet::new();
    out.retain(|h| seen.insert(h.clone()));
    out
}
