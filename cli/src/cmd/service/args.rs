//! The clap declarations of `service create` and `service update`'s
//! flags, as Docker names them; values are parsed by [`crate::spec`] and
//! turned into a spec by [`super::to_spec`]. The flags both take are in
//! [`CommonFlags`]; lists are whole on create (`--env`) and edited on
//! update (`--env-add`, `--env-rm`).

use clap::{Args, ValueEnum};
use prost_types::Duration;
use shoal_proto::objects::{Mount, PortConfig, Ulimit};

use crate::spec::{self, FileRef};

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// N replicas of the task.
    Replicated,
    /// One task on every eligible node.
    Global,
    /// Run N tasks to completion.
    ReplicatedJob,
    /// Run one task to completion on every eligible node.
    GlobalJob,
}

/// `--restart-condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConditionArg {
    /// Always restart.
    Any,
    /// Restart when the task exits non-zero.
    OnFailure,
    /// Never restart.
    None,
}

/// `--update-failure-action` / `--rollback-failure-action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailureActionArg {
    /// Stop the update.
    Pause,
    /// Go on with the next tasks.
    Continue,
    /// Roll back to the previous spec (updates only).
    Rollback,
}

/// `--update-order` / `--rollback-order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderArg {
    /// Stop the old task before starting the new one.
    StopFirst,
    /// Start the new task before stopping the old one.
    StartFirst,
}

/// `--endpoint-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EndpointModeArg {
    /// One virtual IP, load-balanced.
    Vip,
    /// DNS round robin over the tasks' addresses.
    Dnsrr,
}

/// How updates (or rollbacks) proceed: `--update-*` or `--rollback-*`.
#[derive(Debug, Clone, Default)]
pub struct RolloutFlags {
    pub parallelism: Option<u64>,
    pub delay: Option<Duration>,
    pub failure_action: Option<FailureActionArg>,
    pub monitor: Option<Duration>,
    pub max_failure_ratio: Option<f32>,
    pub order: Option<OrderArg>,
}

