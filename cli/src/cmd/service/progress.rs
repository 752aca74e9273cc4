//! Following a service until it converges, as Docker's `--detach=false`:
//! `overall progress: 2 out of 3 tasks`, one line per slot (or node) with
//! the task's state and a bar, then `verify: Service converged`. On a
//! terminal the lines are redrawn in place; otherwise each change is
//! printed once as `key: text`, without bars, so scripts can read it.
//!
//! [`judge`] and [`lines`] are pure; [`follow`] polls the daemon.

use shoal_proto::listing::Joined as _;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use shoal_proto::control::{GetServiceRequest, ListFilters, ListTasksRequest};
use shoal_proto::objects::{
    Service, Task, TaskState, UpdateStatus, service_spec::Mode, update_status,
};

use super::view::state_word;
use crate::client::status_error;
use crate::cmd::common::Api;

/// How often the daemon is asked.
const POLL: Duration = Duration::from_millis(200);
/// Docker's bar: 50 columns for the 9 states up to running.
const BAR: usize = 50;
/// Docker pads state names to the longest one, `preparing`.
const STATE_WIDTH: usize = 9;

/// What the command that started following asked for.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// The update status before the request: a status equal to it is old
    /// news, not the answer to this request.
    pub baseline: Option<UpdateStatus>,
    /// A rollback was asked for, so `rollback_completed` is success.
    pub rollback: bool,
}

/// Where a followed service stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Still moving.
    Waiting,
    /// Done; the lines to print last.
    Converged(Vec<(String, String)>),
    /// Done badly: lines to print, then the error.
    Failed(Vec<(String, String)>, String),
}

fn state(t: &Task) -> TaskState {
    t.status.as_ref().map_or(TaskState::New, |s| s.state())
}

fn wants_running(t: &Task) -> bool {
    t.desired_state() == TaskState::Running
}

/// Docker's numbered states: how far along the bar a task is.
fn step(s: TaskState) -> usize {
    match s {
        TaskState::New => 1,
        TaskState::Pending => 3,
        TaskState::Assigned => 4,
        TaskState::Accepted => 5,
        TaskState::Preparing => 6,
        TaskState::Ready => 7,
        TaskState::Starting => 8,
        TaskState::Running => 9,
        _ => 0,
    }
}

/// `[=====>     ] ` for a state, as Docker draws it.
pub fn bar(s: TaskState) -> String {
    let filled = (step(s) * 100 / 9 / 2).min(BAR);
    format!("[{}>{}] ", "=".repeat(filled), " ".repeat(BAR - filled))
}

/// A slot's (or node's) line: the state and bar, or the task's error.
fn task_text(t: &Task, tty: bool) -> String {
    let st = t.status.clone().unwrap_or_default();
    if !st.err.is_empty() && state(t) > TaskState::Running {
        return st.err.chars().take(60).collect();
    }
    let word = state_word(state(t));
    if tty {
        format!("{word:<STATE_WIDTH$} {}", bar(state(t)))
    } else {
        word.to_string()
    }
}

/// The task shown for a slot: one that should run, else the newest.
fn pick<'a>(tasks: impl Iterator<Item = &'a Task>) -> Option<&'a Task> {
    tasks.max_by_key(|t| {
        let ts = t
            .status
            .as_ref()
            .and_then(|s| s.timestamp.as_ref())
            .map_or((0, 0), |t| (t.seconds, t.nanos));
        (wants_running(t), ts)
    })
}

