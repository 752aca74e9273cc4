//! Rolling updates over hand-built tables, stepped at chosen times (the
//! update logic takes `now` as an argument; no clock is involved).

use std::time::{Duration, SystemTime};

use shoal_proto::objects::task_status::Health;
use shoal_proto::objects::update_config::{FailureAction, Order};
use shoal_proto::objects::update_status::State;
use shoal_proto::objects::{Service, Task, TaskState, UpdateConfig};

use super::{UpdatePlan, Updates};
use crate::orchestrator::pass;
use crate::orchestrator::task::is_live;
use crate::orchestrator::testkit::*;
use crate::store::Store;

const SEC: Duration = Duration::from_secs(1);

fn cfg(parallelism: u64) -> UpdateConfig {
    UpdateConfig {
        parallelism,
        ..Default::default()
    }
}

fn ordered(mut c: UpdateConfig, order: Order) -> UpdateConfig {
    c.set_order(order);
    c
}

fn on_failure(mut c: UpdateConfig, action: FailureAction, ratio: f32) -> UpdateConfig {
    c.set_failure_action(action);
    c.max_failure_ratio = ratio;
    c
}

fn timed(mut c: UpdateConfig, monitor: Option<Duration>, delay: Option<Duration>) -> UpdateConfig {
    c.monitor = monitor.map(pd);
    c.delay = delay.map(pd);
    c
}

/// A service, its tasks in a store, and the update state of the loop.
struct Rig {
    store: Store,
    id: String,
    updates: Updates,
}

impl Rig {
    /// Replicated `replicas` running `img:1` in slots 1..=replicas (task
    /// `t{slot}`), being updated to `img:2` with `update`.
    fn replicated(replicas: u64, update: Option<UpdateConfig>) -> Rig {
        let base = replicated("web", replicas);
        let tasks = (1..=replicas)
            .map(|s| slot_task(&format!("t{s}"), &base, s, TaskState::Running, "n1"))
            .collect();
        Rig::new(updating(base, "img:2", update, State::Updating), tasks)
    }

    fn new(service: Service, tasks: Vec<Task>) -> Rig {
        let id = service.id.clone();
        Rig {
            store: world(vec![node("n1")], vec![service], tasks),
            id,
            updates: Updates::default(),
        }
    }

    fn service(&self) -> Service {
        self.store
            .view(|t| t.get::<Service>(&self.id).cloned())
            .expect("service")
    }

    fn step(&mut self, now: SystemTime) -> UpdatePlan {
        let service = self.service();
        let store = &self.store;
        let updates = &mut self.updates;
        store.view(|t| updates.step(t, &service, now, &Default::default()))
    }

    /// Records the plan as the loop would.
    fn apply(&self, plan: &UpdatePlan) {
        apply(&self.store, &plan.create, &plan.desire);
        if let Some(s) = &plan.service {
            commit(&self.store, |tx| tx.update(s.clone()));
        }
    }

    fn edit_service(&self, f: impl FnOnce(&mut Service)) {
        let mut s = self.service();
        f(&mut s);
        commit(&self.store, |tx| tx.update(s));
    }

    fn live(&self) -> Vec<Task> {
        self.store.view(|t| {
            t.tasks_of_service(&self.id)
                .filter(|t| is_live(t))
                .cloned()
                .collect()
        })
    }
}

fn ids(tasks: &[Task]) -> Vec<String> {
    tasks.iter().map(|t| t.id.clone()).collect()
}

fn image(t: &Task) -> &str {
    &t.spec.as_ref().unwrap().container.as_ref().unwrap().image
}

fn state_of(s: &Service) -> State {
    s.update_status.as_ref().unwrap().state()
}

mod batches;
mod failures;
mod rollback_and_passes;
mod timing;