/// Flags `create` and `update` share; unset means "default" on create and
/// "unchanged" on update.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonFlags {
    /// Number of tasks (total completions for a replicated job).
    #[arg(long)]
    pub replicas: Option<u64>,
    /// Number of job tasks to run at once (replicated jobs).
    #[arg(long = "max-concurrent")]
    pub max_concurrent: Option<u64>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID (`user[:group]`).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Container hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image (split on spaces).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Maximum number of tasks per node (0 = unlimited).
    #[arg(long = "replicas-max-per-node")]
    pub replicas_max_per_node: Option<u64>,
    /// Reserve CPUs (e.g. `0.5`).
    #[arg(long = "reserve-cpu", value_parser = spec::cpus)]
    pub reserve_cpu: Option<i64>,
    /// Reserve memory (e.g. `512M`).
    #[arg(long = "reserve-memory", value_parser = spec::memory)]
    pub reserve_memory: Option<i64>,
    /// Limit CPUs (e.g. `1.5`).
    #[arg(long = "limit-cpu", value_parser = spec::cpus)]
    pub limit_cpu: Option<i64>,
    /// Limit memory (e.g. `1g`).
    #[arg(long = "limit-memory", value_parser = spec::memory)]
    pub limit_memory: Option<i64>,
    /// Restart when: any (default), on-failure, none.
    #[arg(long = "restart-condition", value_enum)]
    pub restart_condition: Option<ConditionArg>,
    /// Delay between restart attempts (default 5s).
    #[arg(long = "restart-delay", value_parser = spec::duration)]
    pub restart_delay: Option<Duration>,
    /// Maximum number of restarts before giving up (0 = unlimited).
    #[arg(long = "restart-max-attempts")]
    pub restart_max_attempts: Option<u64>,
    /// Window used to evaluate the restart policy.
    #[arg(long = "restart-window", value_parser = spec::duration)]
    pub restart_window: Option<Duration>,
    /// Maximum number of tasks updated at once (0 = all at once; default 1).
    #[arg(long = "update-parallelism")]
    pub update_parallelism: Option<u64>,
    /// Delay between updates (default 0s).
    #[arg(long = "update-delay", value_parser = spec::duration)]
    pub update_delay: Option<Duration>,
    /// Action on update failure: pause (default), continue, rollback.
    #[arg(long = "update-failure-action", value_enum)]
    pub update_failure_action: Option<FailureActionArg>,
    /// Duration after each task update to monitor for failure (default 5s).
    #[arg(long = "update-monitor", value_parser = spec::duration)]
    pub update_monitor: Option<Duration>,
    /// Failure rate to tolerate during an update (0 to 1).
    #[arg(long = "update-max-failure-ratio", value_parser = ratio)]
    pub update_max_failure_ratio: Option<f32>,
    /// Update order: stop-first (default), start-first.
    #[arg(long = "update-order", value_enum)]
    pub update_order: Option<OrderArg>,
    /// Maximum number of tasks rolled back at once (default 1).
    #[arg(long = "rollback-parallelism")]
    pub rollback_parallelism: Option<u64>,
    /// Delay between task rollbacks (default 0s).
    #[arg(long = "rollback-delay", value_parser = spec::duration)]
    pub rollback_delay: Option<Duration>,
    /// Action on rollback failure: pause (default), continue.
    #[arg(long = "rollback-failure-action", value_enum)]
    pub rollback_failure_action: Option<FailureActionArg>,
    /// Duration after each task rollback to monitor for failure (default 5s).
    #[arg(long = "rollback-monitor", value_parser = spec::duration)]
    pub rollback_monitor: Option<Duration>,
    /// Failure rate to tolerate during a rollback (0 to 1).
    #[arg(long = "rollback-max-failure-ratio", value_parser = ratio)]
    pub rollback_max_failure_ratio: Option<f32>,
    /// Rollback order: stop-first (default), start-first.
    #[arg(long = "rollback-order", value_enum)]
    pub rollback_order: Option<OrderArg>,
    /// Command to run to check health (run by `sh -c`).
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check.
    #[arg(long = "health-interval", value_parser = spec::duration)]
    pub health_interval: Option<Duration>,
    /// Maximum time to allow one check to run.
    #[arg(long = "health-timeout", value_parser = spec::duration)]
    pub health_timeout: Option<Duration>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long = "health-retries")]
    pub health_retries: Option<u32>,
    /// Start period for the container to initialize before counting retries.
    #[arg(long = "health-start-period", value_parser = spec::duration)]
    pub health_start_period: Option<Duration>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck", conflicts_with_all = ["health_cmd", "health_interval", "health_timeout", "health_retries", "health_start_period"])]
    pub no_healthcheck: bool,
    /// Time to wait before force killing a container (e.g. `10s`).
    #[arg(long = "stop-grace-period", value_parser = spec::duration)]
    pub stop_grace_period: Option<Duration>,
    /// Signal to stop the container.
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Endpoint mode: vip (default) or dnsrr.
    #[arg(long = "endpoint-mode", value_enum)]
    pub endpoint_mode: Option<EndpointModeArg>,
    /// Limit the maximum number of processes (0 = unlimited).
    #[arg(long = "limit-pids", value_parser = spec::pids)]
    pub limit_pids: Option<i64>,
    /// Add Linux capabilities (`NET_ADMIN`, `ALL`; on update `RESET` first
    /// forgets the added ones).
    #[arg(long = "cap-add", value_name = "CAP", value_parser = spec::capability)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities (`ALL`, `NET_RAW`; on update `RESET` first
    /// forgets the dropped ones).
    #[arg(long = "cap-drop", value_name = "CAP", value_parser = spec::capability)]
    pub cap_drop: Vec<String>,
    /// Mount the container's root filesystem as read only (`=false` to undo).
    #[arg(long = "read-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = spec::boolean, value_name = "BOOL")]
    pub read_only: Option<bool>,
    /// Use an init inside each service container to forward signals and
    /// reap processes (`=false` to undo).
    #[arg(long = "init", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = spec::boolean, value_name = "BOOL")]
    pub init: Option<bool>,
    /// Logging driver for the service (`json-file`, `syslog`, `none`...).
    #[arg(long = "log-driver", value_name = "DRIVER")]
    pub log_driver: Option<String>,
    /// Logging driver options (`max-size=10m`); given with --log-driver,
    /// they replace the driver's options.
    #[arg(long = "log-opt", value_name = "OPT", value_parser = spec::key_value)]
    pub log_opt: Vec<(String, String)>,
    /// Exit immediately instead of waiting for the service to converge.
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Send registry authentication details to swarm agents.
    #[arg(long = "with-registry-auth")]
    pub with_registry_auth: bool,
    /// Query the registry to resolve image digest and supported platforms
    /// ("always", "changed", "never"; default always).
    #[arg(long = "resolve-image", value_enum)]
    pub resolve_image: Option<super::resolve::ResolveImage>,
}

