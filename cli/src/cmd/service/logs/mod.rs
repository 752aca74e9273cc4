//! `shoal service logs SERVICE|TASK`: subscribes through the local daemon
//! (a manager; it forwards to the leader) and prints each task's lines
//! with Docker's prefix, stdout lines to stdout and stderr lines to
//! stderr. With `-f` it streams until interrupted.

mod format;

use std::collections::HashMap;
use std::io::Write as _;
use std::time::SystemTime;

use anyhow::bail;
use clap::Args;
use shoal_proto::control::{GetTaskRequest, ListFilters};
use shoal_proto::logs::logs_client::LogsClient;
use shoal_proto::logs::{
    LogMessage, LogSelector, LogStream, LogSubscriptionOptions, SubscribeLogsRequest,
};
use shoal_proto::objects::{Node, Service, Task, service_spec::Mode};

use self::format::{Style, TaskLabel, parse_tail};
use super::api;
use crate::client::status_error;
use crate::cmd::common::{Api, resolve};
use crate::host::Host;

/// `service logs` flags.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short, long)]
    follow: bool,
    /// Do not map IDs to names in output.
    #[arg(long)]
    no_resolve: bool,
    /// Do not include task IDs in output.
    #[arg(long)]
    no_task_ids: bool,
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Do not neatly format logs.
    #[arg(long)]
    raw: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative
    /// (e.g. "42m" for 42 minutes).
    #[arg(long, value_parser = parse_since_now)]
    since: Option<SystemTime>,
    /// Number of lines to show from the end of the logs.
    #[arg(short = 'n', long, default_value = "all", value_parser = parse_tail)]
    tail: i64,
    /// Show timestamps.
    #[arg(short, long)]
    timestamps: bool,
    /// The service (name, id or id prefix) or task (id or id prefix).
    #[arg(value_name = "SERVICE|TASK")]
    target: String,
}

/// Labels for the tasks lines come from; learns new tasks as they appear.
struct Labels {
    services: HashMap<String, Service>,
    nodes: HashMap<String, Node>,
    tasks: HashMap<String, Task>,
    no_resolve: bool,
}

impl Labels {
    async fn label(&mut self, api: &mut Api, task_id: &str) -> TaskLabel {
        if !self.tasks.contains_key(task_id)
            && let Ok(r) = api
                .control
                .get_task(GetTaskRequest {
                    task_id: task_id.to_string(),
                })
                .await
            && let Some(task) = r.into_inner().task
        {
            self.tasks.insert(task_id.to_string(), task);
        }
        let task = self.tasks.get(task_id).cloned().unwrap_or_else(|| Task {
            id: task_id.to_string(),
            ..Task::default()
        });
        let service = self.services.get(&task.service_id);
        let name = service
            .and_then(|s| s.spec.as_ref()?.annotations.as_ref())
            .map(|a| a.name.clone())
            .filter(|n| !n.is_empty() && !self.no_resolve)
            .unwrap_or_else(|| task.service_id.clone());
        let replicas = service
            .and_then(|s| match s.spec.as_ref()?.mode.as_ref()? {
                Mode::Replicated(r) => Some(r.replicas),
                _ => None,
            })
            .unwrap_or(1);
        let node = self
            .nodes
            .get(&task.node_id)
            .and_then(|n| n.description.as_ref())
            .map(|d| d.hostname.clone())
            .filter(|h| !h.is_empty() && !self.no_resolve)
            .unwrap_or_else(|| task.node_id.clone());
        TaskLabel {
            service: name,
            slot: match task.slot {
                0 => task.node_id.clone(),
                n => n.to_string(),
            },
            width: replicas.max(1).to_string().len(),
            task_id: task.id.clone(),
            node,
        }
    }
}

/// Runs `service logs`.
pub async fn run(host: &Host, args: LogsArgs) -> anyhow::Result<()> {
    let mut api = Api::connect(host).await?;
    let services = api::services(&mut api).await?;
    let tasks = api::tasks(&mut api, ListFilters::default()).await?;
    let selector = select(&services, &tasks, &args.target)?;
    let mut labels = Labels {
        services: services.into_iter().map(|s| (s.id.clone(), s)).collect(),
        nodes: api::nodes(&mut api)
            .await?
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect(),
        tasks: tasks.into_iter().map(|t| (t.id.clone(), t)).collect(),
        no_resolve: args.no_resolve,
    };
    let style = Style {
        raw: args.raw,
        no_task_ids: args.no_task_ids,
        no_trunc: args.no_trunc,
        timestamps: args.timestamps,
    };
    let request = SubscribeLogsRequest {
        selector: Some(selector),
        options: Some(LogSubscriptionOptions {
            streams: Vec::new(),
            follow: args.follow,
            tail: args.tail,
            since: args.since.map(Into::into),
        }),
    };
    let mut stream = LogsClient::new(api.channel())
        .subscribe_logs(request)
        .await
        .map_err(status_error)?
        .into_inner();
    while let Some(message) = stream.message().await.map_err(status_error)? {
        for warning in &message.warnings {
            eprintln!("warning: {warning}");
        }
        for line in message.messages {
            if !print(&mut api, &mut labels, style, line).await? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Prints one line where its stream belongs; false once stdout is gone
/// (`| head`), which ends the command quietly.
async fn print(
    api: &mut Api,
    labels: &mut Labels,
    style: Style,
    line: LogMessage,
) -> anyhow::Result<bool> {
    let task_id = line.context.map(|c| c.task_id).unwrap_or_default();
    let label = labels.label(api, &task_id).await;
    let at = line
        .timestamp
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let out = format::line(&label, style, at, &line.data);
    let written = if line.stream == LogStream::Stderr as i32 {
        let mut err = std::io::stderr().lock();
        err.write_all(&out).and_then(|()| err.flush())
    } else {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&out).and_then(|()| stdout.flush())
    };
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `--since`, relative to when the command started.
fn parse_since_now(s: &str) -> Result<SystemTime, String> {
    format::parse_since(s, SystemTime::now())
}

/// A service by name, id or id prefix; else a task by id or id prefix.
fn select(services: &[Service], tasks: &[Task], target: &str) -> anyhow::Result<LogSelector> {
    if let Some(Ok(id)) = api::resolve_services(services, &[target.to_string()]).pop() {
        return Ok(LogSelector {
            service_ids: vec![id],
            ..LogSelector::default()
        });
    }
    let pairs: Vec<(&str, &str)> = tasks.iter().map(|t| (t.id.as_str(), "")).collect();
    match resolve("task", target, pairs.iter().copied()) {
        Ok(id) => Ok(LogSelector {
            task_ids: vec![id],
            ..LogSelector::default()
        }),
        Err(_) => bail!("no such task or service: {target}"),
    }
}