/// The progress lines for the service as it is now.
pub fn lines(s: &Service, tasks: &[Task], tty: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match s.spec.as_ref().and_then(|s| s.mode.as_ref()) {
        Some(Mode::Replicated(r)) => {
            let n = r.replicas;
            let running = (1..=n)
                .filter(|slot| {
                    tasks.iter().any(|t| {
                        t.slot == *slot && wants_running(t) && state(t) == TaskState::Running
                    })
                })
                .count();
            out.push((
                "overall progress".into(),
                format!("{running} out of {n} tasks"),
            ));
            // Docker stops drawing slots past 50; so do we.
            for slot in (1..=n).take(50) {
                if let Some(t) = pick(tasks.iter().filter(|t| t.slot == slot)) {
                    out.push((format!("{slot}/{n}"), task_text(t, tty)));
                }
            }
        }
        Some(Mode::Global(_)) => {
            let mut by_node: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
            for t in tasks {
                by_node.entry(t.node_id.as_str()).or_default().push(t);
            }
            let live: Vec<&Task> = tasks.iter().filter(|t| wants_running(t)).collect();
            let running = live
                .iter()
                .filter(|t| state(t) == TaskState::Running)
                .count();
            out.push((
                "overall progress".into(),
                format!("{running} out of {} tasks", live.len()),
            ));
            for (node, ts) in by_node {
                if let Some(t) = pick(ts.into_iter()).filter(|t| wants_running(t)) {
                    let id: String = node.chars().take(12).collect();
                    out.push((id, task_text(t, tty)));
                }
            }
        }
        Some(Mode::ReplicatedJob(j)) => {
            let done = tasks
                .iter()
                .filter(|t| state(t) == TaskState::Complete)
                .count();
            let active = tasks
                .iter()
                .filter(|t| {
                    state(t) <= TaskState::Running && t.desired_state() <= TaskState::Complete
                })
                .count();
            out.push((
                "job progress".into(),
                format!("{done} out of {} complete", j.total_completions),
            ));
            out.push((
                "active tasks".into(),
                format!("{active} out of {} tasks", j.max_concurrent),
            ));
        }
        Some(Mode::GlobalJob(_)) => {
            let done = tasks
                .iter()
                .filter(|t| state(t) == TaskState::Complete)
                .count();
            out.push((
                "job progress".into(),
                format!("{done} out of {} complete", tasks.len()),
            ));
        }
        None => {}
    }
    out
}

/// Whether the tasks are what the spec asks for (updates aside).
fn tasks_converged(s: &Service, tasks: &[Task]) -> bool {
    let live = || tasks.iter().filter(|t| wants_running(t));
    let all_live_running = live().all(|t| state(t) == TaskState::Running);
    match s.spec.as_ref().and_then(|s| s.mode.as_ref()) {
        Some(Mode::Replicated(r)) => {
            all_live_running
                && (1..=r.replicas)
                    .all(|slot| live().any(|t| t.slot == slot && state(t) == TaskState::Running))
        }
        Some(Mode::Global(_)) => all_live_running && live().next().is_some(),
        Some(Mode::ReplicatedJob(j)) => {
            tasks
                .iter()
                .filter(|t| state(t) == TaskState::Complete)
                .count() as u64
                >= j.total_completions
        }
        Some(Mode::GlobalJob(_)) => {
            !tasks.is_empty() && tasks.iter().all(|t| state(t) >= TaskState::Complete)
        }
        None => false,
    }
}

/// Every task that should run carries the service's current task spec
/// (so an update whose status the daemon has not reported yet is not
/// mistaken for done).
fn tasks_current(s: &Service, tasks: &[Task]) -> bool {
    let want = s.spec.as_ref().and_then(|s| s.task.as_ref());
    let key = |t: Option<&shoal_proto::objects::TaskSpec>| {
        t.map(|t| (t.container.clone(), t.force_update))
    };
    tasks
        .iter()
        .filter(|t| wants_running(t))
        .all(|t| key(t.spec.as_ref()) == key(want))
}

