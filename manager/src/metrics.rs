//! The manager's Prometheus metrics. Two kinds:
//!
//! - Events counted where they happen (a leader change, a proposal, a
//!   scheduling pass) live in [`METRICS`], one per process: a daemon runs
//!   at most one manager, and counters must outlive a demotion and a
//!   promotion without going back to zero.
//! - State (Raft's indexes, objects in the store) is read when scraped,
//!   from the manager in the [`ManagerSlot`]: nothing to keep in step.
//!
//! Both are encoded by one collector, and only while the slot holds a
//! manager: a worker shows no manager metrics at all.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::context::ManagerContext;
use crate::controlapi::ManagerSlot;
use crate::store::{Kind, Tables};

/// One label and its value; every label here has a short fixed list of values.
pub type Label = [(&'static str, &'static str); 1];

/// Counters, histograms and gauges updated where things happen.
#[derive(Debug)]
pub struct Metrics {
    /// Times this member saw a new leader (including the first).
    pub leader_changes: Counter,
    /// From a proposal to its being applied here, for those that committed.
    pub proposal_duration: Histogram,
    /// Proposals that failed (lost leadership, refused by the store, ...).
    pub proposals_failed: Counter,
    /// Node sessions this manager's dispatcher holds open.
    pub sessions: Gauge,
    /// Scheduling passes, whether or not they placed anything.
    pub scheduler_passes: Counter,
    /// Tasks the last scheduling pass left pending, by reason.
    pub unschedulable: Family<Label, Gauge>,
    /// One orchestrator pass: reconcile, update, reap, commit.
    pub orchestrator_pass: Histogram,
    /// One allocator pass: allocate and commit.
    pub allocator_pass: Histogram,
}

/// The process's manager metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let unschedulable = Family::<Label, Gauge>::default();
    // Every reason from the start, so a query finds 0 rather than nothing.
    for reason in crate::scheduler::pipeline::REASONS {
        let _ = unschedulable.get_or_create(&[("reason", reason)]);
    }
    Metrics {
        leader_changes: Counter::default(),
        // 1 ms to ~16 s: a commit on a quiet cluster to a stalled quorum.
        proposal_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        proposals_failed: Counter::default(),
        sessions: Gauge::default(),
        scheduler_passes: Counter::default(),
        unschedulable,
        orchestrator_pass: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        allocator_pass: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
    }
});

/// Observes the time from [`timer`] to its drop, however the scope ends.
#[must_use = "the time is observed when the timer is dropped"]
pub struct Timer<'a>(&'a Histogram, Instant);

/// Starts timing into `histogram`.
pub fn timer(histogram: &Histogram) -> Timer<'_> {
    Timer(histogram, Instant::now())
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.0.observe(self.1.elapsed().as_secs_f64());
    }
}

/// Records a scheduling pass's unschedulable tasks by reason. Every
/// reason is set, to 0 when absent, so none shows a past pass's count.
pub fn set_unschedulable(counts: &BTreeMap<&'static str, usize>) {
    for reason in crate::scheduler::pipeline::REASONS {
        let n = counts.get(reason).map_or(0, |&n| n as i64);
        METRICS
            .unschedulable
            .get_or_create(&[("reason", reason)])
            .set(n);
    }
}

/// A guard that counts one open dispatcher session while it lives.
pub struct Session(());

impl Session {
    /// Counts a session as open until the guard is dropped.
    pub fn open() -> Session {
        METRICS.sessions.inc();
        Session(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        METRICS.sessions.dec();
    }
}

/// Adds the manager's metrics to `registry`, read from whatever manager
/// is in `slot` at each scrape.
pub fn register(registry: &mut Registry, slot: ManagerSlot) {
    registry.register_collector(Box::new(ManagerCollector { slot }));
}

#[derive(Debug)]
struct ManagerCollector {
    slot: ManagerSlot,
}

/// The kinds the store keeps, in the order they are shown.
const KINDS: [Kind; 7] = [
    Kind::Node,
    Kind::Service,
    Kind::Task,
    Kind::Network,
    Kind::Secret,
    Kind::Config,
    Kind::Cluster,
];

/// Objects of `kind` in `tables`: each table knows its size, so no walk.
fn objects(tables: &Tables, kind: Kind) -> usize {
    use shoal_proto::objects::{Cluster, Config, Network, Node, Secret, Service, Task};
    match kind {
        Kind::Node => tables.count::<Node>(),
        Kind::Service => tables.count::<Service>(),
        Kind::Task => tables.count::<Task>(),
        Kind::Network => tables.count::<Network>(),
        Kind::Secret => tables.count::<Secret>(),
        Kind::Config => tables.count::<Config>(),
        Kind::Cluster => tables.count::<Cluster>(),
    }
}

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

/// Encodes a gauge read now.
fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let v = i64::try_from(v).unwrap_or(i64::MAX);
    emit(encoder, name, help, None, &ConstGauge::new(v))
}