impl CommonFlags {
    /// The `--update-*` flags.
    pub fn update(&self) -> RolloutFlags {
        RolloutFlags {
            parallelism: self.update_parallelism,
            delay: self.update_delay,
            failure_action: self.update_failure_action,
            monitor: self.update_monitor,
            max_failure_ratio: self.update_max_failure_ratio,
            order: self.update_order,
        }
    }

    /// The `--rollback-*` flags.
    pub fn rollback(&self) -> RolloutFlags {
        RolloutFlags {
            parallelism: self.rollback_parallelism,
            delay: self.rollback_delay,
            failure_action: self.rollback_failure_action,
            monitor: self.rollback_monitor,
            max_failure_ratio: self.rollback_max_failure_ratio,
            order: self.rollback_order,
        }
    }
}

fn ratio(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "invalid ratio {s:?}: expected a number from 0 to 1"
        )),
    }
}

/// The list flags of `service create` that `service update` edits with
/// `--*-add` / `--*-rm` twins.
#[derive(Debug, Clone, Default, Args)]
pub struct ContainerFlags {
    /// Ulimit options (`nofile=1024:2048`, `nproc=512`).
    #[arg(long = "ulimit", value_name = "ULIMIT", value_parser = spec::ulimit)]
    pub ulimit: Vec<Ulimit>,
    /// Sysctl options (`net.core.somaxconn=1024`).
    #[arg(long = "sysctl", value_name = "SYSCTL", value_parser = spec::sysctl)]
    pub sysctl: Vec<(String, String)>,
}

/// `service create` flags.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub common: CommonFlags,
    /// Service name.
    #[arg(long)]
    pub name: Option<String>,
    /// Service mode.
    #[arg(long, value_enum, default_value = "replicated")]
    pub mode: ModeArg,
    /// Set environment variables (`KEY=VALUE`, or `KEY` to take it from here).
    #[arg(short, long = "env", value_name = "ENV")]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Service labels (`key=value`).
    #[arg(short, long = "label", value_name = "LABEL", value_parser = spec::key_value)]
    pub label: Vec<(String, String)>,
    /// Container labels (`key=value`).
    #[arg(long = "container-label", value_name = "LABEL", value_parser = spec::key_value)]
    pub container_label: Vec<(String, String)>,
    /// Publish a port (`8080:80[/udp]`, or `mode=host,target=80,published=8080`).
    #[arg(short, long = "publish", value_name = "PORT", value_parser = spec::port)]
    pub publish: Vec<PortConfig>,
    /// Network attachments (name or id).
    #[arg(long = "network", value_name = "NETWORK")]
    pub network: Vec<String>,
    /// Attach a filesystem mount (`type=volume|bind|tmpfs,source=..,target=..[,readonly]`).
    #[arg(long = "mount", value_name = "MOUNT", value_parser = spec::mount)]
    pub mount: Vec<Mount>,
    /// Give the service a secret (`NAME`, or `source=..,target=..,uid=..,gid=..,mode=..`).
    #[arg(long = "secret", value_name = "SECRET", value_parser = spec::file_ref)]
    pub secret: Vec<FileRef>,
    /// Give the service a config (`NAME`, or `source=..,target=..,uid=..,gid=..,mode=..`).
    #[arg(long = "config", value_name = "CONFIG", value_parser = spec::file_ref)]
    pub config: Vec<FileRef>,
    /// Placement constraints (`node.role==manager`).
    #[arg(long = "constraint", value_name = "EXPR")]
    pub constraint: Vec<String>,
    /// Placement preferences (`spread=node.labels.zone`).
    #[arg(long = "placement-pref", value_name = "PREF")]
    pub placement_pref: Vec<String>,
    /// Container limits, kernel parameters and host entries.
    #[command(flatten)]
    pub container: ContainerFlags,
    /// Set one or more custom host-to-IP mappings (`host:ip`).
    #[arg(long = "host", value_name = "HOST", value_parser = spec::host)]
    pub host: Vec<String>,
    /// The image to run.
    pub image: String,
    /// The command and its arguments (become the container's args).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub args: Vec<String>,
}

