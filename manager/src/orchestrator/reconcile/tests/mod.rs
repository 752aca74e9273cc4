//! Reconciliation over hand-built tables: slots, restart policy, global
//! placement, jobs, and the reaper.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use shoal_proto::objects::node_spec::Availability;
use shoal_proto::objects::node_status::State as NodeState;
use shoal_proto::objects::{Meta, Node, Service, Task, TaskState, restart_policy::Condition};

use super::{Plan, reap, reconcile};
use crate::orchestrator::testkit::*;
use crate::orchestrator::{pass, reap_orphans, update};
use crate::store::Store;

const SEC: Duration = Duration::from_secs(1);

fn plan(store: &Store, service: &Service, now: SystemTime) -> Plan {
    store.view(|t| reconcile(t, service, now))
}

fn running_in(service: &Service, slots: &[u64]) -> Vec<Task> {
    slots
        .iter()
        .map(|s| slot_task(&format!("t{s}"), service, *s, TaskState::Running, "n1"))
        .collect()
}

/// One orchestrator pass over `service_id`, committed.
fn pass_once(store: &Store, service_id: &str, now: SystemTime) {
    commit(store, |tx| {
        let t = tx.tables();
        let mut updates = update::Updates::default();
        let mut wake = None;
        pass(tx, t, service_id, &mut updates, now, &mut wake)
    });
}

mod global;
mod jobs;
mod reaper;
mod replicated;