impl Collector for ManagerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(ctx) = self.slot.get() else {
            return Ok(());
        };
        encode_state(&ctx, &mut encoder)?;
        encode_events(&mut encoder)
    }
}

/// The manager's state as it is now.
fn encode_state(ctx: &ManagerContext, e: &mut DescriptorEncoder) -> std::fmt::Result {
    let status = ctx.raft.status();
    let progress = ctx.raft.progress();
    // Applied first: the commit index is published before entries are
    // applied, so read in this order a scrape never shows applied > commit.
    let applied = ctx.store.applied_index();
    let commit = progress.commit();
    let raft = [
        ("shoal_raft_term", "Current Raft term.", status.term),
        (
            "shoal_raft_is_leader",
            "1 if this manager is the Raft leader.",
            u64::from(status.is_leader()),
        ),
        (
            "shoal_raft_members",
            "Raft members this manager knows.",
            status.members.len() as u64,
        ),
        (
            "shoal_raft_commit_index",
            "Highest Raft log index known committed.",
            commit,
        ),
        (
            "shoal_raft_applied_index",
            "Raft log index applied to the store.",
            applied,
        ),
        (
            "shoal_raft_snapshot_index",
            "Raft log index of the last stored snapshot.",
            progress.snapshot(),
        ),
    ];
    for (name, help, value) in raft {
        gauge(e, name, help, value)?;
    }

    let counts = ctx.store.view(|t| KINDS.map(|k| (k.name(), objects(t, k))));
    let mut family = e.encode_descriptor(
        "shoal_store_objects",
        "Objects in the replicated store, by kind.",
        None,
        MetricType::Gauge,
    )?;
    for (kind, n) in counts {
        let label = [("kind", kind)];
        ConstGauge::new(n as i64).encode(family.encode_family(&label)?)?;
    }
    Ok(())
}

/// What was counted where it happened.
fn encode_events(e: &mut DescriptorEncoder) -> std::fmt::Result {
    let m = &*METRICS;
    let seconds = Some(&Unit::Seconds);
    emit(
        e,
        "shoal_raft_leader_changes",
        "Times this manager saw a new Raft leader.",
        None,
        &m.leader_changes,
    )?;
    emit(
        e,
        "shoal_raft_proposal_duration",
        "Time from a proposal to its being applied here.",
        seconds,
        &m.proposal_duration,
    )?;
    emit(
        e,
        "shoal_raft_proposals_failed",
        "Proposals that did not commit.",
        None,
        &m.proposals_failed,
    )?;
    emit(
        e,
        "shoal_dispatcher_sessions",
        "Node sessions open on this manager's dispatcher.",
        None,
        &m.sessions,
    )?;
    emit(
        e,
        "shoal_scheduler_passes",
        "Scheduling passes.",
        None,
        &m.scheduler_passes,
    )?;
    emit(
        e,
        "shoal_scheduler_unschedulable_tasks",
        "Tasks the last scheduling pass left pending, by main reason.",
        None,
        &m.unschedulable,
    )?;
    emit(
        e,
        "shoal_orchestrator_pass_duration",
        "Duration of an orchestrator pass, commit included.",
        seconds,
        &m.orchestrator_pass,
    )?;
    emit(
        e,
        "shoal_allocator_pass_duration",
        "Duration of an allocator pass, commit included.",
        seconds,
        &m.allocator_pass,
    )
}

#[cfg(test)]
mod tests;