/// `service update` flags.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub common: CommonFlags,
    /// Service image tag.
    #[arg(long)]
    pub image: Option<String>,
    /// Service command args (replaces them; split on spaces).
    #[arg(long)]
    pub args: Option<String>,
    /// Force update even if no changes require it.
    #[arg(long)]
    pub force: bool,
    /// Roll back to the previous specification.
    #[arg(long)]
    pub rollback: bool,
    /// Add or update environment variables.
    #[arg(long = "env-add", value_name = "ENV")]
    pub env_add: Vec<String>,
    /// Remove environment variables (by key).
    #[arg(long = "env-rm", value_name = "KEY")]
    pub env_rm: Vec<String>,
    /// Add or update service labels.
    #[arg(long = "label-add", value_name = "LABEL", value_parser = spec::key_value)]
    pub label_add: Vec<(String, String)>,
    /// Remove service labels (by key).
    #[arg(long = "label-rm", value_name = "KEY")]
    pub label_rm: Vec<String>,
    /// Add or update container labels.
    #[arg(long = "container-label-add", value_name = "LABEL", value_parser = spec::key_value)]
    pub container_label_add: Vec<(String, String)>,
    /// Remove container labels (by key).
    #[arg(long = "container-label-rm", value_name = "KEY")]
    pub container_label_rm: Vec<String>,
    /// Add or update a published port.
    #[arg(long = "publish-add", value_name = "PORT", value_parser = spec::port)]
    pub publish_add: Vec<PortConfig>,
    /// Remove a published port by its target port (`80`, `53/udp`).
    #[arg(long = "publish-rm", value_name = "PORT", value_parser = spec::port_rm)]
    pub publish_rm: Vec<(u32, i32)>,
    /// Add a network.
    #[arg(long = "network-add", value_name = "NETWORK")]
    pub network_add: Vec<String>,
    /// Remove a network.
    #[arg(long = "network-rm", value_name = "NETWORK")]
    pub network_rm: Vec<String>,
    /// Add or update a mount.
    #[arg(long = "mount-add", value_name = "MOUNT", value_parser = spec::mount)]
    pub mount_add: Vec<Mount>,
    /// Remove a mount by its target path.
    #[arg(long = "mount-rm", value_name = "PATH")]
    pub mount_rm: Vec<String>,
    /// Add or update a secret.
    #[arg(long = "secret-add", value_name = "SECRET", value_parser = spec::file_ref)]
    pub secret_add: Vec<FileRef>,
    /// Remove a secret (name or id).
    #[arg(long = "secret-rm", value_name = "SECRET")]
    pub secret_rm: Vec<String>,
    /// Add or update a config.
    #[arg(long = "config-add", value_name = "CONFIG", value_parser = spec::file_ref)]
    pub config_add: Vec<FileRef>,
    /// Remove a config (name or id).
    #[arg(long = "config-rm", value_name = "CONFIG")]
    pub config_rm: Vec<String>,
    /// Add or update a placement constraint.
    #[arg(long = "constraint-add", value_name = "EXPR")]
    pub constraint_add: Vec<String>,
    /// Remove a placement constraint.
    #[arg(long = "constraint-rm", value_name = "EXPR")]
    pub constraint_rm: Vec<String>,
    /// Add a placement preference.
    #[arg(long = "placement-pref-add", value_name = "PREF")]
    pub placement_pref_add: Vec<String>,
    /// Remove a placement preference.
    #[arg(long = "placement-pref-rm", value_name = "PREF")]
    pub placement_pref_rm: Vec<String>,
    /// Add or update a ulimit (`nofile=1024:2048`).
    #[arg(long = "ulimit-add", value_name = "ULIMIT", value_parser = spec::ulimit)]
    pub ulimit_add: Vec<Ulimit>,
    /// Remove a ulimit (by name).
    #[arg(long = "ulimit-rm", value_name = "NAME")]
    pub ulimit_rm: Vec<String>,
    /// Add or update a sysctl (`net.core.somaxconn=1024`).
    #[arg(long = "sysctl-add", value_name = "SYSCTL", value_parser = spec::sysctl)]
    pub sysctl_add: Vec<(String, String)>,
    /// Remove a sysctl (by key).
    #[arg(long = "sysctl-rm", value_name = "KEY")]
    pub sysctl_rm: Vec<String>,
    /// Add a custom host-to-IP mapping (`host:ip`).
    #[arg(long = "host-add", value_name = "HOST", value_parser = spec::host)]
    pub host_add: Vec<String>,
    /// Remove a custom host-to-IP mapping (`host`, or `host:ip`).
    #[arg(long = "host-rm", value_name = "HOST")]
    pub host_rm: Vec<String>,
    /// The service: name, id or id prefix.
    pub service: String,
}
