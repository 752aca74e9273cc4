//! The node's Prometheus metrics: what every daemon in a swarm does for
//! its own tasks. They are counted where things happen, in [`METRICS`],
//! one per process (a daemon is one node), and shown only while the node
//! is in a swarm: while an agent runs ([`InSwarm`]).
//!
//! Tasks by state are a gauge each task actor keeps up to date
//! ([`Counted`]): the actor is the only one who knows the state its task
//! has reached on this node, and asking every actor at each scrape would
//! cost a message per task.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use shoal_proto::objects::TaskState;

/// One label and its value; every label here has a short fixed list of values.
pub type Label = [(&'static str, &'static str); 1];

/// A histogram per label value.
type Histograms = Family<Label, Histogram, fn() -> Histogram>;

/// The node's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Task actors by the state their task has reached.
    tasks: Family<Label, Gauge>,
    /// Engine calls by operation: how long they took.
    engine_duration: Histograms,
    /// Engine calls by operation that failed.
    engine_failures: Family<Label, Counter>,
    /// Heartbeats sent to the dispatcher.
    heartbeats: Counter,
    /// Heartbeats that got no answer or were refused.
    heartbeat_failures: Counter,
    /// Encoded bytes of the assignment messages received (each part's
    /// protobuf size, without gRPC, HTTP/2 or TLS framing).
    assignment_bytes: Counter,
    /// Network views the data plane applied (or tried to).
    dataplane_syncs: Counter,
    /// Network views the data plane failed to apply.
    dataplane_sync_failures: Counter,
    /// Agents running: the node is in a swarm while there is one.
    agents: AtomicUsize,
}

/// The states a task actor may be in, shown at 0 before any task has
/// been in them (a query then finds 0, not nothing).
const ACTOR_STATES: [TaskState; 10] = [
    TaskState::Assigned,
    TaskState::Accepted,
    TaskState::Preparing,
    TaskState::Ready,
    TaskState::Starting,
    TaskState::Running,
    TaskState::Complete,
    TaskState::Shutdown,
    TaskState::Failed,
    TaskState::Rejected,
];

/// The engine calls timed: the task's life (`wait`) is not one.
const OPERATIONS: [&str; 8] = [
    "prepare", "start", "stop", "remove", "release", "list", "exec", "logs",
];

fn engine_histogram() -> Histogram {
    // 1 ms to ~33 s: a no-op to an image pull or a stop's grace period.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn state_label(state: TaskState) -> Label {
    [("state", state.docker_name())]
}

/// The process's node metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let metrics = Metrics {
            tasks: Family::default(),
            engine_duration: Family::new_with_constructor(engine_histogram),
            engine_failures: Family::default(),
            heartbeats: Counter::default(),
            heartbeat_failures: Counter::default(),
            assignment_bytes: Counter::default(),
            dataplane_syncs: Counter::default(),
            dataplane_sync_failures: Counter::default(),
            agents: AtomicUsize::new(0),
        };
        for state in ACTOR_STATES {
            let _ = metrics.tasks.get_or_create(&state_label(state));
        }
        for op in OPERATIONS {
            let _ = metrics.engine_duration.get_or_create(&[("operation", op)]);
            let _ = metrics.engine_failures.get_or_create(&[("operation", op)]);
        }
        metrics
    }

    /// Counts an engine call of `operation` that took `since` until now.
    pub fn engine_call(&self, operation: &'static str, since: Instant, failed: bool) {
        let label = [("operation", operation)];
        self.engine_duration
            .get_or_create(&label)
            .observe(since.elapsed().as_secs_f64());
        if failed {
            self.engine_failures.get_or_create(&label).inc();
        }
    }

    /// Counts a heartbeat sent, and whether it failed.
    pub fn heartbeat(&self, failed: bool) {
        self.heartbeats.inc();
        if failed {
            self.heartbeat_failures.inc();
        }
    }

    /// Counts an assignment message (or part) of `bytes` received.
    pub fn assignment_bytes(&self, bytes: usize) {
        self.assignment_bytes.inc_by(bytes as u64);
    }

    /// Counts a network view applied by the data plane, and whether it failed.
    pub fn dataplane_sync(&self, failed: bool) {
        self.dataplane_syncs.inc();
        if failed {
            self.dataplane_sync_failures.inc();
        }
    }
}

/// A task actor, counted under its task's state until it is dropped.
#[derive(Debug)]
pub struct Counted {
    tasks: Family<Label, Gauge>,
    state: TaskState,
}

impl Counted {
    /// Counts a task in `state`.
    pub fn new(state: TaskState) -> Counted {
        Counted::in_family(METRICS.tasks.clone(), state)
    }

    fn in_family(tasks: Family<Label, Gauge>, state: TaskState) -> Counted {
        tasks.get_or_create(&state_label(state)).inc();
        Counted { tasks, state }
    }

    /// Moves the task to `state`.
    pub fn set(&mut self, state: TaskState) {
        if state != self.state {
            self.tasks.get_or_create(&state_label(self.state)).dec();
            self.tasks.get_or_create(&state_label(state)).inc();
            self.state = state;
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.tasks.get_or_create(&state_label(self.state)).dec();
    }
}

/// Marks the node as in a swarm while it lives (held by the agent).
#[derive(Debug)]
pub struct InSwarm(());

impl InSwarm {
    /// The node is in a swarm until the guard is dropped.
    pub fn enter() -> InSwarm {
        METRICS.agents.fetch_add(1, Ordering::Relaxed);
        InSwarm(())
    }
}

impl Drop for InSwarm {
    fn drop(&mut self) {
        METRICS.agents.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Adds the node's metrics to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register_collector(Box::new(NodeCollector(LazyLock::force(&METRICS))));
}

#[derive(Debug)]
struct NodeCollector(&'static Metrics);

/// Encodes `metric` under `name`.
fn emit(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> std::fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

impl Collector for NodeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let m = self.0;
        if m.agents.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let seconds = Some(&Unit::Seconds);
        emit(
            &mut e,
            "shoal_node_tasks",
            "Tasks this node holds, by the state they reached here.",
            None,
            &m.tasks,
        )?;
        emit(
            &mut e,
            "shoal_engine_operation_duration",
            "Duration of engine calls, by operation.",
            seconds,
            &m.engine_duration,
        )?;
        emit(
            &mut e,
            "shoal_engine_operation_failures",
            "Engine calls that failed, by operation.",
            None,
            &m.engine_failures,
        )?;
        emit(
            &mut e,
            "shoal_agent_heartbeats",
            "Heartbeats sent to the dispatcher.",
            None,
            &m.heartbeats,
        )?;
        emit(
            &mut e,
            "shoal_agent_heartbeat_failures",
            "Heartbeats the dispatcher did not answer or refused.",
            None,
            &m.heartbeat_failures,
        )?;
        emit(
            &mut e,
            "shoal_agent_assignment_bytes",
            "Encoded bytes of the assignment messages received from the dispatcher.",
            None,
            &m.assignment_bytes,
        )?;
        emit(
            &mut e,
            "shoal_dataplane_syncs",
            "Network views the data plane applied.",
            None,
            &m.dataplane_syncs,
        )?;
        emit(
            &mut e,
            "shoal_dataplane_sync_failures",
            "Network views the data plane failed to apply.",
            None,
            &m.dataplane_sync_failures,
        )
    }
}

#[cfg(test)]
mod tests;