/// Where the service stands for `expect`.
pub fn judge(s: &Service, tasks: &[Task], expect: &Expect) -> Verdict {
    use update_status::State as U;
    let status = s
        .update_status
        .clone()
        .filter(|u| Some(u) != expect.baseline.as_ref());
    let state = status.as_ref().map_or(U::Unknown, |u| u.state());
    let msg = status
        .as_ref()
        .map(|u| u.message.clone())
        .unwrap_or_default();
    let converged = tasks_converged(s, tasks);
    let verify = ("verify".to_string(), "Service converged".to_string());
    match state {
        U::Paused => Verdict::Failed(Vec::new(), format!("service update paused: {msg}")),
        U::RollbackPaused => Verdict::Failed(Vec::new(), format!("service rollback paused: {msg}")),
        U::Updating | U::RollbackStarted => Verdict::Waiting,
        U::RollbackCompleted if converged => {
            if expect.rollback {
                Verdict::Converged(vec![verify])
            } else {
                let line = ("rollback".to_string(), msg.clone());
                Verdict::Failed(vec![line, verify], format!("service rolled back: {msg}"))
            }
        }
        U::Completed if converged => Verdict::Converged(vec![verify]),
        U::Unknown if converged && (expect.rollback || tasks_current(s, tasks)) => {
            Verdict::Converged(vec![verify])
        }
        _ => Verdict::Waiting,
    }
}

/// Writes progress lines: redrawn in place on a terminal, else one line
/// per change.
pub struct Screen<W: Write> {
    out: W,
    tty: bool,
    drawn: usize,
    last: BTreeMap<String, String>,
}

impl<W: Write> Screen<W> {
    /// A screen on `out`.
    pub fn new(out: W, tty: bool) -> Screen<W> {
        Screen {
            out,
            tty,
            drawn: 0,
            last: BTreeMap::new(),
        }
    }

    /// Shows `lines` (the whole current picture).
    pub fn show(&mut self, lines: &[(String, String)]) -> std::io::Result<()> {
        if self.tty {
            if self.drawn > 0 {
                write!(self.out, "\x1b[{}A", self.drawn)?;
            }
            for (k, v) in lines {
                writeln!(self.out, "\x1b[2K{k}: {v}")?;
            }
            // A picture shorter than the last leaves old lines below: clear them.
            for _ in lines.len()..self.drawn {
                writeln!(self.out, "\x1b[2K")?;
            }
            self.drawn = self.drawn.max(lines.len());
        } else {
            for (k, v) in lines {
                if self.last.get(k) != Some(v) {
                    writeln!(self.out, "{k}: {v}")?;
                    self.last.insert(k.clone(), v.clone());
                }
            }
        }
        self.out.flush()
    }

    /// Prints final lines below the picture, once.
    pub fn finish(&mut self, lines: &[(String, String)]) -> std::io::Result<()> {
        for (k, v) in lines {
            writeln!(self.out, "{k}: {v}")?;
        }
        self.drawn = 0;
        self.out.flush()
    }
}

/// Polls the service until [`judge`] says it is done; prints nothing when
/// `quiet`. Errors carry the reason an update paused or rolled back.
pub async fn follow(
    api: &mut Api,
    service_id: &str,
    expect: &Expect,
    quiet: bool,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut screen = Screen::new(stdout, tty);
    loop {
        let service = api
            .control
            .get_service(GetServiceRequest {
                service_id: service_id.to_string(),
            })
            .await
            .map_err(status_error)?
            .into_inner()
            .service
            .unwrap_or_default();
        let tasks = api
            .control
            .list_tasks(ListTasksRequest {
                filters: Some(ListFilters {
                    service_ids: vec![service_id.to_string()],
                    ..ListFilters::default()
                }),
            })
            .joined()
            .await
            .map_err(status_error)?
            .tasks;
        let verdict = judge(&service, &tasks, expect);
        if !quiet {
            screen.show(&lines(&service, &tasks, tty))?;
        }
        match verdict {
            Verdict::Waiting => tokio::time::sleep(POLL).await,
            Verdict::Converged(last) => {
                if !quiet {
                    screen.finish(&last)?;
                }
                return Ok(());
            }
            Verdict::Failed(last, err) => {
                if !quiet {
                    screen.finish(&last)?;
                }
                anyhow::bail!(err);
            }
        }
    }
}
