//! The typed compose model: what a stack file says, checked, with
//! references between services and top-level objects resolved. Pieces
//! that map one-to-one onto the control API reuse its types (ports,
//! mounts, placement, update configs...); [`super::convert`] turns the rest
//! into specs.

mod deploy;
mod runtime;
mod service;
mod top;

use std::collections::BTreeMap;

pub use shoal_proto::objects::Placement;
use shoal_proto::objects::{
    HealthConfig, LogDriver, Mount, PortConfig, ResourceRequirements, RestartPolicy, Ulimit,
    UpdateConfig, endpoint_spec,
};

use super::errors::Result;
use super::read::At;
use super::yaml::Node;

/// Keys Docker's stack deploy ignores (they have no meaning in swarm).
pub const IGNORED_SERVICE_KEYS: &[&str] = &[
    "build",
    "cgroup_parent",
    "cgroupns_mode",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_shares",
    "cpu_quota",
    "cpu_period",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "expose",
    "external_links",
    "ipc",
    "isolation",
    "links",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "memswap_limit",
    "network_mode",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "platform",
    "privileged",
    "profiles",
    "pull_policy",
    "restart",
    "security_opt",
    "shm_size",
    "stdin_open",
    "userns_mode",
    "volumes_from",
];

/// A whole compose project (all `-c` files merged).
#[derive(Debug, Default)]
pub struct Project {
    pub services: Vec<Service>,
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, Volume>,
    pub secrets: BTreeMap<String, FileObject>,
    pub configs: BTreeMap<String, FileObject>,
    /// Keys present but ignored, for Docker's "Ignoring unsupported options".
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeKind {
    Replicated,
    Global,
    ReplicatedJob,
    GlobalJob,
}

/// One `services.NAME`.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// Final `KEY=VALUE` list: env_file first, then environment.
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<PortConfig>,
    /// Top-level network keys, with their aliases.
    pub networks: Vec<(String, Vec<String>)>,
    /// Mounts; a volume mount's source is a top-level volume key until
    /// conversion names it.
    pub mounts: Vec<Mount>,
    pub secrets: Vec<FileRef>,
    pub configs: Vec<FileRef>,
    pub healthcheck: Option<HealthConfig>,
    pub stop_grace_period: Option<prost_types::Duration>,
    pub stop_signal: String,
    pub user: String,
    pub working_dir: String,
    pub hostname: String,
    pub init: bool,
    pub tty: bool,
    /// Capabilities as written (normalized: `CAP_NET_ADMIN`, `ALL`).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub read_only: bool,
    /// One per name, sorted by name.
    pub ulimits: Vec<Ulimit>,
    pub sysctls: BTreeMap<String, String>,
    /// `extra_hosts` in Swarm's form (`IP name`), in the file's order.
    pub extra_hosts: Vec<String>,
    /// `logging`: a driver (empty: the engine's default) and its options.
    pub logging: Option<LogDriver>,
    pub deploy: Deploy,
}

/// A service's use of a secret or config.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRef {
    /// The top-level key.
    pub source: String,
    /// File name (secrets) or path (configs); empty means the default.
    pub target: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// `services.NAME.deploy`.
#[derive(Debug, Clone)]
pub struct Deploy {
    pub mode: ModeKind,
    pub replicas: Option<u64>,
    pub endpoint_mode: endpoint_spec::ResolutionMode,
    pub labels: BTreeMap<String, String>,
    pub placement: Placement,
    pub resources: Option<ResourceRequirements>,
    pub restart_policy: Option<RestartPolicy>,
    pub update_config: Option<UpdateConfig>,
    pub rollback_config: Option<UpdateConfig>,
}

/// A top-level network.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Network {
    /// The name in the cluster: `name:`, the external name, or empty for
    /// the default `STACK_key`.
    pub name: String,
    pub external: bool,
    pub driver: String,
    pub driver_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub attachable: bool,
    pub internal: bool,
    pub subnets: Vec<String>,
}

/// A top-level volume.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Volume {
    pub name: String,
    pub external: bool,
    pub driver: String,
    pub driver_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret or config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileObject {
    pub name: String,
    pub external: bool,
    pub labels: BTreeMap<String, String>,
    /// The data (read from `file:`, `environment:` or `content:`); None
    /// for external objects.
    pub data: Option<Vec<u8>>,
}

const TOP_KEYS: &[&str] = &[
    "version", "name", "services", "networks", "volumes", "secrets", "configs",
];

/// Reads the merged tree of a project. `env` resolves bare `KEY` entries
/// of `environment`.
pub fn project(root: &Node, env: &BTreeMap<String, String>) -> Result<Project> {
    let at = At::new(root, "");
    let mut p = Project::default();
    let fields = at.fields(TOP_KEYS, &[], &mut p.ignored)?;
    if let Some(v) = fields.get("networks") {
        p.networks = top::networks(v)?;
    }
    if let Some(v) = fields.get("volumes") {
        p.volumes = top::volumes(v)?;
    }
    if let Some(v) = fields.get("secrets") {
        p.secrets = top::file_objects(v, "secret", env)?;
    }
    if let Some(v) = fields.get("configs") {
        p.configs = top::file_objects(v, "config", env)?;
    }
    if let Some(v) = fields.get("services") {
        for (key, node) in v.entries()? {
            let path = format!("services.{}", key.name);
            let (s, ignored) = service::read(&key.name, At::new(node, &path), &p, env)?;
            for k in ignored {
                if !p.ignored.contains(&k) {
                    p.ignored.push(k);
                }
            }
            p.services.push(s);
        }
    }
    Ok(p)
}
