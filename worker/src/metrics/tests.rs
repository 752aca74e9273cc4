use std::sync::Arc;

use prometheus_client::encoding::prometheus_text::encode;
use shoal_proto::objects::{Task, TaskState};

use super::*;
use crate::exec::metered::Metered;
use crate::exec::sim::SimEngine;
use crate::exec::{Engine, TaskRun};

fn tasks_in(tasks: &Family<Label, Gauge>, state: TaskState) -> i64 {
    tasks.get_or_create(&state_label(state)).get()
}

#[test]
fn a_counted_task_moves_between_states_and_leaves_when_dropped() {
    let tasks = Family::<Label, Gauge>::default();
    let mut a = Counted::in_family(tasks.clone(), TaskState::Assigned);
    let mut b = Counted::in_family(tasks.clone(), TaskState::Assigned);
    assert_eq!(tasks_in(&tasks, TaskState::Assigned), 2);
    a.set(TaskState::Running);
    a.set(TaskState::Running);
    b.set(TaskState::Preparing);
    b.set(TaskState::Failed);
    assert_eq!(tasks_in(&tasks, TaskState::Assigned), 0);
    assert_eq!(tasks_in(&tasks, TaskState::Preparing), 0);
    assert_eq!(tasks_in(&tasks, TaskState::Running), 1);
    assert_eq!(tasks_in(&tasks, TaskState::Failed), 1);
    drop(a);
    drop(b);
    assert_eq!(tasks_in(&tasks, TaskState::Running), 0);
    assert_eq!(tasks_in(&tasks, TaskState::Failed), 0);
}

fn scrape(metrics: &'static Metrics) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NodeCollector(metrics)));
    let mut text = String::new();
    encode(&mut text, &registry).expect("encode");
    text
}

#[test]
fn node_metrics_show_only_while_the_node_is_in_a_swarm() {
    let metrics: &'static Metrics = Box::leak(Box::new(Metrics::new()));
    assert_eq!(scrape(metrics), "");
    metrics.agents.fetch_add(1, Ordering::Relaxed);
    metrics.heartbeat(false);
    metrics.heartbeat(true);
    metrics.assignment_bytes(300);
    metrics.dataplane_sync(true);
    let text = scrape(metrics);
    for line in [
        "# TYPE shoal_node_tasks gauge",
        "shoal_node_tasks{state=\"running\"} 0",
        "shoal_agent_heartbeats_total 2",
        "shoal_agent_heartbeat_failures_total 1",
        "shoal_agent_assignment_bytes_total 300",
        "shoal_dataplane_syncs_total 1",
        "shoal_dataplane_sync_failures_total 1",
        "# TYPE shoal_engine_operation_duration_seconds histogram",
        "shoal_engine_operation_duration_seconds_count{operation=\"prepare\"} 0",
        "shoal_engine_operation_failures_total{operation=\"start\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
}

#[tokio::test]
async fn a_metered_engine_times_each_call_and_counts_failures() {
    let count = |op: &'static str| {
        let h = METRICS.engine_duration.get_or_create(&[("operation", op)]);
        let mut text = String::new();
        // The histogram's count, as a scrape shows it.
        let mut registry = Registry::default();
        registry.register("h", "", h.clone());
        encode(&mut text, &registry).expect("encode");
        text.lines()
            .find_map(|l| l.strip_prefix("h_count "))
            .and_then(|v| v.parse::<u64>().ok())
            .expect("a count")
    };
    let failures = |op: &'static str| {
        METRICS
            .engine_failures
            .get_or_create(&[("operation", op)])
            .get()
    };
    let engine = Metered(Arc::new(SimEngine::new()));
    let (prepares, starts, start_failures) = (count("prepare"), count("start"), failures("start"));
    let run = TaskRun {
        task: Task {
            id: "t1".into(),
            ..Default::default()
        },
        files: Vec::new(),
    };
    engine.prepare(&run).await.expect("prepare");
    engine.start("t1").await.expect("start");
    assert!(engine.start("unknown").await.is_err());
    // Other tests may use engines meanwhile: at least ours are counted.
    assert!(count("prepare") > prepares);
    assert!(count("start") >= starts + 2);
    assert!(failures("start") > start_failures);
}
